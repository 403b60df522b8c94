"""Gender (``male`` / ``female``): a logistic head on a GE2E speaker embedding.

The embedding carries timbre (vocal tract, voice quality) and holds up across languages and
emotions. Pitch is deliberately not a feature: it rises with arousal, so a head that leaned on
it called shouting men women (RAVDESS 97.9 % instead of 99 %+, see MODEL_CARD_gender.md), and
it did not help the one LibriSpeech man with a female-range voice either.
Trained on LibriSpeech train-clean-100 (``python -m analytic.lab.train gender``).
"""

from __future__ import annotations

import numpy as np

from analytic.classifiers import PartialEmbedder, WindowClassifier
from analytic.classifiers.features import Frames, Speech, normalised_mel, partial_batch
from analytic.classifiers.head import LinearHead


def window_embedding(embedder: PartialEmbedder, frames: Frames, speech: Speech) -> np.ndarray:
    """Unit mean of the GE2E partial embeddings over the window's speech, at a fixed level."""
    partials = embedder(partial_batch(normalised_mel(frames, speech)))
    mean = np.asarray(partials, dtype=np.float64).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def gender_vector(embedder: PartialEmbedder, frames: Frames, speech: Speech) -> np.ndarray:
    """The head's input: the window's 256-d GE2E embedding."""
    return window_embedding(embedder, frames, speech)


class GenderClassifier(WindowClassifier):
    name = "gender"
    licence = "CC-BY-4.0 (trained on LibriSpeech train-clean-100)"

    def __init__(self, head: LinearHead, embedder: PartialEmbedder) -> None:
        super().__init__(head)
        self._embedder = embedder

    def features(self, frames: Frames, speech: Speech) -> np.ndarray:
        return gender_vector(self._embedder, frames, speech)
