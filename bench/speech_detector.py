"""Measure the speech detector and the speech-not-noise check on real speech and on noise.

    python bench/speech_detector.py --data ../shared/data [--per-corpus N]

Per corpus and half (``bench/splits``): files refused before the check (no speech found, or
less than ``--min-speech-s`` of it: ``too_short``), and the speech the detector kept against
an energy reference (the 20 ms frames within 30 dB of the clip's loud frames,
``analytic.conditions.active_speech_s``): the median ratio, and the files where the detector
kept less than 80% of the reference (speech lost; on noisy recordings the reference counts
the noise floor too, so a low ratio there is a question, not proof).

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
from analytic.lab.conditions import active_speech_s
from analytic.speechness import looks_like_speech, speech_features

CORPORA = ("librispeech", "wuw_telephone", "speech_commands", "ravdess", "emodb", "fsdd")
_DEFAULTS = Settings()
MIN_SPEECH_S, MAX_DURATION_S = _DEFAULTS.min_speech_s, _DEFAULTS.max_duration_s  # the service's
SPLITS = Path(__file__).resolve().parent / "splits"
LOST_RATIO = 0.8  # kept under this share of the energy reference: speech lost
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
    """``accepted``, ``refused`` (by the check), ``no_speech`` (the detector found none) or
    ``too_short`` (less than ``min_speech_s`` of it)."""
    return judge_speech(trim_to_speech(resample(samples, rate)), min_speech_s)


def judge_speech(speech: np.ndarray, min_speech_s: float) -> str:
    if not len(speech):
        return "no_speech"
    if len(speech) / TARGET_RATE < min_speech_s:
        return "too_short"
    return "accepted" if looks_like_speech(speech_features(speech)) else "refused"


def halves(corpus: str) -> dict[str, str]:
    """speaker -> ``dev`` / ``test`` from ``bench/splits``; empty when the corpus has none."""
    path = SPLITS / f"{corpus}.csv"
    if not path.exists():
        return {}
    with path.open() as handle:
        return {row["speaker"]: row["half"] for row in csv.DictReader(handle)}


def speech_corpora(args: argparse.Namespace) -> None:
    """One line per corpus and half: refusals before the check, speech kept, false refusals."""
    total: dict[str, int] = defaultdict(int)
    print("corpus          half  files  unreadable  no speech  too short  judged  refused  "
          "false refusal  kept/reference (median)  speech lost")
    for corpus in CORPORA:
        manifest = args.data / corpus / "manifest.csv"
        if not manifest.exists():
            continue
        with manifest.open() as handle:
            rows = list(csv.DictReader(handle))
        if args.per_corpus:
            random.Random(0).shuffle(rows)
            rows = rows[:args.per_corpus]
        half_of = halves(corpus)
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        ratios: dict[str, list[float]] = defaultdict(list)
        short: list[str] = []
        for row in rows:
            half = half_of.get(row["speaker"], "-")
            data = (args.data / corpus / row["path"]).read_bytes()
            try:
                samples, rate = read_mono(data, row["path"], MAX_DURATION_S)
            except Exception:  # unreadable or too long: not this check's business
                counts[half]["unreadable"] += 1
                continue
            audio = resample(samples, rate)
            speech = trim_to_speech(audio)
            verdict = judge_speech(speech, args.min_speech_s)
            counts[half][verdict] += 1
            if verdict == "too_short":
                short.append(f"{row['path']} ({len(audio) / TARGET_RATE:.1f} s, "
                             f"{len(speech) / TARGET_RATE:.2f} s of speech)")
            reference = active_speech_s(audio)
            if reference > 0:
                ratios[half].append(len(speech) / TARGET_RATE / reference)
        for half in sorted(counts):
            c, r = counts[half], np.array(ratios[half])
            judged = c["accepted"] + c["refused"]
            for key, value in c.items():
                total[key] += value
            share = c["refused"] / judged if judged else 0.0
            lost = int(np.sum(r < LOST_RATIO))
            median = f"{np.median(r):.2f}" if len(r) else "n/a"
            print(f"{corpus:15} {half:4} {sum(c.values()):6} {c['unreadable']:11} "
                  f"{c['no_speech']:10} {c['too_short']:10} {judged:7} {c['refused']:8}  "
                  f"{share:12.2%}  {median:>23}  {lost:4} ({lost / max(len(r), 1):.1%})")
        if args.list_too_short:
            for item in short:
                print(f"    too short: {item}")
    judged = total["accepted"] + total["refused"]
    print(f"{'all speech':15} {'':4} {'':6} {total['unreadable']:11} {total['no_speech']:10} "
          f"{total['too_short']:10} {judged:7} {total['refused']:8}  "
          f"{total['refused'] / max(judged, 1):12.2%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--per-corpus", type=int, default=0, help="0 = every file")
    parser.add_argument("--noise-per-kind", type=int, default=100)
    parser.add_argument("--min-speech-s", type=float, default=MIN_SPEECH_S,
                        help="judge files with at least this much speech (the service's "
                        f"VOICEGATE_MIN_SPEECH_S, default {MIN_SPEECH_S:g})")
    parser.add_argument("--list-too-short", action="store_true",
                        help="name every speech file refused as too short")
    args = parser.parse_args(argv)
    speech_corpora(args)

    print("\nnoise             clips  refused  (other = refused before the check: no speech, "
          "too short)")
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
        other = verdicts.count("no_speech") + verdicts.count("too_short")
        print(f"{kind:16} {len(verdicts):6} {refused / len(verdicts):8.2%}  (other {other})")
    print(f"{'all noise':16} {noise_total:6} {noise_refused / noise_total:8.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
