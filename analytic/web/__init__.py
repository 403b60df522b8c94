"""The HTTP door: a Flask app (``app.create_app``), one blueprint per area, token auth and
back-pressure, the waitress server, and the OpenAPI document. The core never imports it."""
