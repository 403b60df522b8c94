"""waitress's own limits over real sockets (issue 14, holes 6 and 7): idle connections cannot
make ``/health`` unanswerable, and an over-limit body is refused before waitress spools it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
import requests
from waitress.buffers import TempfileBasedBuffer

from analytic.cli.settings import Settings
from analytic.service import VerificationService
from analytic.web.app import create_app
from tests.conftest import free_port, serve_in_thread

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

LIMIT = 2 * 1024 * 1024
TIMEOUT = 30


@contextmanager
def server(encoder, tmp_path, **fields: object) -> Iterator[str]:
    settings = Settings(port=free_port(), max_request_bytes=LIMIT, data_dir=str(tmp_path),
                        **fields)
    yield from serve_in_thread(create_app(VerificationService(settings, encoder)), settings)


@contextmanager
def idle_connections(url: str, count: int) -> Iterator[list[socket.socket]]:
    host, port = url.removeprefix("http://").split(":")
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.create_connection((host, int(port)), timeout=10))
            sockets.append(sock)
        yield sockets


def status_line(url: str, request: bytes, body_bytes: int = 0) -> bytes:
    """Send a raw request (and up to ``body_bytes`` of body), return the response's first line."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        sent = 0
        try:
            while sent < body_bytes:
                sent += sock.send(b"\0" * min(65536, body_bytes - sent))
        except OSError:  # the server answered and closed while we were still sending
            pass
        return sock.recv(4096).split(b"\r\n", 1)[0]


@pytest.fixture
def spooled(monkeypatch) -> list[int]:
    """Every temporary file waitress opens for a buffer (it would hold request audio)."""
    opened: list[int] = []
    real = TempfileBasedBuffer.newfile

    def recording(self):
        opened.append(1)
        return real(self)

    monkeypatch.setattr(TempfileBasedBuffer, "newfile", recording)
    return opened


def test_an_over_limit_body_is_refused_before_it_is_spooled(encoder, tmp_path, spooled):
    body = 2 * LIMIT  # above the in-memory buffer, below waitress's old body limit
    with server(encoder, tmp_path) as url:
        head = (f"POST /speaker_verification HTTP/1.1\r\nHost: x\r\nContent-Length: {body}\r\n"
                "Content-Type: multipart/form-data; boundary=x\r\n\r\n").encode()
        assert b" 413 " in status_line(url, head, body)
        chunked = (b"POST /speaker_verification HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n"
                   b"Content-Type: multipart/form-data; boundary=x\r\n\r\n")
        chunk = 1024 * 1024
        chunks = (f"{chunk:x}\r\n".encode() + b"\0" * chunk + b"\r\n") * (body // chunk)
        assert b" 413 " in status_line(url, chunked + chunks)
        # Just over the limit: the usual JSON 413, also from memory.
        response = requests.post(url + "/speaker_verification", data=b"\0" * (LIMIT + 1),
                                 timeout=TIMEOUT)
        assert (response.status_code, response.json()["error"]["code"]) == (413, "too_large")
    assert spooled == []


def test_a_hundred_idle_connections_leave_health_answerable(encoder, tmp_path):
    """waitress's default connection limit is 100: that many idle sockets froze it."""
    with server(encoder, tmp_path) as url, idle_connections(url, 100):
        assert requests.get(url + "/health", timeout=TIMEOUT).status_code == 200


def test_idle_connections_are_closed_after_the_channel_timeout(encoder, tmp_path):
    with server(encoder, tmp_path, http_connection_limit=8, http_channel_timeout_s=1) as url, \
            idle_connections(url, 8) as sockets:
        # Every slot is held; the idle ones are closed by the server, then /health answers.
        assert requests.get(url + "/health", timeout=TIMEOUT).status_code == 200
        for sock in sockets:
            sock.settimeout(TIMEOUT)
            assert sock.recv(1) == b""  # closed by the server
