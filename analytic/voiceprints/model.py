"""A household member's voiceprint: per-sample embeddings and their centroid, never audio."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np


def centroid(samples: np.ndarray) -> np.ndarray:
    """Mean of unit embeddings, re-normalised to unit length (a dot product is then a cosine).

    Stored with every voiceprint (and exported with it) as a compact summary of the person;
    decisions average the per-sample scores instead (``VoiceprintScorer.score_members``), which
    kept one threshold valid whatever the number of enrolment samples (docs/household.md).
    """
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    mean = samples.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Voiceprint:
    """Everything kept about one person. ``samples`` is (n, d) float32, unit rows."""

    external_id: str
    encoder: str
    samples: np.ndarray
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    centroid: np.ndarray = field(default=None)  # type: ignore[arg-type]  # set below

    def __post_init__(self) -> None:
        self.samples = np.atleast_2d(np.asarray(self.samples, dtype=np.float32))
        if self.centroid is None:
            self.centroid = centroid(self.samples)

    @property
    def sample_count(self) -> int:
        return int(self.samples.shape[0])
