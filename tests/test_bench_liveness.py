"""Smoke test of bench/liveness.py: a tiny run on FSDD and espeak-ng prints every figure line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.digit_speech import FSDD

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ROOT = Path(__file__).resolve().parents[1]


def test_liveness_bench_runs_and_reports() -> None:
    if not (FSDD / "recordings").is_dir():
        pytest.skip(f"FSDD is not staged at {FSDD}")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (script/setup --test installs it)")
    run = subprocess.run(
        [sys.executable, "bench/liveness.py", "--fsdd", str(FSDD), "--split", "dev",
         "--sequences", "1", "--attempts", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    for corpus in ("## espeak, dev speakers", "## fsdd, dev speakers: fsdd:george"):
        assert corpus in run.stdout, run.stdout
    for line in ("digit strings right, 4 digits, templates:",
                 "digit strings right, 6 digits, pocketsphinx:",
                 "genuine 4-digit attempts passed within two tries:",
                 "attack: replay of an earlier answer (other digits): 0/",
                 "attack: replay of the member's digit-enrolment recording: 0/"):
        assert run.stdout.count(line) == 2, (line, run.stdout)
