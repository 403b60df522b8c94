"""The command line prints the same JSON as the HTTP door."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import audio_factory as make
from tests.conftest import FEMALE_A, MALE_A

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)


def run(*args: str):
    return subprocess.run([sys.executable, "-m", "analytic", *args],
                          capture_output=True, text=True, timeout=300)


def test_verify_prints_the_result_json():
    done = run("verify", str(MALE_A[0]), str(MALE_A[2]))
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["decision"] is True
    assert body["result"] == "Same Speaker"
    assert [f["name"] for f in body["files"]] == [MALE_A[0].name, MALE_A[2].name]


def test_verify_refusal_is_json_with_a_nonzero_exit(tmp_path):
    silent = tmp_path / "silence.wav"
    silent.write_bytes(make.silence(2.0))
    done = run("verify", str(FEMALE_A[0]), str(silent))
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["code"] == "no_speech"


def test_logs_go_to_stderr_as_json_lines_without_audio():
    done = run("verify", str(MALE_A[0]), str(FEMALE_A[0]))
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    events = [line.get("event") for line in lines]
    assert "model_loaded" in events and "verified" in events
    verified = next(line for line in lines if line.get("event") == "verified")
    assert set(verified) >= {"analysis_id", "decision", "score", "threshold"}
    assert "speech" not in done.stderr and "embedding" not in done.stderr
