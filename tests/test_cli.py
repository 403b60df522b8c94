"""The command line prints the same JSON as the HTTP door."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import audio_factory as make
from tests.conftest import FEMALE_A, MALE_A

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)


def run(*args: str, **env: str):
    return subprocess.run([sys.executable, "-m", "analytic", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_a_different_speaker_exits_1_with_the_answer():
    done = run("verify", str(MALE_A[0]), str(FEMALE_A[0]))
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["result"] == "Different Speaker"


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("VOICEGATE_PORT", "abc", "VOICEGATE_PORT=abc"),
    ("VOICEGATE_ENCODER", "whisper", "'campplus', 'ge2e' or 'ecapa'"),
    ("VOICEGATE_FALSE_ACCEPT", "2", "VOICEGATE_FALSE_ACCEPT=2"),
])
def test_a_bad_setting_is_one_line_naming_the_variable(variable, value, named):
    done = run("verify", str(MALE_A[0]), str(MALE_A[1]), **{variable: value})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("voicegate: "), done.stderr
    assert variable in done.stderr and named in done.stderr
    assert "model_loaded" not in done.stderr  # refused before anything loaded


def test_a_missing_file_is_one_line_before_the_model_loads(tmp_path):
    done = run("verify", str(MALE_A[0]), str(tmp_path / "nope.wav"))
    assert done.returncode == 2
    assert done.stderr == f"voicegate: no such file: {tmp_path / 'nope.wav'}\n"


def test_a_busy_port_is_one_line_before_the_model_loads():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run("serve", "--port", str(port), VOICEGATE_MQTT_ENABLED="false")
    assert done.returncode == 2
    *logged, said = done.stderr.splitlines()  # the structured log line, then the person's
    assert said.startswith(f"voicegate: cannot listen on 127.0.0.1:{port}"), done.stderr
    assert [json.loads(line)["event"] for line in logged] == ["refused_to_start"]


def test_help_loads_nothing_heavy():
    """``--help`` answers at once because parsing imports no model, no numpy, no pydantic."""
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; from analytic.cli.main import build_parser; build_parser(); "
         "print(sorted(m for m in ('numpy', 'torch', 'pydantic', 'flask', 'onnxruntime') "
         "if m in sys.modules))"],
        capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "[]", probe.stderr
    for command in ("--help", "verify --help", "evaluate --help", "serve --help"):
        done = run(*command.split())
        assert done.returncode == 0 and "usage: voicegate" in done.stdout


def test_the_voicegate_script_is_the_same_command_line():
    script = Path(sys.executable).with_name("voicegate")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "enrol" in done.stdout


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
