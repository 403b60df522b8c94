"""Gender and arousal classifiers: a window of frame features in, a labelled decision out.

Each classifier is a small linear head (``head.LinearHead``, weights in ``analytic/models``)
over window statistics from ``features``; the gender head also reads GE2E embeddings. They are
loaded once (``load_classifiers``) and are safe to share between threads: the heads are
read-only arrays and the GE2E forward pass is serialised by the encoder's own lock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytic.classifiers.features import Frames, Speech, speech_in
from analytic.classifiers.head import LinearHead

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
UNKNOWN = "unknown"

# Less speech than this in a window and no model is asked: 0.5 s of speech-level frames, of
# which 0.25 s voiced, is about two syllables, the least that pitch statistics mean anything on.
MIN_ACTIVE_FRAMES = 50
MIN_VOICED_FRAMES = 25

# (n, 160, 40) power-mel partials -> (n, 256) unit GE2E embeddings.
PartialEmbedder = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Decision:
    """A label (one of the model's classes, or ``unknown``) and the model's confidence."""

    result: str
    confidence: float
    probabilities: dict[str, float] | None = None  # None when the model was not asked


class WindowClassifier:
    """Shared decision logic: enough speech, then the head, then the confidence floor."""

    name: str = ""
    licence: str = ""

    def __init__(self, head: LinearHead) -> None:
        self.head = head
        self.labels: tuple[str, ...] = head.classes
        self.receptive_field_ms = int(head.meta["receptive_field_ms"])
        # Below this top-class probability the answer is ``unknown``: chosen in train.py on
        # cross-validation (never on a test set) and stored with the weights.
        self.unknown_below = float(head.meta["unknown_below"])

    def features(self, frames: Frames, speech: Speech) -> np.ndarray:
        raise NotImplementedError

    def enough_speech(self, speech: Speech) -> bool:
        return speech.n_active >= MIN_ACTIVE_FRAMES and speech.n_voiced >= MIN_VOICED_FRAMES

    def classify(self, frames: Frames, speech: Speech | None = None) -> Decision:
        """Decide over all of ``frames`` (one window); ``speech`` saves recomputing it."""
        speech = speech if speech is not None else speech_in(frames)
        if not self.enough_speech(speech):
            return Decision(UNKNOWN, 0.0)
        p = self.head.probabilities(self.features(frames, speech))
        best = int(np.argmax(p))
        confidence = float(p[best])
        label = self.labels[best] if confidence >= self.unknown_below else UNKNOWN
        return Decision(label, confidence, dict(zip(self.labels, map(float, p), strict=True)))


def load_classifiers(
    embedder: PartialEmbedder, models_dir: Path = MODELS_DIR
) -> dict[str, WindowClassifier]:
    """Both classifiers from their weight files (a missing file fails at start-up, loudly)."""
    from analytic.classifiers.arousal import ArousalClassifier
    from analytic.classifiers.gender import GenderClassifier

    gender = GenderClassifier(LinearHead.load(models_dir / "gender.npz"), embedder)
    arousal = ArousalClassifier(LinearHead.load(models_dir / "arousal.npz"))
    return {"gender": gender, "arousal": arousal}
