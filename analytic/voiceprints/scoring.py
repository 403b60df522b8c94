"""Score test embeddings against enrolled voiceprints: raw cosine, or AS-norm when available.

One scorer serves the service and ``python -m analytic evaluate``, so the figures measured on
the development and test halves describe the decisions the service makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from analytic.scorenorm import AsNorm

NormName = Literal["asnorm", "none"]
Stats = tuple[np.ndarray, np.ndarray]  # AS-norm mean and std of each row against the cohort


class VoiceprintScorer:
    """Scores against enrolment samples; ``norm`` None means raw cosine."""

    def __init__(self, norm: AsNorm | None) -> None:
        self.norm = norm

    @property
    def name(self) -> NormName:
        return "asnorm" if self.norm is not None else "none"

    def stats(self, samples: np.ndarray) -> Stats | None:
        """What AS-norm needs of enrolment rows, whatever they are scored against: a holder of
        many voiceprints (``cache.py``) computes it once per change, not once per request."""
        return None if self.norm is None else self.norm.stats(samples)

    def sample_scores(
        self, samples: np.ndarray, tests: np.ndarray, sample_stats: Stats | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(score, raw cosine) of every test row against every sample row: (tests, samples).

        ``sample_stats``: ``stats(samples)`` when the caller already has it."""
        samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
        tests = np.atleast_2d(np.asarray(tests, dtype=np.float32))
        raw = np.clip(tests @ samples.T, -1.0, 1.0).astype(np.float64)
        if self.norm is None:
            return raw, raw
        mean_s, std_s = sample_stats if sample_stats is not None else self.norm.stats(samples)
        mean_t, std_t = self.norm.stats(tests)
        return self.norm.normalise_many(raw, (mean_s[None, :], std_s[None, :]),
                                        (mean_t[:, None], std_t[:, None])), raw

    def score_many(self, enrolled: Sequence[np.ndarray], test: np.ndarray) -> np.ndarray:
        """Scores of one test embedding against each enrolment vector."""
        if len(enrolled) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.sample_scores(np.stack(list(enrolled)), test)[0][0]

    def score(self, enrolled: np.ndarray, test: np.ndarray) -> float:
        return float(self.score_many([enrolled], test)[0])

    def score_members(
        self, members: Sequence[np.ndarray], test: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(score, raw cosine) of a test embedding against each member's enrolment samples.

        A member's score is the mean of the (normalised) scores of their samples. Chosen over
        the centroid on the development speakers: it keeps scores on the one-sample scale, so
        one threshold fits members enrolled from one recording or from ten (the centroid's
        scores, target and impostor alike, rise with the number of samples).
        """
        if len(members) == 0:
            empty = np.zeros(0, dtype=np.float64)
            return empty, empty
        rows = [np.atleast_2d(np.asarray(m, dtype=np.float32)) for m in members]
        owner = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
        return self.score_owned(np.vstack(rows), owner, len(rows), test)

    def score_owned(
        self, samples: np.ndarray, owner: np.ndarray, members: int, test: np.ndarray,
        sample_stats: Stats | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``score_members`` on the members' samples stacked into one matrix, ``owner[i]``
        the member of row ``i``: one matrix product for the whole household."""
        scores, raw = self.sample_scores(samples, test, sample_stats)
        return member_means(scores[0], owner, members), member_means(raw[0], owner, members)


def member_means(sample_scores: np.ndarray, owner: np.ndarray, members: int) -> np.ndarray:
    """Per-member mean of per-sample scores; ``owner[i]`` is the member of sample ``i``."""
    counts = np.bincount(owner, minlength=members)
    return np.bincount(owner, sample_scores, members) / counts
