"""A voiceprint store that cannot be used stops start-up with a clear message, not a crash
later (and never a silently empty household)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from analytic.cli.settings import Settings
from analytic.voiceprints.crypto import Sealer, load_key
from analytic.voiceprints.store import open_store
from tests.conftest import TEST_KEY, free_port

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)


def serve(data_dir, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "VOICEGATE_DATA_DIR": str(data_dir),
                   "VOICEGATE_MQTT_ENABLED": "false", **env}
    return subprocess.run(
        [sys.executable, "-m", "analytic", "serve", "--port", str(free_port())],
        env=environment, capture_output=True, text=True, timeout=120,
    )


def test_a_corrupt_store_refuses_to_start(tmp_path):
    (tmp_path / "voiceprints.sqlite").write_bytes(b"this is not an SQLite database" * 100)
    done = serve(tmp_path)
    assert done.returncode == 2
    assert "voicegate: cannot use the voiceprint store" in done.stderr
    assert "not a database" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_encrypted_store_without_its_key_refuses_to_start(tmp_path):
    prefix = Settings().voiceprint_table_prefix
    open_store(None, tmp_path, Sealer(load_key(TEST_KEY, None)), prefix).close()
    done = serve(tmp_path)
    assert done.returncode == 2
    assert "voicegate:" in done.stderr
    assert "key" in done.stderr
    assert "Traceback" not in done.stderr
