"""Make the AS-norm cohort and the score calibration of an encoder from development halves.

    python -m analytic.lab.calibrate --data ../shared/data

Only the ``dev`` speakers of each corpus (``bench/splits``) are read:

- LibriSpeech (test-other's 5 development readers and half of train-clean-100's speakers)
  and speech_commands (one-second commands on consumer devices) make the wideband scale.
- The narrowband scale (pairs with a recording below 16 kHz, compared band-limited to 8 kHz)
  is made of wuw_telephone's development callers (real calls) and the same wideband corpora
  band-limited to 8 kHz, the strictest kept: a threshold set on real calls alone let in 4.5%
  of band-limited LibriSpeech impostors (ReLU-ended voiceprints; today the calls' 1% point is
  3.54, band-limited LibriSpeech's 3.72).
- The cohort is every development file of every corpus, as heard in each band
  (``cohort_<encoder>.npy``, ``cohort_<encoder>_narrowband.npy``).
- Calibration trials are every pair of development files within a corpus. So that no trial
  is normalised against its own speakers, the speakers are split in two fixed folds and each
  fold's trials are AS-normed against a cohort of the other fold only.
- Per scale (``asnorm`` or ``none``, wideband or narrowband): a logistic fit of the score for
  ``confidence``, and the impostor quantiles behind ``threshold_for`` (the strictest corpus
  of the band at each rate): ``calibration_<encoder>.json``.

Files go through the service's intake and encoder, so refused files are left out, as the
service would refuse them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from analytic.calibration import Calibration, calibration_path, fit_scale
from analytic.lab.corpora import CorpusFile, corpus_files, embed_corpus, fold
from analytic.lab.progress import progress_bars, wants_progress
from analytic.scorenorm import DEFAULT_TOP_K, MODELS_DIR, AsNorm, cohort_path
from analytic.voiceprints.scoring import VoiceprintScorer

# RAVDESS and EmoDB stay out: anything derived from RAVDESS is CC BY-NC-SA (non-commercial),
# and the cohort and calibration ship with the default encoder. LibriSpeech and speech_commands
# are CC BY 4.0, wuw_telephone CC BY-SA 4.0 (LICENSES/, REUSE.toml).
BANDS = {"wideband": ("librispeech", "speech_commands"),
         "narrowband": ("wuw_telephone", "librispeech", "speech_commands")}
BANDWIDTH = {"wideband": 16_000, "narrowband": 8_000}


def trial_scores(prints: dict[str, np.ndarray], files: list[CorpusFile],
                 norm: AsNorm | None) -> tuple[np.ndarray, np.ndarray]:
    """Every within-corpus pair of ``files``: (scores, is_target)."""
    kept = [f for f in files if prints.get(f.key) is not None]
    if len(kept) < 2:
        return np.zeros(0), np.zeros(0, dtype=bool)
    matrix = np.stack([prints[f.key] for f in kept])
    scores = VoiceprintScorer(norm).sample_scores(matrix, matrix)[0]
    upper = np.triu_indices(len(kept), 1)
    speakers = np.array([f.speaker for f in kept])
    return scores[upper], speakers[upper[0]] == speakers[upper[1]]


def main(argv: list[str] | None = None) -> int:
    from analytic.encoders import ENCODER_NAMES, load_encoder
    from analytic.service import VerificationService
    from analytic.settings import CoreSettings

    parser = argparse.ArgumentParser(prog="python -m analytic.lab.calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--encoder", choices=ENCODER_NAMES, default="campplus")
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="where to write both files")
    parser.add_argument("--top-k", type=int, default=DEFAULT_TOP_K)
    parser.add_argument("--cache", type=Path, help="keep embeddings here between runs")
    args = parser.parse_args(argv)
    settings = CoreSettings(encoder=args.encoder, score_norm="none")
    service = VerificationService(settings, load_encoder(settings))
    progress = progress_bars(wants_progress(False))

    files = {c: corpus_files(args.data, c, "dev") for band in BANDS.values() for c in band
             if (args.data / c / "manifest.csv").is_file()}
    scales = {}
    for band, corpora in BANDS.items():
        prints: dict[str, np.ndarray] = {}
        for corpus, listed in files.items():  # every corpus is in the band's cohort
            embedded = embed_corpus(service, args.data, listed, progress, args.cache,
                                    BANDWIDTH[band])
            prints.update({k: v for k, v in embedded.items() if v is not None})
            print(f"{band} {corpus}: {len(listed)} development files, "
                  f"{sum(v is None for v in embedded.values())} refused")

        def cohort_of(keep: object, prints: dict[str, np.ndarray] = prints) -> np.ndarray:
            return np.stack([prints[f.key] for listed in files.values() for f in listed
                             if f.key in prints and keep(f)])  # type: ignore[operator]

        for norm_name in ("asnorm", "none"):
            scores, targets, impostors = [], [], []
            for corpus in corpora:
                if corpus not in files:
                    continue
                per_fold = []
                for side in (0, 1):
                    norm = (AsNorm(args.encoder, cohort_of(lambda f, s=side: fold(f.speaker) != s),
                                   args.top_k) if norm_name == "asnorm" else None)
                    mine = [f for f in files[corpus] if fold(f.speaker) == side]
                    per_fold.append(trial_scores(prints, mine, norm))
                s = np.concatenate([p[0] for p in per_fold])
                t = np.concatenate([p[1] for p in per_fold])
                scores.append(s)
                targets.append(t)
                impostors.append(s[~t])
                print(f"{band} {norm_name} {corpus}: {int(t.sum())} target, {int((~t).sum())} "
                      f"non-target trials, 1% of impostors above {np.quantile(s[~t], 0.99):.4f}")
            scales[f"{norm_name}_{band}"] = fit_scale(np.concatenate(scores),
                                                      np.concatenate(targets), impostors)
        args.out.mkdir(parents=True, exist_ok=True)
        cohort = cohort_of(lambda f: True).astype(np.float16)
        path = cohort_path(args.encoder, args.out, band)
        np.save(path, cohort)
        print(f"{path}: {cohort.shape[0]} files x {cohort.shape[1]}")
    source = (f"python -m analytic.lab.calibrate --data DATA --encoder {args.encoder} "
              f"--top-k {args.top_k}: development halves of {', '.join(files)} (bench/splits)")
    Calibration(args.encoder, scales, source).save(calibration_path(args.encoder, args.out))
    for name, scale in scales.items():
        print(f"{name}: threshold at 1% false accept {scale.threshold_at(0.01):.4f}, "
              f"at 0.1% {scale.threshold_at(0.001):.4f}; confidence 0.5 at "
              f"{-scale.offset / scale.slope:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
