"""Shared fixtures: the default encoder (CAM++) loaded once, a live waitress server, speech."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytic.cli.settings import Settings
from analytic.encoders import load_encoder
from analytic.service import VerificationService
from analytic.web.app import create_app
from analytic.web.server import make_server

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "librispeech"

# LibriSpeech test-other speakers (CC BY 4.0, see LICENSES/ and tests/data/README.md).
MALE_A = [DATA / f"2609-156975-{n}.flac" for n in ("0000", "0001", "0009")]
FEMALE_A = [DATA / f"3331-159605-{n}.flac" for n in ("0005", "0007", "0003")]
MALE_STRANGER = DATA / "3005-163389-0001.flac"
FEMALE_STRANGER = DATA / "367-130732-0001.flac"


def write_fixture_trials(path: Path) -> Path:
    """Every pair of the 8 fixture clips as a trial list (6 target, 22 non-target)."""
    import csv

    files = [*MALE_A, *FEMALE_A, MALE_STRANGER, FEMALE_STRANGER]
    speaker = {p: p.name.split("-")[0] for p in files}
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["enroll", "test", "target"])
        for i, a in enumerate(files):
            for b in files[i + 1:]:
                writer.writerow([a.name, b.name, int(speaker[a] == speaker[b])])
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate, then kill after ``grace`` seconds; its whole group when it leads one (a
    ``bash -c`` wrapper and what it started)."""
    if process.poll() is not None:
        return
    group = os.getpgid(process.pid) == process.pid

    def send(signal: int) -> None:
        os.killpg(process.pid, signal) if group else os.kill(process.pid, signal)

    send(15)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        send(9)
        process.wait(10)


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory) -> Iterator[Path]:
    """Every Settings() in the tests (and every process they start) keeps its voiceprint store
    in a temporary folder, never in the working tree."""
    folder = tmp_path_factory.mktemp("voicegate-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VOICEGATE_DATA_DIR", str(folder))
        # CAM++'s ONNX export too: made once per test session, never in the user's cache.
        patch.setenv("VOICEGATE_MODEL_CACHE_DIR", str(tmp_path_factory.mktemp("models")))
        yield folder


@pytest.fixture(scope="session", autouse=True)
def private_tmpdir(tmp_path_factory) -> Iterator[Path]:
    """The test process's (and every service it starts) own temporary directory.

    Tests that promise "nothing reaches the disk" compare this directory before and after, so
    what other processes on a busy machine put in the system's /tmp cannot fail them, and a
    file the service does spool still does. pytest's own ``tmp_path`` folders were placed
    before this (``mktemp`` fixes pytest's base directory), so they are not in it.
    """
    folder = tmp_path_factory.mktemp("process-tmp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(folder))
        patch.setattr(tempfile, "tempdir", str(folder))
        yield folder


@pytest.fixture(scope="session")
def encoder():
    return load_encoder(Settings())


@pytest.fixture(scope="session")
def service(encoder) -> VerificationService:
    return VerificationService(Settings(), encoder)


def serve_in_thread(app, settings: Settings) -> Iterator[str]:
    server = make_server(app, settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        # waitress's loop runs while any keep-alive connection is open: close them all.
        server.close()
        for channel in list(server._map.values()):
            channel.close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def live_settings() -> Settings:
    """Small limits so the size and length refusals can be tested with small payloads."""
    return Settings(port=free_port(), max_request_bytes=2 * 1024 * 1024, max_duration_s=20.0)


@pytest.fixture(scope="session")
def base_url(encoder, live_settings) -> Iterator[str]:
    """A real HTTP server (waitress, as in production) on a free port."""
    app = create_app(VerificationService(live_settings, encoder))
    yield from serve_in_thread(app, live_settings)


@pytest.fixture
def mqtt_broker(tmp_path) -> Iterator:
    """A real Mosquitto (persistence on) on a free port, for this test only."""
    from tests.mqtt_broker import MosquittoBroker

    broker = MosquittoBroker(tmp_path / "mosquitto", free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


# --- household voiceprints: one store fixture, run on SQLite and on the real PostgreSQL ---
# PostgreSQL: VOICEGATE_TEST_DATABASE_URL, default the server these machines run (trust auth,
# database `test`). Each test gets its own table prefix, and its tables are dropped after.
# Without a reachable server the PostgreSQL cases skip, except under CI=true, where they fail.
TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
TEST_KEY = "RdqYpv1-FdvDCyrAozo6j7e1knpz-CxQ3P7FvKIaxY8="  # a Fernet key for tests only


def postgres_url() -> str:
    import os

    import psycopg

    url = os.environ.get("VOICEGATE_TEST_DATABASE_URL", TEST_DATABASE_URL)
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL at {url}: {exc}")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request, tmp_path):
    """``open(key=None)`` opens (or re-opens) one store of the parametrised kind."""
    import uuid

    from analytic.voiceprints.crypto import Sealer, load_key
    from analytic.voiceprints.store import open_store

    url = postgres_url() if request.param == "postgres" else None
    prefix = f"vgtest_{uuid.uuid4().hex[:10]}_"
    opened = []

    def open_(key: str | None = None):
        store = open_store(url, tmp_path, Sealer(load_key(key, None)), prefix)
        opened.append(store)
        return store

    open_.kind = request.param
    open_.url = url
    open_.path = tmp_path / "voiceprints.sqlite"
    open_.prefix = prefix
    yield open_
    for store in opened:
        store.close()
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {prefix}voiceprints, {prefix}voiceprint_meta, "
                         f"{prefix}digit_templates, {prefix}voiceprint_version")
