"""Serve the Flask app with waitress, sized so uploads stay in memory and idle sockets expire.

waitress spools a request body above ``inbuf_overflow`` to a temporary file before the app
sees it. So the body limit waitress enforces itself (``max_request_body_size``) is the allowed
body plus multipart framing, and ``inbuf_overflow`` is above it: an over-limit body is refused
from its Content-Length (or as soon as a chunked one passes the limit), never spooled. Bodies
just over ``max_request_bytes`` get Flask's JSON 413; ones more than the framing allowance over
it get waitress's own plain-text 413.

``connection_limit`` and ``channel_timeout`` come from the settings: with waitress's defaults
(100 connections, 120 s) a hundred idle sockets made every route, ``/health`` included,
unanswerable for two minutes. Internet-facing use belongs behind a reverse proxy that bounds
connections per client (docs/security.md).
"""

from __future__ import annotations

import socket

from flask import Flask
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from analytic.web.settings import HttpSettings

FRAMING_ALLOWANCE = 1024 * 1024
CLEANUP_INTERVAL_S = 30  # waitress's default: how often idle connections are looked for


def make_server(app: Flask, settings: HttpSettings) -> BaseWSGIServer | MultiSocketServer:
    limit = settings.max_request_bytes + FRAMING_ALLOWANCE
    return create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.http_threads,
        # A chunked body is checked after each read, so it may pass the limit by one read.
        inbuf_overflow=limit + FRAMING_ALLOWANCE,
        max_request_body_size=limit,
        connection_limit=settings.http_connection_limit,
        channel_timeout=settings.http_channel_timeout_s,
        cleanup_interval=min(CLEANUP_INTERVAL_S, settings.http_channel_timeout_s),
        ident="voicegate",
        clear_untrusted_proxy_headers=True,
    )


def port_refusal(settings: HttpSettings) -> str | None:
    """Why ``host:port`` cannot be bound (busy, not an address here), or None.

    Checked before the model loads so a busy port is one line at once, not a traceback after
    seconds of loading. The probe socket is closed again at once; waitress binds for real.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            settings.host, settings.port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as waitress does
            probe.bind(address)
    except OSError as exc:
        return (f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}); "
                "set VOICEGATE_PORT or VOICEGATE_HOST, or stop what holds it")
    return None
