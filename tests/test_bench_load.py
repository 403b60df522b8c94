"""Smoke test of bench/load.py: a 3 s run against its own server and broker prints its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ROOT = Path(__file__).resolve().parents[1]


def test_load_script_runs_and_reports() -> None:
    run = subprocess.run(
        [sys.executable, "bench/load.py", "--seconds", "3", "--clients-http", "2",
         "--clients-mqtt", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for line in ("HTTP: 2 clients,", "MQTT: 1 clients,", "latency of served: p50",
                 "server memory at start", "RSS start"):
        assert line in run.stdout, run.stdout
