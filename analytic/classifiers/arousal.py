"""Arousal (``high`` / ``neutral`` / ``low``): a logistic head on level-invariant prosody.

Features only (no speaker embedding): pitch level, range and movement, energy dynamics
relative to the window, voicing and rate, spectral balance and envelope (see
``features.prosody_vector``). Speaker embeddings raised actor-disjoint RAVDESS scores a little
but cost cross-corpus accuracy on EmoDB, i.e. they learn the actors, not arousal.

Trained on RAVDESS, so the weights are CC BY-NC-SA 4.0: non-commercial use only.
"""

from __future__ import annotations

import numpy as np

from analytic.classifiers import WindowClassifier
from analytic.classifiers.features import Frames, Speech, prosody_vector


class ArousalClassifier(WindowClassifier):
    name = "arousal"
    licence = "CC-BY-NC-SA-4.0 (trained on RAVDESS): non-commercial use only"

    def features(self, frames: Frames, speech: Speech) -> np.ndarray:
        return prosody_vector(frames, speech)
