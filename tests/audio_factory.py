"""Build test recordings in memory from the fixture speech (never written to disk)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


def load(path: Path) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(path, dtype="float32")
    return samples, rate


def encode(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def at_rate(path: Path, rate: int, fmt: str = "WAV") -> bytes:
    """The fixture resampled to ``rate`` (8 kHz telephone audio, 44.1 kHz, ...)."""
    samples, source_rate = load(path)
    return encode(soxr.resample(samples, source_rate, rate), rate, fmt)


def stereo(path: Path) -> bytes:
    samples, rate = load(path)
    return encode(np.stack([samples, 0.5 * samples], axis=1), rate)


def silence(seconds: float, rate: int = 16_000) -> bytes:
    return encode(np.zeros(int(seconds * rate), dtype=np.float32), rate)


def excerpt(path: Path, seconds: float) -> bytes:
    """The first ``seconds`` of speech, with a bit of silence around it."""
    samples, rate = load(path)
    pad = np.zeros(int(0.3 * rate), dtype=np.float32)
    return encode(np.concatenate([pad, samples[: int(seconds * rate)], pad]), rate)


def padded(path: Path, seconds_each_side: float, subtype: str | None = None) -> bytes:
    samples, rate = load(path)
    pad = np.zeros(int(seconds_each_side * rate), dtype=np.float32)
    return encode(np.concatenate([pad, samples, pad]), rate, subtype=subtype)
