"""Serve the Flask app with waitress, sized so uploads stay in memory."""

from __future__ import annotations

from flask import Flask
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from analytic.settings import Settings

# waitress spools request bodies above ``inbuf_overflow`` to a temporary file; keep the whole
# allowed body (plus multipart framing) in memory instead, and let waitress itself cut off
# anything far beyond the limit before Flask answers the usual JSON 413.
FRAMING_ALLOWANCE = 1024 * 1024


def make_server(app: Flask, settings: Settings) -> BaseWSGIServer | MultiSocketServer:
    limit = settings.max_request_bytes
    return create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.http_threads,
        inbuf_overflow=limit + FRAMING_ALLOWANCE,
        max_request_body_size=2 * limit + FRAMING_ALLOWANCE,
        ident="voicegate",
        clear_untrusted_proxy_headers=True,
    )
