"""The command line's presentation: JSON by default, ``--pretty`` tables, progress bars on
stderr only for a terminal, and ``evaluate --plots`` writing real PNG files."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from analytic.cli.analyze import analyze_command
from analytic.cli.commands import household_command, verify
from analytic.cli.output import emit, render_pretty
from analytic.cli.settings import Settings
from analytic.lab.progress import progress_bars, wants_progress
from analytic.service import VerificationService
from tests.conftest import (
    DATA,
    FEMALE_A,
    MALE_A,
    write_fixture_trials,
)

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Terminal(io.StringIO):
    """A stderr that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analytic", *args],
                          capture_output=True, text=True, timeout=300)


def test_pretty_puts_scalars_in_aligned_lines_and_lists_of_objects_in_tables():
    text = render_pretty({
        "match": None, "decision": True, "score": 4.33,
        "gender": {"result": "male", "confidence": 0.9},
        "models": ["gender", "arousal"],
        "candidates": [{"external_id": "dad", "score": 4.33},
                       {"external_id": "mum", "score": 0.62}],
    })
    lines = text.splitlines()
    assert lines[:6] == [
        "match              -",
        "decision           yes",
        "score              4.33",
        "gender.result      male",
        "gender.confidence  0.9",
        "models             gender, arousal",
    ]
    assert lines[6:] == [
        "",
        "candidates:",
        "external_id  score",
        "-----------  -----",
        "dad          4.33",
        "mum          0.62",
    ]


def test_json_stays_the_default_output():
    body = {"error": {"code": "no_speech", "message": "silence"}}
    assert json.loads(emit(body, pretty=False)) == body
    assert emit(body, pretty=True) == "error.code     no_speech\nerror.message  silence"


def test_progress_bars_go_to_a_terminal_and_nowhere_else():
    terminal = Terminal()
    assert wants_progress(False, terminal)
    assert not wants_progress(True, terminal)  # --no-progress
    assert not wants_progress(False, io.StringIO())  # a pipe or a log file
    assert list(progress_bars(True, terminal)([1, 2, 3], "decoding")) == [1, 2, 3]
    assert "decoding:" in terminal.getvalue() and "0/3" in terminal.getvalue()
    quiet = Terminal()
    assert list(progress_bars(False, quiet)([1, 2, 3], "decoding")) == [1, 2, 3]
    assert quiet.getvalue() == ""


def test_verify_pretty_prints_a_table_not_json():
    done = run("verify", "--pretty", str(MALE_A[0]), str(MALE_A[2]))
    assert done.returncode == 0, done.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)
    lines = done.stdout.splitlines()
    # Column width follows the longest key (threshold_source since issue 14).
    assert ["decision", "yes"] in [line.split() for line in lines]
    assert ["result", "Same", "Speaker"] in [line.split() for line in lines]
    header = lines[lines.index("files:") + 1].split()
    assert header[:4] == ["name", "duration_s", "speech_s", "sample_rate"]
    assert sum(MALE_A[0].name in line or MALE_A[2].name in line for line in lines) == 2


def test_verify_refusal_is_readable_with_pretty(service, capsys, tmp_path: Path):
    silent = tmp_path / "empty.wav"
    silent.write_bytes(b"")
    args = argparse.Namespace(file1=FEMALE_A[0], file2=silent, threshold=None, pretty=True)
    assert verify(service, args) == 2
    assert capsys.readouterr().out.startswith("error.code     no_speech")


def test_analyze_pretty_shows_the_time_series_as_a_table(service, capsys):
    args = argparse.Namespace(file=MALE_A[0], models="gender", output_period=2048,
                              volume_threshold=0.005, summary=True, transitions=False,
                              raw=False, pretty=True)
    assert analyze_command(service, args) == 0
    out = capsys.readouterr().out
    assert "summary.gender.male_fraction" in out
    header = out.split("time_series:\n", 1)[1].splitlines()[0].split()
    assert header[:2] == ["timestamp", "results.gender.result"]


def test_enroll_and_identify_pretty(encoder, capsys, tmp_path: Path):
    service = VerificationService(Settings(data_dir=str(tmp_path)), encoder)
    enroll = argparse.Namespace(command="enrol", external_id="dad", files=MALE_A[:2],
                                replace=False, pretty=True)
    assert household_command(service, enroll) == 0
    out = capsys.readouterr().out
    assert "external_id    dad" in out and "sample_count   2" in out
    identify = argparse.Namespace(command="identify", file=MALE_A[2], threshold=None,
                                  pretty=True)
    assert household_command(service, identify) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["match", "dad"]
    candidates = lines[lines.index("candidates:") + 1:]
    assert candidates[0].split() == ["external_id", "score", "raw_score"]
    assert candidates[2].split()[0] == "dad"


def test_evaluate_writes_a_det_curve_and_a_histogram(tmp_path: Path):
    trials = write_fixture_trials(tmp_path / "trials.csv")
    plots = tmp_path / "plots"
    done = run("evaluate", "--trials", str(trials), "--root", str(DATA), "--plots", str(plots))
    assert done.returncode == 0, done.stderr
    assert "EER: 0.00%" in done.stdout  # the numbers are still printed
    written = sorted(plots.iterdir())
    assert [p.name for p in written] == ["det.png", "scores.png"]
    for path in written:
        assert f"plot: {path}" in done.stdout
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) >= 300
    # stderr is a pipe here: no progress bar, only the JSON log lines.
    assert "decoding" not in done.stderr and "embedding" not in done.stderr
