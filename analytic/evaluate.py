"""Score a trial list and report EER, the error rates at a threshold, and minDCF.

A trial list is a CSV with ``enroll,test,target`` columns (paths relative to ``--root``,
``target`` 1 or 0), as in ``shared/data/librispeech/trials_test-other.csv``. Each file goes
through the same intake as a request, so the figures describe what the service does.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from analytic.scoring import cosine
from analytic.service import VerificationService

P_TARGET = 0.01


@dataclass(frozen=True)
class Trial:
    enroll: str
    test: str
    target: bool


@dataclass(frozen=True)
class Report:
    trials: int
    targets: int
    files: int
    eer: float
    eer_threshold: float
    threshold: float
    false_accept: float
    false_reject: float
    min_dcf: float

    def lines(self, encoder: str) -> list[str]:
        return [
            f"encoder: {encoder}",
            f"trials: {self.trials} ({self.targets} target, {self.trials - self.targets} "
            f"non-target) over {self.files} files",
            f"EER: {100 * self.eer:.2f}% at threshold {self.eer_threshold:.4f}",
            f"at threshold {self.threshold:.4f}: false accept {100 * self.false_accept:.2f}%, "
            f"false reject {100 * self.false_reject:.2f}%",
            f"minDCF (p_target={P_TARGET}, c_miss=c_fa=1): {self.min_dcf:.4f}",
        ]


def read_trials(path: Path) -> list[Trial]:
    with path.open(newline="") as handle:
        return [
            Trial(row["enroll"], row["test"], row["target"].strip() in {"1", "true", "True"})
            for row in csv.DictReader(handle)
        ]


def as_rate(data: bytes, rate: int) -> bytes:
    """The recording re-sampled to ``rate`` as 16-bit WAV, e.g. 8000 for telephone audio."""
    samples, source_rate = sf.read(io.BytesIO(data), dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, soxr.resample(samples, source_rate, rate), rate, format="WAV")
    return buffer.getvalue()


def score_trials(
    service: VerificationService, trials: list[Trial], root: Path, sample_rate: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Embed every file once, then score every trial; returns (scores, is_target)."""
    files = sorted({t.enroll for t in trials} | {t.test for t in trials})
    prints = {}
    for name in files:
        data = (root / name).read_bytes()
        if sample_rate:
            data = as_rate(data, sample_rate)
        clip = service.decode(data, name)
        prints[name] = service.encoder.embed(clip.speech)
    scores = np.array([cosine(prints[t.enroll], prints[t.test]) for t in trials])
    return scores, np.array([t.target for t in trials], dtype=bool)


def error_rates(
    scores: np.ndarray, is_target: np.ndarray, thresholds: Iterable[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """False accept and false reject rates at each threshold (accept when score >= t)."""
    thresholds = np.asarray(list(thresholds) if not isinstance(thresholds, np.ndarray)
                            else thresholds)
    target, nontarget = np.sort(scores[is_target]), np.sort(scores[~is_target])
    false_reject = np.searchsorted(target, thresholds, side="left") / len(target)
    false_accept = 1 - np.searchsorted(nontarget, thresholds, side="left") / len(nontarget)
    return false_accept, false_reject


def equal_error(scores: np.ndarray, is_target: np.ndarray) -> tuple[float, float]:
    """EER and the threshold where false accepts and false rejects meet."""
    candidates = np.unique(scores)
    false_accept, false_reject = error_rates(scores, is_target, candidates)
    best = int(np.argmin(np.abs(false_accept - false_reject)))
    eer = (false_accept[best] + false_reject[best]) / 2
    # Centre the threshold between the two neighbouring scores, not on a trial's own score.
    upper = candidates[best]
    lower = candidates[best - 1] if best > 0 else upper
    return float(eer), float((upper + lower) / 2)


def min_dcf(scores: np.ndarray, is_target: np.ndarray, p_target: float = P_TARGET) -> float:
    """Normalised minimum detection cost over all thresholds (c_miss = c_fa = 1)."""
    candidates = np.concatenate([np.unique(scores), [np.inf]])
    false_accept, false_reject = error_rates(scores, is_target, candidates)
    cost = p_target * false_reject + (1 - p_target) * false_accept
    return float(cost.min() / min(p_target, 1 - p_target))


def evaluate(
    service: VerificationService,
    trials: list[Trial],
    root: Path,
    threshold: float | None = None,
    sample_rate: int | None = None,
) -> Report:
    if not trials:
        raise ValueError("the trial list is empty")
    scores, is_target = score_trials(service, trials, root, sample_rate)
    if is_target.all() or not is_target.any():
        raise ValueError("the trial list needs both target and non-target trials")
    eer, eer_threshold = equal_error(scores, is_target)
    threshold = service.default_threshold if threshold is None else threshold
    false_accept, false_reject = error_rates(scores, is_target, [threshold])
    return Report(
        trials=len(trials),
        targets=int(is_target.sum()),
        files=len({t.enroll for t in trials} | {t.test for t in trials}),
        eer=eer,
        eer_threshold=eer_threshold,
        threshold=threshold,
        false_accept=float(false_accept[0]),
        false_reject=float(false_reject[0]),
        min_dcf=min_dcf(scores, is_target),
    )
