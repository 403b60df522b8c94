"""AS-norm, the shipped cohort, multi-sample enrolment trials and the evaluate flags."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analytic.lab.enrol_trials import expand
from analytic.scorenorm import ASNORM_THRESHOLDS, AsNorm, cohort_path, load_cohort
from analytic.voiceprints.model import centroid
from analytic.voiceprints.scoring import VoiceprintScorer
from tests.conftest import DATA, FEMALE_A, MALE_A

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)


def unit(rows: np.ndarray) -> np.ndarray:
    rows = np.atleast_2d(rows).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_asnorm_is_the_symmetric_formula_over_the_top_k():
    rng = np.random.default_rng(0)
    cohort = unit(rng.normal(size=(40, 16)))
    norm = AsNorm("test", cohort, top_k=10)
    enrol, test = unit(rng.normal(size=16))[0], unit(rng.normal(size=16))[0]
    raw = float(enrol @ test)

    def side(v):
        top = np.sort(cohort @ v)[-10:]
        return top.mean(), top.std()

    (me, se), (mt, st) = side(enrol), side(test)
    expected = 0.5 * ((raw - me) / se + (raw - mt) / st)
    assert norm.normalise(raw, enrol, test) == pytest.approx(expected, rel=1e-5)
    assert VoiceprintScorer(norm).score(enrol, test) == pytest.approx(expected, rel=1e-5)


def test_top_k_beyond_the_cohort_uses_all_of_it():
    cohort = unit(np.eye(4, 8) + 0.1)
    big = AsNorm("test", cohort, top_k=1000)
    whole = AsNorm("test", cohort, top_k=4)
    v = unit(np.arange(8.0))[0]
    np.testing.assert_allclose(big.stats(v), whole.stats(v))


def test_a_voice_near_many_strangers_is_scored_down():
    """The point of AS-norm: the same raw score counts for less against a 'hub' voice."""
    rng = np.random.default_rng(1)
    hub_direction = unit(rng.normal(size=32))[0]
    cohort = unit(hub_direction + 0.3 * rng.normal(size=(100, 32)))  # strangers near the hub
    norm = AsNorm("test", cohort, top_k=20)
    hub = hub_direction
    loner = unit(rng.normal(size=32))[0]
    loner -= (loner @ hub) * hub  # far from the strangers
    loner = unit(loner)[0]
    test = unit(rng.normal(size=32))[0]
    assert norm.normalise(0.8, hub, test) < norm.normalise(0.8, loner, test)


def test_raw_scorer_is_the_cosine():
    a, b = unit(np.array([1.0, 2.0, 3.0]))[0], unit(np.array([3.0, 2.0, 1.0]))[0]
    scorer = VoiceprintScorer(None)
    assert scorer.name == "none"
    assert scorer.score(a, b) == pytest.approx(float(a @ b))
    assert scorer.score_many([], b).shape == (0,)


def test_centroid_is_the_renormalised_mean():
    rows = unit(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(centroid(rows), [2**-0.5, 2**-0.5], atol=1e-6)


def test_the_shipped_ge2e_cohort():
    assert cohort_path("ge2e").stat().st_size < 200_000
    raw = np.load(cohort_path("ge2e"))
    assert raw.shape == (251, 256) and raw.dtype == np.float16
    norm = load_cohort("ge2e", 256)
    assert norm is not None
    np.testing.assert_allclose(np.linalg.norm(norm.cohort, axis=1), 1.0, atol=1e-3)
    assert "ge2e" in ASNORM_THRESHOLDS


def test_no_cohort_for_other_encoders_or_sizes(tmp_path):
    assert load_cohort("ecapa", 192) is None
    assert load_cohort("ge2e", 192) is None  # a cohort of another embedding size is no cohort
    np.save(tmp_path / "cohort_x.npy", np.zeros((0, 4), np.float16))
    assert load_cohort("x", 4, models_dir=tmp_path) is None


# --- multi-sample enrolment trials ---------------------------------------------------------

POOL = {f"s{spk}-c-{i:04d}.flac": f"s{spk}" for spk in (1, 2) for i in range(5)}


def test_one_sample_gives_the_trials_back():
    trials = [("s1-c-0000.flac", "s1-c-0001.flac", True), ("s1-c-0000.flac", "s2-c-0000.flac",
                                                          False)]
    assert [(t.enroll, t.test, t.target) for t in expand(trials, 1, POOL)] == [
        (("s1-c-0000.flac",), "s1-c-0001.flac", True),
        (("s1-c-0000.flac",), "s2-c-0000.flac", False),
    ]


def test_enrolment_samples_are_the_speakers_own_and_never_the_test_file():
    trials = [(e, t, POOL[e] == POOL[t]) for e in POOL for t in POOL if e != t]
    expanded = expand(trials, 3, POOL)
    for trial in expanded:
        assert len(set(trial.enroll)) == 3
        assert trial.test not in trial.enroll
        assert {POOL[e] for e in trial.enroll} == {POOL[trial.enroll[0]]}
    assert expand(trials, 3, POOL) == expanded  # deterministic
    target = next(t for t in expanded if t.enroll[0] == "s1-c-0004.flac"
                  and t.test == "s1-c-0000.flac")
    assert target.enroll == ("s1-c-0004.flac", "s1-c-0001.flac", "s1-c-0002.flac")  # wraps


def test_too_few_files_for_the_enrolment_is_an_error():
    with pytest.raises(ValueError, match="5 files"):
        expand([("s1-c-0000.flac", "s1-c-0001.flac", True)], 5, POOL)


def test_evaluate_with_asnorm_and_two_enrolment_samples(tmp_path: Path):
    """The command on real speech: perfect separation on the fixture speakers either way."""
    trials = tmp_path / "trials.csv"
    files = [*MALE_A, *FEMALE_A]
    with trials.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["enroll", "test", "target"])
        for a in files:
            for b in files:
                if a != b:
                    writer.writerow([a.name, b.name, int(a.name[:4] == b.name[:4])])
    done = subprocess.run(
        [sys.executable, "-m", "analytic", "evaluate", "--trials", str(trials), "--root",
         str(DATA), "--norm", "asnorm", "--enroll-samples", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "trials: 30 (12 target, 18 non-target) over 6 files" in done.stdout
    assert "EER: 0.00%" in done.stdout
    assert "false accept 0.00%, false reject 0.00%" in done.stdout
    assert "scoring: asnorm (top 300 of 1127 cohort), enrolment: 2 sample(s)" in done.stdout
