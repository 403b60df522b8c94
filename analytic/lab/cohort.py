"""Build the AS-norm cohort: one embedding per LibriSpeech train-clean-100 speaker.

    python -m analytic.lab.cohort --data ../shared/data/librispeech \
        --out analytic/models/cohort_ge2e.npy

Each file goes through the service's own intake (decode, resample, trim) and the configured
encoder, so the cohort sits in the same space as the voiceprints it normalises. The speakers of
train-clean-100 are disjoint from test-other (the development and test trials), so the cohort
never contains a voice it is later asked to score. Stored as float16 (~130 KB for 251 x 256):
the precision lost is far below the spread of cohort scores.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from analytic.audio import AudioLimits, decode
from analytic.encoders import ENCODER_NAMES, SpeakerEncoder, load_encoder
from analytic.settings import CoreSettings


def one_file_per_speaker(folder: Path) -> list[Path]:
    """The first file (by name) of each speaker; LibriSpeech names start with the speaker id."""
    chosen: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.flac")):
        chosen.setdefault(path.name.split("-")[0], path)
    return [chosen[speaker] for speaker in sorted(chosen)]


def build_cohort(encoder: SpeakerEncoder, files: Iterable[Path], limits: AudioLimits) -> np.ndarray:
    vectors = [encoder.embed(decode(path.read_bytes(), path.name, limits).speech)
               for path in files]
    return np.stack(vectors).astype(np.float16)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytic.lab.cohort", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the librispeech folder")
    parser.add_argument("--subset", default="train-clean-100", help="folder inside --data")
    parser.add_argument("--out", type=Path, required=True, help="where to write the .npy")
    parser.add_argument("--encoder", choices=ENCODER_NAMES, default="ge2e")
    args = parser.parse_args(argv)
    settings = CoreSettings(encoder=args.encoder)
    files = one_file_per_speaker(args.data / args.subset)
    if not files:
        print(f"no .flac files under {args.data / args.subset}", file=sys.stderr)
        return 1
    cohort = build_cohort(load_encoder(settings), files,
                          AudioLimits(settings.min_speech_s, settings.max_duration_s))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, cohort)
    print(f"{args.out}: {cohort.shape[0]} speakers x {cohort.shape[1]} ({args.encoder})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
