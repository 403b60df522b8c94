"""Score a trial list and report EER, the error rates at a threshold, and minDCF.

A trial list is a CSV with ``enroll,test,target`` columns (paths relative to ``--root``,
``target`` 1 or 0), as in ``shared/data/librispeech/trials_test-other.csv``. Each file goes
through the same intake as a request, so the figures describe what the service does.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from analytic.audio import TARGET_RATE, Clip
from analytic.errors import AnalyticError
from analytic.lab.progress import Progress, no_progress
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
    d_prime: float
    # Every trial's score and class, kept for plots (``evaluate --plots``); not printed.
    scores: np.ndarray | None = field(default=None, repr=False, compare=False)
    is_target: np.ndarray | None = field(default=None, repr=False, compare=False)

    refused: int = 0  # files the intake refused (their trials count as rejections)
    score_norm: str = "none"
    # EER over the trials with no refused file, when some were refused (else None).
    scored_eer: float | None = None
    scored_trials: int = 0

    @classmethod
    def of(cls, scores: np.ndarray, is_target: np.ndarray, threshold: float,
           trials: int, files: int, refused: int = 0, score_norm: str = "none") -> Report:
        """Every figure from the scores; refuses a list without both kinds of trial."""
        if is_target.all() or not is_target.any():
            raise ValueError("the trial list needs both target and non-target trials")
        eer, eer_threshold = equal_error(scores, is_target)
        scored = np.isfinite(scores)
        scored_eer = None
        if not scored.all() and is_target[scored].any() and not is_target[scored].all():
            scored_eer = equal_error(scores[scored], is_target[scored])[0]
        false_accept, false_reject = error_rates(scores, is_target, [threshold])
        return cls(
            trials=trials,
            targets=int(is_target.sum()),
            files=files,
            eer=eer,
            eer_threshold=eer_threshold,
            threshold=threshold,
            false_accept=float(false_accept[0]),
            false_reject=float(false_reject[0]),
            min_dcf=min_dcf(scores, is_target),
            d_prime=d_prime(scores, is_target),
            scores=scores,
            is_target=is_target,
            refused=refused,
            score_norm=score_norm,
            scored_eer=scored_eer,
            scored_trials=int(scored.sum()),
        )

    def lines(self, encoder: str) -> list[str]:
        return [
            f"encoder: {encoder}, scores: {self.score_norm}",
            f"trials: {self.trials} ({self.targets} target, {self.trials - self.targets} "
            f"non-target) over {self.files} files, {self.refused} refused by the intake "
            "(counted as rejections)",
            f"EER: {100 * self.eer:.2f}% at threshold {self.eer_threshold:.4f}",
            f"at threshold {self.threshold:.4f}: false accept {100 * self.false_accept:.2f}%, "
            f"false reject {100 * self.false_reject:.2f}%",
            *([f"EER over the {self.scored_trials} trials with no refused file: "
               f"{100 * self.scored_eer:.2f}%"] if self.scored_eer is not None else []),
            f"minDCF (p_target={P_TARGET}, c_miss=c_fa=1): {self.min_dcf:.4f}",
            f"d': {self.d_prime:.2f}",
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
    service: VerificationService,
    trials: list[Trial],
    root: Path,
    sample_rate: int | None = None,
    test_sample_rate: int | None = None,
    progress: Progress = no_progress,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Score every trial as ``service.verify`` would: (scores, is_target, bandwidth, refused).

    ``sample_rate`` re-samples the enrolment side (and the test side unless
    ``test_sample_rate`` is given), to measure telephone audio and mixed pairs. Each file is
    decoded and embedded once per condition; ``progress`` reports both passes (the CLI's bars).
    A file the intake refuses (too short, no speech) is what the service would answer, a
    rejection: its trials score -inf, so a refused target is a false reject at every threshold;
    ``refused`` counts those files.
    """
    test_sample_rate = test_sample_rate or sample_rate
    jobs = sorted({(t.enroll, sample_rate) for t in trials}
                  | {(t.test, test_sample_rate) for t in trials}, key=str)
    clips: dict[tuple[str, int | None], Clip | None] = {}
    for name, rate in progress(jobs, "decoding"):
        data = (root / name).read_bytes()
        try:
            clips[name, rate] = service.decode(as_rate(data, rate) if rate else data, name)
        except AnalyticError:
            clips[name, rate] = None
    rates = {rate: min(c.sample_rate for (_, r), c in clips.items() if r == rate and c)
             for rate in {sample_rate, test_sample_rate}
             if any(c for (_, r), c in clips.items() if r == rate)}
    bandwidth = min(TARGET_RATE, *rates.values()) if rates else TARGET_RATE
    prints = {key: service.voiceprint(clip, bandwidth) if clip is not None else None
              for key, clip in progress(list(clips.items()), "embedding")}
    scorer = service.policy.scorer_for(bandwidth)
    scores = np.full(len(trials), -np.inf)
    for i, trial in enumerate(trials):
        enrol, test = prints[trial.enroll, sample_rate], prints[trial.test, test_sample_rate]
        if enrol is not None and test is not None:
            scores[i] = scorer.sample_scores(enrol, test)[0][0, 0]
    refused = sum(clip is None for clip in clips.values())
    return scores, np.array([t.target for t in trials], dtype=bool), bandwidth, refused


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


def d_prime(scores: np.ndarray, is_target: np.ndarray) -> float:
    """How far apart the target and non-target scores lie, in their pooled standard deviation:
    unlike the EER it still tells two set-ups apart once both separate every trial."""
    finite = np.isfinite(scores)  # refused files' trials score -inf: they are no distance
    targets, impostors = scores[is_target & finite], scores[~is_target & finite]
    spread = np.sqrt((targets.var() + impostors.var()) / 2)
    return float((targets.mean() - impostors.mean()) / spread)


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
    test_sample_rate: int | None = None,
    progress: Progress = no_progress,
) -> Report:
    if not trials:
        raise ValueError("the trial list is empty")
    scores, is_target, bandwidth, refused = score_trials(
        service, trials, root, sample_rate, test_sample_rate, progress
    )
    threshold = service.threshold_for(bandwidth) if threshold is None else threshold
    files = len({t.enroll for t in trials} | {t.test for t in trials})
    return Report.of(scores, is_target, threshold, len(trials), files, refused,
                     service.policy.score_norm)


# --- household scoring: multi-sample enrolment and AS-norm (docs/household.md) ---------------


@dataclass(frozen=True)
class EnrolmentSetup:
    """How ``evaluate_enrolment`` scores: samples per enrolment, model and normalisation."""

    enroll_samples: int = 1
    model: str = "mean"  # "mean" of per-sample scores (what the service does) or "centroid"
    norm: str = "none"  # "none" (raw cosine) or "asnorm"
    top_k: int | None = None  # AS-norm cohort size kept per side; None = the shipped default

    def line(self, norm_detail: str = "") -> str:
        return (f"scoring: {self.norm}{norm_detail}, enrolment: {self.enroll_samples} "
                f"sample(s) per speaker ({self.model})")


def embed_files(
    service: VerificationService, names: Iterable[str], root: Path,
    sample_rate: int | None = None,
    progress: Progress = no_progress,
) -> dict[str, np.ndarray]:
    """Each file through the service's intake and encoder, once."""
    prints = {}
    for name in progress(sorted(set(names)), "embedding"):
        data = (root / name).read_bytes()
        if sample_rate:
            data = as_rate(data, sample_rate)
        prints[name] = service.voiceprint(service.decode(data, name))
    return prints


def score_enrolment_trials(
    prints: dict[str, np.ndarray], trials: list, setup: EnrolmentSetup, norm: object | None,
) -> np.ndarray:
    """Scores of ``EnrolTrial``s from cached embeddings; ``norm`` is an ``AsNorm`` or None."""
    from analytic.voiceprints.model import centroid
    from analytic.voiceprints.scoring import VoiceprintScorer

    scorer = VoiceprintScorer(norm)  # type: ignore[arg-type]
    scores = []
    for trial in trials:
        samples = np.stack([prints[name] for name in trial.enroll])
        test = prints[trial.test]
        if setup.model == "centroid":
            scores.append(scorer.score(centroid(samples), test))
        else:
            scores.append(float(scorer.score_members([samples], test)[0][0]))
    return np.array(scores)


def evaluate_enrolment(
    service: VerificationService,
    trials: list[Trial],
    root: Path,
    setup: EnrolmentSetup,
    threshold: float | None = None,
    sample_rate: int | None = None,
    speakers: dict[str, str] | None = None,
    progress: Progress = no_progress,
) -> tuple[Report, str]:
    """``evaluate`` with ``setup.enroll_samples`` enrolment files per trial and optional AS-norm.

    Returns the report and a line describing the scoring. The default threshold is the one the
    service would use: the encoder's for raw cosine, the shipped AS-norm one for ``asnorm``.
    """
    from analytic.lab.enrol_trials import expand
    from analytic.scorenorm import ASNORM_THRESHOLDS, DEFAULT_TOP_K, load_cohort

    if not trials:
        raise ValueError("the trial list is empty")
    expanded = expand([(t.enroll, t.test, t.target) for t in trials], setup.enroll_samples,
                      speakers)
    norm = None
    detail = ""
    if setup.norm == "asnorm":
        top_k = setup.top_k or DEFAULT_TOP_K
        norm = load_cohort(service.encoder.name, service.encoder.embedding_size, top_k)
        if norm is None:
            raise ValueError(f"no AS-norm cohort for encoder {service.encoder.name!r}")
        detail = f" (top {min(top_k, norm.cohort.shape[0])} of {norm.cohort.shape[0]} cohort)"
    names = {n for t in expanded for n in t.enroll} | {t.test for t in expanded}
    prints = embed_files(service, names, root, sample_rate, progress)
    scores = score_enrolment_trials(prints, expanded, setup, norm)
    is_target = np.array([t.target for t in expanded], dtype=bool)
    if threshold is None:  # what the service would use on this scale (one voiceprint tried)
        scale = (service.policy.calibration.scale(f"{setup.norm}_wideband")
                 if service.policy.calibration else None)
        if scale is not None:
            threshold = round(scale.threshold_for(service.policy.false_accept), 4)
        else:
            threshold = (ASNORM_THRESHOLDS.get(service.encoder.name, 0.0) if norm is not None
                         else service.default_threshold)
    report = Report.of(scores, is_target, threshold, len(expanded), len(names),
                       score_norm=setup.norm)
    return report, setup.line(detail)
