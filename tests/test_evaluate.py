"""Evaluation metrics on known score lists, and the command on real trials."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analytic.lab.evaluate import d_prime, equal_error, error_rates, min_dcf
from tests.conftest import (
    DATA,
    write_fixture_trials,
)

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)


def test_perfect_separation_has_zero_eer_and_a_threshold_between_the_classes():
    scores = np.array([0.9, 0.8, 0.85, 0.1, 0.2, 0.3])
    is_target = np.array([True, True, True, False, False, False])
    eer, threshold = equal_error(scores, is_target)
    assert eer == 0.0
    assert 0.3 < threshold <= 0.8
    assert min_dcf(scores, is_target) == 0.0


def test_error_rates_count_ties_as_accepts():
    scores = np.array([0.5, 0.7, 0.5, 0.2])
    is_target = np.array([True, True, False, False])
    false_accept, false_reject = error_rates(scores, is_target, [0.5])
    assert false_accept[0] == 0.5  # the non-target at exactly 0.5 is accepted
    assert false_reject[0] == 0.0


def test_overlapping_scores_give_the_crossing_point():
    rng = np.random.default_rng(0)
    target, nontarget = rng.normal(1, 1, 4000), rng.normal(-1, 1, 4000)
    scores = np.concatenate([target, nontarget])
    is_target = np.arange(8000) < 4000
    eer, threshold = equal_error(scores, is_target)
    assert eer == pytest.approx(0.1587, abs=0.01)  # Phi(-1)
    assert threshold == pytest.approx(0.0, abs=0.05)


def test_d_prime_is_the_mean_gap_in_pooled_standard_deviations():
    rng = np.random.default_rng(1)
    target, nontarget = rng.normal(1, 1, 4000), rng.normal(-1, 1, 4000)
    is_target = np.arange(8000) < 4000
    assert d_prime(np.concatenate([target, nontarget]), is_target) == pytest.approx(2, abs=0.1)
    # one class twice as spread: the gap is measured in sqrt((1 + 4) / 2)
    wide = rng.normal(-1, 2, 4000)
    assert d_prime(np.concatenate([target, wide]), is_target) == pytest.approx(
        2 / np.sqrt(2.5), abs=0.1)


def test_evaluate_command_on_fixture_trials(tmp_path: Path):
    trials = write_fixture_trials(tmp_path / "trials.csv")
    done = subprocess.run(
        [sys.executable, "-m", "analytic", "evaluate", "--trials", str(trials),
         "--root", str(DATA)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "trials: 28 (6 target, 22 non-target) over 8 files" in done.stdout
    assert "EER: 0.00%" in done.stdout
    assert "false accept 0.00%, false reject 0.00%" in done.stdout
    assert re.search(r"^d': \d+\.\d\d$", done.stdout, re.MULTILINE)


def test_refused_files_are_rejections_not_a_traceback(tmp_path: Path, service):
    """A clip the intake refuses (here: too short) is what the service would answer, a
    rejection; the evaluation goes on and says how many there were."""
    import shutil

    import soundfile as sf

    from analytic.lab.evaluate import evaluate, read_trials

    root = tmp_path / "clips"
    shutil.copytree(DATA, root)
    audio, rate = sf.read(DATA / "2609-156975-0000.flac")
    sf.write(root / "2609-short.flac", audio[: int(0.3 * rate)], rate)
    trials = write_fixture_trials(tmp_path / "trials.csv")
    with trials.open("a") as handle:
        handle.write("2609-short.flac,2609-156975-0001.flac,1\n")
        handle.write("2609-short.flac,367-130732-0001.flac,0\n")
    report = evaluate(service, read_trials(trials), root)
    assert (report.trials, report.refused) == (30, 1)
    # The refused target is a false reject at every threshold; without it, no error at all.
    assert report.false_reject == pytest.approx(1 / 7)
    assert report.scored_eer == 0.0 and report.scored_trials == 28
    assert "1 refused by the intake" in "\n".join(report.lines("campplus"))


def test_conditions_table_counts_refusals_apart_and_never_ends_in_a_traceback(tmp_path: Path):
    """``--conditions`` on real speech: clean pairs separate, 0.3 s from voice onset
    is refused by the intake for every pair (counted as rejections, apart), and the telephone
    test is sent at 8 kHz so it is judged at the narrowband threshold."""
    trials = write_fixture_trials(tmp_path / "trials.csv")
    done = subprocess.run(
        [sys.executable, "-m", "analytic", "evaluate", "--trials", str(trials),
         "--root", str(DATA), "--conditions", "clean,onset0.3,telephone", "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    cells = [[cell.strip() for cell in line.strip("|").split("|")]
             for line in done.stdout.splitlines() if line.startswith("| ")]
    rows = {row[0]: row for row in cells}
    assert rows["clean"][1:4] == ["0.0%", "0.0%", "0.0%"]
    assert rows["onset0.3"][1:3] == ["100.0%", "100.0%"]
    assert rows["onset0.3"][5:] == ["6/6", "22/22"]
    assert rows["telephone"][5:] == ["0/6", "0/22"]
    assert rows["telephone"][4] != rows["clean"][4]  # narrowband threshold, not wideband
    assert "test side degraded, seed 0" in done.stdout


def test_an_unknown_condition_is_refused_before_the_work(tmp_path: Path):
    trials = write_fixture_trials(tmp_path / "trials.csv")
    done = subprocess.run(
        [sys.executable, "-m", "analytic", "evaluate", "--trials", str(trials),
         "--root", str(DATA), "--conditions", "clean,kitchen10"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert "unknown condition 'kitchen10'" in done.stderr and "Traceback" not in done.stderr
