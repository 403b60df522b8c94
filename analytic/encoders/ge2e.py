"""GE2E speaker encoder, with the pretrained weights shipped inside the Resemblyzer wheel."""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np

from analytic.encoders import unit

# Chosen at the equal-error point on the development speakers of LibriSpeech test-other
# (bench/trials/librispeech_dev.csv), never on the test speakers:
#   python -m analytic evaluate --trials bench/trials/librispeech_dev.csv \
#       --root ../shared/data/librispeech
GE2E_THRESHOLD = 0.724
# The same, on the development speakers with every file re-sampled to 8 kHz (add
# ``--sample-rate 8000``): band-limited speech scores higher for everyone.
GE2E_NARROWBAND_THRESHOLD = 0.77


class Ge2eEncoder:
    """Resemblyzer's 3-layer LSTM, 256-d output, 1.6 s partial windows averaged."""

    name = "ge2e"
    embedding_size = 256
    sample_rate = 16_000
    trimmed_input = True
    default_threshold = GE2E_THRESHOLD
    narrowband_threshold = GE2E_NARROWBAND_THRESHOLD

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # webrtcvad (a Resemblyzer dependency) imports the deprecated pkg_resources.
            warnings.simplefilter("ignore", UserWarning)
            from resemblyzer import VoiceEncoder

        self._model = VoiceEncoder(device="cpu", verbose=False)
        self._model.eval()
        # Inference never mutates the module, so calls may overlap; the semaphore only keeps
        # their number at the core count (more would just queue inside torch).
        self._slots = threading.BoundedSemaphore(os.cpu_count() or 1)
        # The first forward pass pays for lazy imports and allocator warm-up (~1.5 s); pay it
        # at start-up so the first request is as fast as the rest.
        self.embed(np.zeros(self.sample_rate, dtype=np.float32))

    def embed(self, speech: np.ndarray) -> np.ndarray:
        with self._slots:
            return unit(self._model.embed_utterance(np.asarray(speech, dtype=np.float32)))

    def embed_partials(self, mels: np.ndarray) -> np.ndarray:
        """Unit embeddings of (n, 160, 40) power-mel partials, for the gender head, which
        builds its own partials over the speech of each analysis window."""
        import torch

        batch = torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32))
        with self._slots, torch.inference_mode():
            return self._model(batch).cpu().numpy()
