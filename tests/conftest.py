"""Shared fixtures: the real GE2E model loaded once, a live waitress server, real speech."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytic.encoders import load_encoder
from analytic.server import make_server
from analytic.service import VerificationService
from analytic.settings import Settings
from analytic.web import create_app

DATA = Path(__file__).parent / "data" / "librispeech"

# LibriSpeech test-other speakers (CC BY 4.0, see LICENSES/ and tests/data/README.md).
MALE_A = [DATA / f"2609-156975-{n}.flac" for n in ("0000", "0001", "0009")]
FEMALE_A = [DATA / f"3331-159605-{n}.flac" for n in ("0005", "0007", "0003")]
MALE_STRANGER = DATA / "3005-163389-0001.flac"
FEMALE_STRANGER = DATA / "367-130732-0001.flac"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ge2e():
    return load_encoder(Settings())


@pytest.fixture(scope="session")
def service(ge2e) -> VerificationService:
    return VerificationService(Settings(), ge2e)


def serve_in_thread(app, settings: Settings) -> Iterator[str]:
    server = make_server(app, settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def live_settings() -> Settings:
    """Small limits so the size and length refusals can be tested with small payloads."""
    return Settings(port=free_port(), max_request_bytes=2 * 1024 * 1024, max_duration_s=20.0)


@pytest.fixture(scope="session")
def base_url(ge2e, live_settings) -> Iterator[str]:
    """A real HTTP server (waitress, as in production) on a free port."""
    app = create_app(VerificationService(live_settings, ge2e))
    yield from serve_in_thread(app, live_settings)
