"""A verification system's error rates per degradation: EER, and FR / FA at a threshold.

The scoring is the caller's: ``score_pairs(enrol_sounds, test_sounds)`` returns one score per
pair (higher = more alike), and ``NaN`` for a pair it refused (a clip too short, no speech,
...). So the table needs nothing of how a product scores; ``ServiceScorer`` is the scorer of
``python -m analytic evaluate --conditions``: every clip through the service's own intake,
band choice, encoder and score normalisation, at the service's shipped thresholds.

A refused pair counts as a rejection: a genuine user refused is a false rejection, an
impostor refused is not a false acceptance, and the EER is taken with refused pairs rejected
at every threshold. Refusals are also counted apart, so "rejected for a bad score" and
"refused as too short" can be told apart in the table. A scorer that raises instead of
returning ``NaN`` is retried pair by pair, and the pairs that still raise count as refused:
one bad file never ends the table with a traceback.

Audio is handed to the scorer as ``Sound`` objects, the same object for the same file and
side wherever it is not degraded (the clean enrolment side across every condition), so a
scorer may cache embeddings by object identity.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analytic.audio import Clip
from analytic.errors import AnalyticError
from analytic.lab.conditions import RATE, Condition, rng_for
from analytic.lab.progress import Progress, no_progress

if TYPE_CHECKING:
    from analytic.service import VerificationService

log = logging.getLogger(__name__)
BABBLE_CLIPS = 20


@dataclass(frozen=True, eq=False)
class Sound:
    """A recording as a degradation leaves it: samples at ``RATE`` (16 kHz), and the rate the
    file is sent at (8000 for a telephone call or an 8 kHz corpus)."""

    samples: np.ndarray
    rate: int = RATE


ScorePairs = Callable[[list[Sound], list[Sound]], np.ndarray]
Threshold = float | Callable[[int], float]  # a number, or one per pair bandwidth (Hz)


@dataclass(frozen=True)
class Trial:
    enrol: str  # a key the loader understands (a path)
    test: str
    target: bool


@dataclass(frozen=True)
class ConditionResult:
    condition: str
    eer: float
    false_rejects: float  # share of target pairs rejected at the threshold, refusals included
    false_accepts: float  # share of non-target pairs accepted at the threshold
    refused_target: int
    refused_nontarget: int
    n_target: int
    n_nontarget: int
    threshold: str = ""  # the threshold(s) FR and FA were taken at, as printed


def equal_error_rate(scores: np.ndarray, target: np.ndarray) -> float:
    """EER with ``NaN`` scores (refusals) rejected at every threshold: the point where the
    false rejection and false acceptance rates cross, interpolated between thresholds. When
    refusals keep the curves from crossing (more targets refused than the error to trade),
    the least achievable max(FR, FA) is returned instead, which is then the refused share."""
    scores = np.asarray(scores, dtype=np.float64)
    target = np.asarray(target, dtype=bool)
    if target.all() or not target.any():
        return math.nan
    real = ~np.isnan(scores)
    order = np.argsort(-scores[real], kind="stable")
    t = target[real][order]
    # Accept the top k real scores, k = 0..n: FA = accepted non-targets, FR = the rest.
    fa = np.concatenate([[0], np.cumsum(~t)]) / np.sum(~target)
    fr = 1 - np.concatenate([[0], np.cumsum(t)]) / np.sum(target)
    crossed = np.flatnonzero(fa >= fr)
    if len(crossed) == 0:
        return float(np.min(np.maximum(fr, fa)))
    k = int(crossed[0])
    if k == 0:
        return float(fr[0])
    d0, d1 = fr[k - 1] - fa[k - 1], fr[k] - fa[k]
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float((fa[k - 1] + w * (fa[k] - fa[k - 1]) + fr[k - 1] + w * (fr[k] - fr[k - 1])) / 2)


def safe_scores(score_pairs: ScorePairs, enrol: list[Sound], test: list[Sound]) -> np.ndarray:
    """The scorer's scores, ``NaN`` for refused pairs, whatever the scorer raises."""
    try:
        scores = np.asarray(score_pairs(enrol, test), dtype=np.float64)
        if scores.shape == (len(enrol),):
            return scores
        log.warning("scorer returned %s scores for %d pairs; scoring pair by pair",
                    scores.shape, len(enrol))
    except Exception as exc:  # any scorer failure: pair by pair
        log.warning("scorer failed on the batch (%s); scoring pair by pair", type(exc).__name__)
    out = np.full(len(enrol), np.nan)
    for i, (a, b) in enumerate(zip(enrol, test, strict=True)):
        try:
            out[i] = float(np.asarray(score_pairs([a], [b]), dtype=np.float64).reshape(-1)[0])
        except Exception:  # a refused pair stays NaN
            continue
    return out


def run_condition(
    condition: Condition,
    trials: Sequence[Trial],
    load: Callable[[str], Sound],
    score_pairs: ScorePairs,
    threshold: Threshold,
    seed: int = 0,
    degrade_enrol: bool = False,
    cache: dict[str, Sound] | None = None,
) -> ConditionResult:
    """One condition over ``trials``: the test side degraded (and the enrolment side too
    with ``degrade_enrol``), each file once, seeded per file (``conditions.rng_for``).
    ``threshold`` may depend on the pair's bandwidth (the lower of its two rates, at most
    16 kHz), as the service's does."""
    cache = {} if cache is None else cache
    degraded: dict[tuple[str, str], Sound] = {}

    def audio(key: str, side: str, degrade: bool) -> Sound:
        if key not in cache:
            cache[key] = load(key)
        sound = cache[key]
        if not degrade:
            return sound
        if (side, key) not in degraded:
            rng = rng_for(seed, condition.name, f"{side}/{key}")
            degraded[side, key] = Sound(condition.apply(sound.samples, rng),
                                        min(sound.rate, condition.rate))
        return degraded[side, key]

    enrol = [audio(t.enrol, "enrol", degrade_enrol) for t in trials]
    test = [audio(t.test, "test", True) for t in trials]
    scores = safe_scores(score_pairs, enrol, test)
    bands = np.array([min(RATE, a.rate, b.rate) for a, b in zip(enrol, test, strict=True)])
    if callable(threshold):
        per_band = {int(band): threshold(int(band)) for band in np.unique(bands)}
        thresholds = np.array([per_band[int(band)] for band in bands])
        shown = ", ".join(f"{per_band[band]:g}" for band in sorted(per_band, reverse=True))
    else:
        thresholds = np.full(len(trials), float(threshold))
        shown = f"{threshold:g}"
    target = np.array([t.target for t in trials], dtype=bool)
    refused = np.isnan(scores)
    accepted = ~refused & (np.nan_to_num(scores, nan=-np.inf) >= thresholds)
    return ConditionResult(
        condition=condition.name,
        eer=equal_error_rate(scores, target),
        false_rejects=float(np.mean(~accepted[target])) if target.any() else math.nan,
        false_accepts=float(np.mean(accepted[~target])) if (~target).any() else math.nan,
        refused_target=int(np.sum(refused & target)),
        refused_nontarget=int(np.sum(refused & ~target)),
        n_target=int(target.sum()),
        n_nontarget=int((~target).sum()),
        threshold=shown,
    )


def run_conditions(
    conditions: Iterable[Condition],
    trials: Sequence[Trial],
    load: Callable[[str], Sound],
    score_pairs: ScorePairs,
    threshold: Threshold,
    seed: int = 0,
    degrade_enrol: bool = False,
    progress: Progress = no_progress,
) -> list[ConditionResult]:
    """Every condition in turn (``progress``: a bar over the conditions, the CLI's)."""
    cache: dict[str, Sound] = {}
    return [run_condition(condition, trials, load, score_pairs, threshold, seed, degrade_enrol,
                          cache)
            for condition in progress(list(conditions), "conditions")]


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def format_table(results: Sequence[ConditionResult]) -> str:
    """A Markdown table: EER, FR / FA at each row's threshold (refusals counted as
    rejections), and the refusals apart."""
    lines = [
        "| condition | EER | FR | FA | at threshold | refused target | refused non-target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.condition} | {_pct(r.eer)} | {_pct(r.false_rejects)} | "
            f"{_pct(r.false_accepts)} | {r.threshold} | {r.refused_target}/{r.n_target} | "
            f"{r.refused_nontarget}/{r.n_nontarget} |"
        )
    return "\n".join(lines)


# --- the service as the scorer (``evaluate --conditions``) ---------------------------------


def load_sound(path: Path) -> Sound:
    """A trial file at 16 kHz, sent at its own rate (at most 16 kHz)."""
    import soundfile as sf

    from analytic.lab.conditions import read_audio

    return Sound(read_audio(path), min(RATE, sf.info(str(path)).samplerate))


def babble_clips(data: Path, half: str, count: int = BABBLE_CLIPS) -> list[np.ndarray]:
    """Babble talkers: the first ``count`` train-clean-100 clips of LibriSpeech speakers in
    ``half`` (bench/splits); the trial lists hold test-other speakers, never these."""
    from analytic.lab.conditions import read_audio
    from analytic.lab.corpora import corpus_files

    files = [f for f in corpus_files(data, "librispeech", half) if f.label == "train-clean-100"]
    return [read_audio(data / "librispeech" / f.path) for f in files[:count]]


class ServiceScorer:
    """``score_pairs`` as ``VerificationService.verify`` scores: each sound written as a WAV
    at its rate, decoded by the service's intake (a refusal is ``NaN``), embedded in the band
    the pair is compared in (``service.pair_bandwidth``), scored by the policy's scorer for
    that band. Decodes and embeddings are kept per ``Sound`` object (held, so ids stay unique).

    ``mixed_low_cut_hz`` is an experiment the service does not make: a pair of a wideband and
    a narrowband recording is also cut below that frequency on both sides (the common band of
    a 16 kHz enrolment and a 300-3400 Hz call). Measured and not kept: docs/robustness.md."""

    def __init__(self, service: VerificationService, progress: Progress = no_progress,
                 mixed_low_cut_hz: float = 0.0) -> None:
        self.service = service
        self.progress = progress
        self.mixed_low_cut_hz = mixed_low_cut_hz
        self._clips: dict[int, tuple[Sound, Clip | None]] = {}
        self._prints: dict[tuple[int, tuple[int, float]], np.ndarray] = {}

    def clip(self, sound: Sound) -> Clip | None:
        if id(sound) not in self._clips:
            import io

            import soundfile as sf
            import soxr

            samples = sound.samples if sound.rate == RATE else soxr.resample(
                sound.samples, RATE, sound.rate, quality="HQ")
            buffer = io.BytesIO()
            sf.write(buffer, samples, sound.rate, format="WAV", subtype="FLOAT")
            try:
                clip: Clip | None = self.service.decode(buffer.getvalue(), "clip.wav")
            except AnalyticError:
                clip = None
            self._clips[id(sound)] = (sound, clip)
        return self._clips[id(sound)][1]

    def voiceprint(self, sound: Sound, clip: Clip, band: tuple[int, float]) -> np.ndarray:
        key = (id(sound), band)
        if key not in self._prints:
            self._prints[key] = self.service.voiceprint(clip, *band)
        return self._prints[key]

    def __call__(self, enrol: list[Sound], test: list[Sound]) -> np.ndarray:
        from analytic.service import pair_bandwidth

        scores = np.full(len(enrol), np.nan)
        pairs = list(zip(enrol, test, strict=True))
        for i, (a, b) in enumerate(self.progress(pairs, "pairs")):
            ca, cb = self.clip(a), self.clip(b)
            if ca is None or cb is None:
                continue
            bandwidth = pair_bandwidth([ca, cb])
            mixed = bandwidth < RATE <= max(ca.sample_rate, cb.sample_rate)
            band = (bandwidth, self.mixed_low_cut_hz if mixed else 0.0)
            scorer = self.service.policy.scorer_for(band[0])
            score = scorer.sample_scores(self.voiceprint(a, ca, band),
                                         self.voiceprint(b, cb, band))[0]
            scores[i] = float(score[0, 0])
        return scores
