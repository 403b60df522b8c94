"""SpeechBrain's ECAPA-TDNN, loaded with ``EncoderClassifier.from_hparams``.

``source`` is a local folder holding ``hyperparams.yaml`` and its checkpoints (fully offline),
or a hub id such as ``speechbrain/spkrec-ecapa-voxceleb`` for machines that can download.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from analytic import torchaudio_compat  # noqa: F401  (must precede the speechbrain import)
from analytic.encoders import unit

# SpeechBrain's published cosine threshold for spkrec-ecapa-voxceleb (its SpeakerRecognition
# default). Not re-tuned here: the real ECAPA weights cannot be downloaded on this machine.
ECAPA_THRESHOLD = 0.25


class EcapaEncoder:
    """ECAPA-TDNN x-vector extractor; the embedding size comes from the checkpoint."""

    name = "ecapa"
    sample_rate = 16_000
    trimmed_input = True
    default_threshold = ECAPA_THRESHOLD
    narrowband_threshold = None  # not measurable without the real weights

    def __init__(self, source: str, savedir: str | None = None) -> None:
        import torch
        from speechbrain.inference.speaker import EncoderClassifier
        from speechbrain.utils.fetching import LocalStrategy

        local = Path(source).is_dir()
        self._torch = torch
        self._model = EncoderClassifier.from_hparams(
            source=str(Path(source).resolve()) if local else source,
            savedir=savedir if savedir or not local else str(Path(source).resolve()),
            run_opts={"device": "cpu"},
            local_strategy=LocalStrategy.NO_LINK if local else LocalStrategy.SYMLINK,
        )
        self._model.eval()
        self._lock = threading.Lock()
        self.embedding_size = int(self.embed(np.zeros(self.sample_rate, np.float32)).shape[0])

    def embed(self, speech: np.ndarray) -> np.ndarray:
        wav = self._torch.from_numpy(np.ascontiguousarray(speech, dtype=np.float32))[None, :]
        with self._lock, self._torch.inference_mode():
            vector = self._model.encode_batch(wav).reshape(-1).cpu().numpy()
        return unit(vector)
