"""Cosine scoring and the threshold decision."""

from __future__ import annotations

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two voiceprints (already unit length, so a clipped dot product)."""
    return float(np.clip(np.dot(a, b), -1.0, 1.0))


def decide(score: float, threshold: float) -> bool:
    """Same speaker when the score reaches the threshold; ties accept, as documented."""
    return score >= threshold
