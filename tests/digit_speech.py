"""Spoken digits for the liveness tests, made at test time (nothing is shipped).

* ``Espeak``: espeak-ng (Debian package, installed by ``script/setup --test``) says digit
  strings; synthetic, but always available and free of licence questions (its output is ours).
* ``Fsdd``: real people, from the Free Spoken Digit Dataset (CC BY-SA 4.0) staged in
  ``../shared/data/fsdd``: one speaker's single-digit takes joined with pauses. The tests that
  use it skip, saying why, where it is absent.

Both join digits with short pauses, as a person answering a challenge does.
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
ENROL_TAKES, ANSWER_TAKES = (0, 1), (2, 3, 4)


def wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def joined(parts: list[np.ndarray], rate: int, seed: int) -> np.ndarray:
    rng = random.Random(seed)
    pieces = [np.zeros(int(0.3 * rate), np.float32)]
    for part in parts:
        pieces += [part.astype(np.float32), np.zeros(int(rng.uniform(0.15, 0.35) * rate),
                                                     np.float32)]
    pieces.append(np.zeros(int(0.3 * rate), np.float32))
    out = np.concatenate(pieces)
    return out + np.random.default_rng(seed).normal(0, 1e-4, out.size).astype(np.float32)


class Espeak:
    """One synthetic voice at 16 kHz."""

    rate = 16_000

    def __init__(self, voice: str = "en-us") -> None:
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng is not installed (script/setup --test installs it)")
        self.voice = voice

    def say(self, digits: str, speed: int = 160, pitch: int = 50) -> bytes:
        text = ", ".join(WORDS[int(d)] for d in digits.replace(" ", ""))
        return wav(self._speak(text, speed, pitch), self.rate)

    def ten(self, speed: int = 150) -> bytes:
        """ "zero, one, ..., nine": a digit-template enrolment recording."""
        return wav(self._speak(", ".join(WORDS), speed, 50), self.rate)

    def _speak(self, text: str, speed: int, pitch: int) -> np.ndarray:
        out = subprocess.run(["espeak-ng", "-v", self.voice, "-s", str(speed), "-p", str(pitch),
                              "--stdout", text], capture_output=True, check=True,
                             timeout=60).stdout
        samples, rate = sf.read(io.BytesIO(out), dtype="float32")
        silence = np.zeros(int(0.3 * rate), np.float32)
        return soxr.resample(np.concatenate([silence, samples, silence]), rate,
                             self.rate).astype(np.float32)


class Fsdd:
    """One FSDD speaker at 8 kHz: enrolment from takes 0-1, answers from takes 2-4."""

    rate = 8_000

    def __init__(self, speaker: str) -> None:
        if not (FSDD / "recordings").is_dir():
            pytest.skip(f"FSDD is not staged at {FSDD} (real-speech liveness test)")
        self.takes = {d: [sf.read(FSDD / "recordings" / f"{d}_{speaker}_{i}.wav",
                                  dtype="float32")[0] for i in range(5)] for d in range(10)}

    def say(self, digits: str, seed: int = 0) -> bytes:
        digits = digits.replace(" ", "")
        parts = [self.takes[int(d)][ANSWER_TAKES[(seed + i) % 3]] for i, d in enumerate(digits)]
        return wav(joined(parts, self.rate, seed), self.rate)

    def ten(self, take: int) -> bytes:
        return wav(joined([self.takes[d][take] for d in range(10)], self.rate, take), self.rate)
