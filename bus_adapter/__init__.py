"""The MQTT door: requests in on the home bus, every decision out where policy engines listen.

The adapter only moves bytes and pydantic models between the broker and
``analytic.service.VerificationService``; it knows nothing about audio or models, and the core
knows nothing about MQTT. Topics and guarantees are documented in docs/bus.md.
"""
