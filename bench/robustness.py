"""Verification error rates under noise, babble, reverberation, the telephone band and cuts.

    python bench/robustness.py --encoder campplus [--half test] [--data ../shared/data]

Trials: ``bench/trials/librispeech_<half>.csv`` (LibriSpeech test-other, speaker-disjoint
halves). The test side of every pair is degraded (``--degrade-enrol``: both sides) by
``analytic.lab.conditions.standard_conditions``: household noise from the ``<half>`` part in time
of ``../shared/data/noise`` (dev = first half, test = second half), babble of four
train-clean-100 speakers of the same half (never a trial speaker), the measured room
(``rir_clap.flac``) and a simulated one (RT60 0.5 s), the telephone band, and cuts. Every
clip goes through the service's own decoding (``analytic.audio.decode``: speech detector,
minimum speech); a refusal (``AnalyticError``) counts as a rejection and is counted apart.
Scores are raw cosine; the threshold is the encoder's shipped default unless given.
Seeded: the same command prints the same table.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytic.audio import AudioLimits, decode, resample  # noqa: E402
from analytic.errors import AnalyticError  # noqa: E402
from analytic.lab.conditions import RATE, read_audio, standard_conditions  # noqa: E402
from analytic.lab.robustness import Trial, print_table, run_conditions  # noqa: E402

BABBLE_CLIPS = 20


def load_trials(path: Path) -> list[Trial]:
    with path.open(newline="") as handle:
        return [Trial(r["enroll"], r["test"], r["target"] == "1") for r in csv.DictReader(handle)]


def babble_sources(data: Path, half: str) -> list[np.ndarray]:
    """Clips of train-clean-100 speakers in ``half`` (none of them is a trial speaker)."""
    with (ROOT / "bench/splits/librispeech.csv").open(newline="") as handle:
        mine = {r["speaker"] for r in csv.DictReader(handle) if r["half"] == half}
    with (data / "librispeech/manifest.csv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle)
                if r["label"] == "train-clean-100" and r["speaker"] in mine]
    return [read_audio(data / "librispeech" / r["path"]) for r in rows[:BABBLE_CLIPS]]


def load_encoder(name: str) -> Any:
    if name == "campplus":
        from analytic.encoders.campplus import CamPlusPlusEncoder

        return CamPlusPlusEncoder()
    from analytic.encoders.ge2e import Ge2eEncoder

    return Ge2eEncoder()


class CosineScorer:
    """``score_pairs`` for ``analytic.lab.robustness``: decode each clip as the service does,
    embed it, cosine; ``NaN`` for a pair with a refused clip. Embeddings are kept per array
    object (the arrays are held too, so an id is never reused)."""

    def __init__(self, encoder: Any, limits: AudioLimits, untrimmed: bool) -> None:
        self.encoder = encoder
        self.limits = limits
        self.untrimmed = untrimmed
        self._memo: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def embedding(self, samples: np.ndarray) -> np.ndarray | None:
        key = id(samples)
        if key not in self._memo:
            buffer = io.BytesIO()
            sf.write(buffer, samples, RATE, format="WAV", subtype="FLOAT")
            try:
                clip = decode(buffer.getvalue(), "clip.wav", self.limits)
                audio = resample(samples, RATE) if self.untrimmed else clip.speech
                vector = np.asarray(self.encoder.embed(audio), dtype=np.float64)
            except AnalyticError:
                vector = None
            self._memo[key] = (samples, vector)
        return self._memo[key][1]

    def __call__(self, enrol: list[np.ndarray], test: list[np.ndarray]) -> np.ndarray:
        scores = np.full(len(enrol), np.nan)
        for i, (a, b) in enumerate(zip(enrol, test, strict=True)):
            ea, eb = self.embedding(a), self.embedding(b)
            if ea is not None and eb is not None:
                scores[i] = float(ea @ eb / (np.linalg.norm(ea) * np.linalg.norm(eb)))
        return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=("campplus", "ge2e"), default="campplus")
    parser.add_argument("--half", choices=("dev", "test"), default="test")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--threshold", type=float, help="default: the encoder's shipped one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snr", type=float, default=10.0, help="dB, for the noise conditions")
    parser.add_argument("--min-speech", type=float, default=1.0,
                        help="seconds of speech decode requires (the service's default)")
    parser.add_argument("--degrade-enrol", action="store_true", help="degrade both sides")
    parser.add_argument("--untrimmed", action="store_true",
                        help="embed the whole decoded clip, not the speech detector's output")
    parser.add_argument("--only", nargs="*", help="run only conditions whose name starts so")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    trials = load_trials(ROOT / f"bench/trials/librispeech_{args.half}.csv")
    encoder = load_encoder(args.encoder)
    threshold = args.threshold if args.threshold is not None else encoder.default_threshold
    conditions = standard_conditions(args.data / "noise", args.half,
                                     babble_sources(args.data, args.half), args.snr)
    if args.only:
        conditions = [c for c in conditions if any(c.name.startswith(o) for o in args.only)]
    scorer = CosineScorer(encoder, AudioLimits(min_speech_s=args.min_speech), args.untrimmed)
    root = args.data / "librispeech"
    results = run_conditions(conditions, trials, lambda key: read_audio(root / key), scorer,
                             threshold, seed=args.seed, degrade_enrol=args.degrade_enrol)
    n_target = sum(t.target for t in trials)
    print(f"{args.encoder}, raw cosine, LibriSpeech test-other {args.half} half: {n_target} "
          f"target / {len(trials) - n_target} non-target pairs; "
          f"{'both sides' if args.degrade_enrol else 'test side'} degraded, seed {args.seed}"
          f"{', untrimmed' if args.untrimmed else ''}")
    print_table(results, threshold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
