"""Adaptive symmetric score normalisation (AS-norm) against a cohort of other speakers.

A raw cosine score means different things for different voices: some voices sit close to many
others, so every score against them runs high. AS-norm rescales a score by how the two
voiceprints score against a cohort of strangers, keeping only each side's ``top_k`` closest
cohort members (the impostors that matter):

    s' = ((s - mean_e) / std_e + (s - mean_t) / std_t) / 2

The cohort is the GE2E embeddings of one LibriSpeech train-clean-100 utterance for each of its
251 speakers, built by ``python -m analytic.lab.cohort`` and shipped in ``analytic/models``. A
cohort is only valid for the encoder that built it; ``load_cohort`` finds none for any other
encoder and the service falls back to raw cosine (and says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).parent / "models"

# The closest cohort members kept per side. CAM++'s cohort holds every development file of
# several corpora (about 2,600): k = 100 and 300 were tried on the development halves, 300 was
# as good or better on every corpus (wuw_telephone EER 4.18% vs 4.03%). GE2E's cohort has 251
# speakers, so it keeps all of them, as chosen for it before (docs/household.md).
DEFAULT_TOP_K = 300

# Decision threshold on the AS-norm scale, per encoder, read at the equal-error point of the
# development trials (one enrolment utterance), never on the test speakers:
#   python -m analytic evaluate --trials bench/trials/librispeech_dev.csv \
#       --root ../shared/data/librispeech --norm asnorm
ASNORM_THRESHOLDS = {"ge2e": 3.07}

# Guards the division for a degenerate cohort (identical scores against every member).
MIN_STD = 1e-6


def cohort_path(encoder: str, models_dir: Path = MODELS_DIR, band: str = "wideband") -> Path:
    """The shipped cohort of ``encoder``; ``band`` "narrowband": its recordings band-limited to
    8 kHz, to normalise narrowband pairs against strangers heard the same way."""
    suffix = "" if band == "wideband" else f"_{band}"
    return models_dir / f"cohort_{encoder}{suffix}.npy"


@dataclass(frozen=True)
class AsNorm:
    """A loaded cohort (unit rows) and the number of closest members each side keeps."""

    encoder: str
    cohort: np.ndarray  # (n, d) float32, unit rows
    top_k: int = DEFAULT_TOP_K

    def stats(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of each vector's ``top_k`` highest cohort scores; rows of ``vectors``."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        scores = vectors @ self.cohort.T
        k = min(self.top_k, self.cohort.shape[0])
        top = -np.partition(-scores, k - 1, axis=1)[:, :k]
        return top.mean(axis=1), np.maximum(top.std(axis=1), MIN_STD)

    def normalise(self, score: float, enrol: np.ndarray, test: np.ndarray) -> float:
        """AS-norm of one raw score between an enrolment vector and a test vector."""
        (mean_e,), (std_e,) = self.stats(enrol)
        (mean_t,), (std_t,) = self.stats(test)
        return float(0.5 * ((score - mean_e) / std_e + (score - mean_t) / std_t))

    def normalise_many(
        self, scores: np.ndarray, enrol_stats: tuple[np.ndarray, np.ndarray],
        test_stats: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        """Vectorised form: ``scores[i]`` pairs ``enrol_stats[*][i]`` with ``test_stats[*][i]``."""
        (mean_e, std_e), (mean_t, std_t) = enrol_stats, test_stats
        return 0.5 * ((scores - mean_e) / std_e + (scores - mean_t) / std_t)


def load_cohort(
    encoder: str, embedding_size: int, top_k: int = DEFAULT_TOP_K, models_dir: Path = MODELS_DIR,
    band: str = "wideband",
) -> AsNorm | None:
    """The cohort shipped for ``encoder``, or None when there is none (or it does not fit)."""
    path = cohort_path(encoder, models_dir, band)
    if not path.is_file():
        return None
    cohort = np.load(path).astype(np.float32)
    if cohort.ndim != 2 or cohort.shape[1] != embedding_size or cohort.shape[0] == 0:
        return None
    cohort /= np.maximum(np.linalg.norm(cohort, axis=1, keepdims=True), 1e-12)
    return AsNorm(encoder, cohort, top_k)
