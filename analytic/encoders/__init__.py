"""Speaker encoders behind one interface: audio in, unit-length voiceprint out.

An encoder is loaded once at start-up (``load_encoder``) and shared by every request; each
implementation serialises its forward pass with a lock so the waitress threads and the bus
workers can call ``embed`` at the same time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from analytic.settings import CoreSettings

ENCODER_NAMES = ("campplus", "ge2e", "ecapa")


class ModelUnavailable(RuntimeError):
    """The configured encoder cannot be loaded (missing package, wrong weight file): a
    deployment fault that stops start-up with a message naming the fix, not a client error."""


class SpeakerEncoder(Protocol):
    """What the rest of the analytic may rely on."""

    name: str
    embedding_size: int
    sample_rate: int
    default_threshold: float
    # Threshold for pairs where either recording is narrowband (below 16 kHz), or None to use
    # ``default_threshold`` for those too.
    @property
    def narrowband_threshold(self) -> float | None: ...
    # True: the encoder hears the recording's speech with pauses trimmed (GE2E's training
    # recipe); False: the whole recording (CAM++, chosen on the development halves).
    trimmed_input: bool

    def embed(self, speech: np.ndarray) -> np.ndarray:
        """Voiceprint of 16 kHz mono float32 speech, L2-normalised."""
        ...


def unit(vector: np.ndarray) -> np.ndarray:
    """Scale to length one so a dot product is the cosine score."""
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def load_encoder(settings: CoreSettings) -> SpeakerEncoder:
    """Build the configured encoder; imports are local so ``ge2e`` never imports SpeechBrain
    and CAM++ on ONNX Runtime never imports torch.

    torch's default (one thread per core) spins and stalls when waitress threads or bus workers
    run models side by side on a small machine: measured 5-10x slower there. With OpenMP the
    setting is per thread, so analytic/__init__.py also sets OMP_NUM_THREADS, which every
    thread inherits, before torch is first imported; the torch paths set it too.
    """
    if settings.encoder != "campplus":
        import torch

        torch.set_num_threads(settings.torch_threads)
    if settings.encoder == "campplus":
        from analytic.encoders.campplus import CamPlusPlusEncoder

        return CamPlusPlusEncoder(
            onnx_dir=Path(settings.model_cache_dir).expanduser() if settings.onnx else None,
            threads=settings.torch_threads)
    if settings.encoder == "ge2e":
        from analytic.encoders.ge2e import Ge2eEncoder

        return Ge2eEncoder()
    if settings.encoder == "ecapa":
        from analytic.encoders.ecapa import EcapaEncoder

        return EcapaEncoder(settings.ecapa_source, savedir=settings.ecapa_savedir)
    raise ValueError(f"unknown encoder {settings.encoder!r}; choose one of {ENCODER_NAMES}")
