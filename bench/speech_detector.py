"""Measure the speech-not-noise check (``analytic/speechness.py``) on real speech and on noise.

    python bench/speech_detector.py --data ../shared/data [--per-corpus N] [--csv OUT]

False refusals: of the speech files of each corpus in ``--data`` that the intake accepts
otherwise (enough speech, not too long), the share the check refuses as ``no_speech``.
Noise refused: of a seeded synthetic set (white, pink and brown noise, tones, square and
sawtooth waves, two-tone chords, harmonic "melodies", at 8/16/44.1 kHz and random levels) and
of 5 s windows of the household noise recordings (the second half of each file: the first half
was used to choose the thresholds), the share refused. Seeds 1000+ are the test set; the
thresholds were chosen on seeds 0-99 and the features of 40-80 files of each speech corpus.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import sawtooth, square

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytic.audio import TARGET_RATE, read_mono, resample, trim_to_speech
from analytic.cli.settings import Settings
from analytic.speechness import looks_like_speech, speech_features

CORPORA = ("librispeech", "wuw_telephone", "speech_commands", "ravdess", "emodb", "fsdd")
_DEFAULTS = Settings()
MIN_SPEECH_S, MAX_DURATION_S = _DEFAULTS.min_speech_s, _DEFAULTS.max_duration_s  # the service's
NOISE_KINDS = ("white", "pink", "brown", "tone", "square", "sawtooth", "chord", "melody")


def synthetic(kind: str, seed: int) -> tuple[np.ndarray, int]:
    """One seeded noise clip of ``kind``: 2-8 s at a random rate and level."""
    rng = np.random.default_rng(seed)
    rate = int(rng.choice([8000, 16000, 44100]))
    t = np.arange(int(rate * rng.uniform(2, 8))) / rate
    level = 10 ** rng.uniform(-2, -0.3)
    f0 = rng.uniform(80, 2000)
    if kind == "white":
        x = rng.normal(size=len(t))
    elif kind in ("pink", "brown"):
        spectrum = np.fft.rfft(rng.normal(size=len(t)))
        freqs = np.fft.rfftfreq(len(t), 1 / rate)
        spectrum /= np.maximum(freqs, 20.0) ** (0.5 if kind == "pink" else 1.0)
        x = np.fft.irfft(spectrum, len(t))
    elif kind == "tone":
        x = np.sin(2 * np.pi * f0 * t)
    elif kind == "square":
        x = square(2 * np.pi * f0 * t)
    elif kind == "sawtooth":
        x = sawtooth(2 * np.pi * f0 * t)
    elif kind == "chord":
        x = sum(np.sin(2 * np.pi * f0 * r * t) for r in (1.0, 1.25, 1.5))
    else:  # melody: harmonic notes of a scale, a new one every 150-500 ms
        x = np.zeros(len(t))
        start = 0
        while start < len(t):
            n = int(rate * rng.uniform(0.15, 0.5))
            note = 220 * 2 ** (rng.integers(0, 12) / 12)
            seg = t[start:start + n] - t[start]
            x[start:start + n] = sum(np.sin(2 * np.pi * note * k * seg) / k for k in range(1, 6))
            start += n
    x = x / (np.abs(x).max() + 1e-12) * level
    return x.astype(np.float32), rate


def household_windows(data: Path) -> list[tuple[str, np.ndarray, int]]:
    out = []
    for name in ("boiler", "washing_machine"):
        x, rate = sf.read(data / "noise" / f"{name}.flac", dtype="float32")
        half = len(x) // 2
        step = 5 * rate
        for start in range(half, len(x) - step + 1, step):
            out.append((name, x[start:start + step], rate))
    return out


def judge(samples: np.ndarray, rate: int, min_speech_s: float = MIN_SPEECH_S) -> str:
    """``accepted``, ``refused`` (by the check) or ``other`` (refused before it: no speech at
    all or too little of it)."""
    speech = trim_to_speech(resample(samples, rate))
    if len(speech) / TARGET_RATE < min_speech_s:
        return "other"
    return "accepted" if looks_like_speech(speech_features(speech)) else "refused"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--per-corpus", type=int, default=0, help="0 = every file")
    parser.add_argument("--noise-per-kind", type=int, default=100)
    parser.add_argument("--min-speech-s", type=float, default=MIN_SPEECH_S,
                        help="judge files with at least this much speech (the service's "
                        "VOICEGATE_MIN_SPEECH_S, default 1.0; lower it for short commands)")
    args = parser.parse_args(argv)

    total = defaultdict(int)
    print("corpus            files  judged  refused  false refusal")
    for corpus in CORPORA:
        manifest = args.data / corpus / "manifest.csv"
        if not manifest.exists():
            continue
        with manifest.open() as handle:
            rows = list(csv.DictReader(handle))
        if args.per_corpus:
            random.Random(0).shuffle(rows)
            rows = rows[:args.per_corpus]
        counts = defaultdict(int)
        for row in rows:
            data = (args.data / corpus / row["path"]).read_bytes()
            try:
                samples, rate = read_mono(data, row["path"], MAX_DURATION_S)
            except Exception:  # unreadable or too long: not this check's business
                counts["other"] += 1
                continue
            counts[judge(samples, rate, args.min_speech_s)] += 1
        judged = counts["accepted"] + counts["refused"]
        for key, value in counts.items():
            total[key] += value
        share = counts["refused"] / judged if judged else 0.0
        print(f"{corpus:16} {len(rows):6} {judged:7} {counts['refused']:8}  {share:8.2%}")
    judged = total["accepted"] + total["refused"]
    print(f"{'all speech':16} {'':6} {judged:7} {total['refused']:8}  "
          f"{total['refused'] / max(judged, 1):8.2%}")

    print("\nnoise             clips  refused  (other = no speech found at all)")
    noise_total = noise_refused = 0
    cases = [(kind, *synthetic(kind, 1000 + i)) for kind in NOISE_KINDS
             for i in range(args.noise_per_kind)]
    cases += household_windows(args.data)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, samples, rate in cases:
        by_kind[kind].append(judge(samples, rate, args.min_speech_s))
    for kind, verdicts in by_kind.items():
        refused = sum(v != "accepted" for v in verdicts)
        noise_total += len(verdicts)
        noise_refused += refused
        print(f"{kind:16} {len(verdicts):6} {refused / len(verdicts):8.2%}  "
              f"(other {verdicts.count('other')})")
    print(f"{'all noise':16} {noise_total:6} {noise_refused / noise_total:8.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
