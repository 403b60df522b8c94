"""Gender (``male`` / ``female``): a logistic head on the CAM++ speaker embedding of a window.

The embedding is the verification encoder's (``analytic.encoders.campplus``), computed on the
window's audio as it is (untrimmed: CAM++ normalises its filterbank per utterance, so the
recording level cancels out). One encoder therefore serves verification and gender, and a
caller that already holds a clip's CAM++ embedding can ask for its gender without a second
forward pass (``GenderClassifier.from_embedding``).

Whether median/10th/90th-percentile pitch (semitones, voiced frames) is appended is a choice
stored with the weights (``meta["inputs"]``), made on the development halves in ``train.py``.
The head was trained on the development speakers of LibriSpeech, RAVDESS, EmoDB and
wuw_telephone, each clip also band-limited to 8 kHz, so telephone speech is in its training
(``python -m analytic.train gender``; figures in ``MODEL_CARD_gender.md``).
"""

from __future__ import annotations

import numpy as np

from analytic.classifiers import Decision, Embedder, WindowClassifier
from analytic.classifiers.features import Frames, Speech, semitones
from analytic.classifiers.head import LinearHead

EMBEDDING_ONLY = "campplus"
WITH_PITCH = "campplus+pitch"


def pitch_stats(frames: Frames, speech: Speech) -> np.ndarray:
    """10th, 50th and 90th percentile pitch of the voiced frames, in semitones above 55 Hz."""
    voiced = frames.f0[speech.voiced]
    if len(voiced) == 0:
        return np.zeros(3, dtype=np.float64)
    return np.percentile(semitones(voiced), [10, 50, 90]).astype(np.float64)


def gender_vector(
    embedding: np.ndarray, frames: Frames, speech: Speech, inputs: str
) -> np.ndarray:
    """The head's input for ``inputs`` (``EMBEDDING_ONLY`` or ``WITH_PITCH``)."""
    embedding = np.asarray(embedding, dtype=np.float64)
    if inputs == WITH_PITCH:
        return np.concatenate([embedding, pitch_stats(frames, speech)])
    return embedding


class GenderClassifier(WindowClassifier):
    name = "gender"
    licence = "see the weights' meta (MODEL_CARD_gender.md)"

    def __init__(self, head: LinearHead, embed: Embedder) -> None:
        super().__init__(head)
        self._embed = embed
        self.inputs = str(head.meta.get("inputs", EMBEDDING_ONLY))
        self.licence = str(head.meta.get("licence", self.licence))

    def features(self, frames: Frames, speech: Speech, samples: np.ndarray | None = None
                 ) -> np.ndarray:
        if samples is None:
            raise ValueError("the gender head needs the window's samples for CAM++")
        return gender_vector(self._embed(samples), frames, speech, self.inputs)

    def from_embedding(self, embedding: np.ndarray, frames: Frames, speech: Speech) -> Decision:
        """The decision for a clip whose CAM++ embedding the caller already computed (the
        verification pass); ``frames``/``speech`` give the speech check and the pitch."""
        if not self.enough_speech(speech):
            return Decision("unknown", 0.0)
        return self.decide(gender_vector(embedding, frames, speech, self.inputs))
