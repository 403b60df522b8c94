"""A verification system's error rates per degradation: EER, and FR / FA at a threshold.

The scoring is the caller's: ``score_pairs(enrol_audio_list, test_audio_list)`` returns one
score per pair (higher = more alike), and ``NaN`` for a pair it refused (a clip too short, no
speech, ...). So this module needs nothing of how a product scores (encoder, normalisation,
calibration) and ``python -m analytic evaluate`` and ``bench/robustness.py`` can share it.

A refused pair counts as a rejection: a genuine user refused is a false rejection, an
impostor refused is not a false acceptance, and the EER is taken with refused pairs rejected
at every threshold. Refusals are also counted apart, so "rejected for a bad score" and
"refused as too short" can be told apart in the table. A scorer that raises instead of
returning ``NaN`` is retried pair by pair, and the pairs that still raise count as refused:
one bad file never ends the table with a traceback.

Audio is handed to the scorer as the same array object for the same file within one
condition, so a scorer may cache embeddings by object identity within a call.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from analytic.lab.conditions import Condition, rng_for

log = logging.getLogger(__name__)

ScorePairs = Callable[[list[np.ndarray], list[np.ndarray]], np.ndarray]


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


def safe_scores(score_pairs: ScorePairs, enrol: list[np.ndarray], test: list[np.ndarray]
                ) -> np.ndarray:
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
    load: Callable[[str], np.ndarray],
    score_pairs: ScorePairs,
    threshold: float,
    seed: int = 0,
    degrade_enrol: bool = False,
    cache: dict[str, np.ndarray] | None = None,
) -> ConditionResult:
    """One condition over ``trials``: the test side degraded (and the enrolment side too
    with ``degrade_enrol``), each file once, seeded per file (``conditions.rng_for``)."""
    cache = {} if cache is None else cache
    clean: dict[str, np.ndarray] = {}
    degraded: dict[tuple[str, str], np.ndarray] = {}

    def audio(key: str, side: str, degrade: bool) -> np.ndarray:
        if key not in cache:
            cache[key] = load(key)
        if not degrade:
            return clean.setdefault(key, cache[key])
        if (side, key) not in degraded:
            degraded[side, key] = condition.apply(cache[key], rng_for(seed, condition.name,
                                                                     f"{side}/{key}"))
        return degraded[side, key]

    enrol = [audio(t.enrol, "enrol", degrade_enrol) for t in trials]
    test = [audio(t.test, "test", True) for t in trials]
    scores = safe_scores(score_pairs, enrol, test)
    target = np.array([t.target for t in trials], dtype=bool)
    refused = np.isnan(scores)
    accepted = ~refused & (scores >= threshold)
    return ConditionResult(
        condition=condition.name,
        eer=equal_error_rate(scores, target),
        false_rejects=float(np.mean(~accepted[target])) if target.any() else math.nan,
        false_accepts=float(np.mean(accepted[~target])) if (~target).any() else math.nan,
        refused_target=int(np.sum(refused & target)),
        refused_nontarget=int(np.sum(refused & ~target)),
        n_target=int(target.sum()),
        n_nontarget=int((~target).sum()),
    )


def run_conditions(
    conditions: Iterable[Condition],
    trials: Sequence[Trial],
    load: Callable[[str], np.ndarray],
    score_pairs: ScorePairs,
    threshold: float,
    seed: int = 0,
    degrade_enrol: bool = False,
    progress: bool = True,
) -> list[ConditionResult]:
    """Every condition in turn (a progress bar on stderr with ``progress``)."""
    conditions = list(conditions)
    cache: dict[str, np.ndarray] = {}
    results = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(conditions), unit="condition", leave=False)
    for condition in conditions:
        if bar is not None:
            bar.set_description(condition.name)
        results.append(run_condition(condition, trials, load, score_pairs, threshold, seed,
                                     degrade_enrol, cache))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return results


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def format_table(results: Sequence[ConditionResult], threshold: float) -> str:
    """A Markdown table: EER, FR / FA at ``threshold`` (refusals counted as rejections), and
    the refusals apart."""
    lines = [
        f"| condition | EER | FR at {threshold:g} | FA at {threshold:g} | refused target | "
        "refused non-target |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.condition} | {_pct(r.eer)} | {_pct(r.false_rejects)} | "
            f"{_pct(r.false_accepts)} | {r.refused_target}/{r.n_target} | "
            f"{r.refused_nontarget}/{r.n_nontarget} |"
        )
    return "\n".join(lines)


def print_table(results: Sequence[ConditionResult], threshold: float) -> None:
    print(format_table(results, threshold))
