"""The speech corpora in ``../shared/data``, read by speaker half, and embedded once.

Each corpus folder has a ``manifest.csv`` (``path,speaker,gender,label,...``); the committed
``bench/splits/<corpus>.csv`` says which half (``dev`` or ``test``) each speaker is in
(``bench/make_splits.py``). Thresholds, calibration and cohorts are made from ``dev`` files
only (``analytic.lab.calibrate``); ``evaluate --household`` reports on either half.

Every file goes through the service's own intake and encoder (``VerificationService.decode``
and ``voiceprint``), so what is measured is what the service does; a file the intake refuses
(too short, no speech) is kept as ``None`` and counted by the caller, never a traceback.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytic.errors import AnalyticError
from analytic.lab.progress import Progress, no_progress

SPLITS_DIR = Path(__file__).resolve().parents[2] / "bench" / "splits"


@dataclass(frozen=True)
class CorpusFile:
    corpus: str
    path: str  # relative to the corpus folder
    speaker: str
    gender: str
    label: str  # the manifest's label column (LibriSpeech: its subset)

    @property
    def key(self) -> str:
        return f"{self.corpus}/{self.path}"


def read_split(corpus: str, splits_dir: Path = SPLITS_DIR) -> dict[str, str]:
    """speaker -> "dev" | "test" for one corpus."""
    with (splits_dir / f"{corpus}.csv").open(newline="") as handle:
        return {row["speaker"]: row["half"] for row in csv.DictReader(handle)}


def corpus_files(data: Path, corpus: str, half: str | None,
                 splits_dir: Path = SPLITS_DIR) -> list[CorpusFile]:
    """The files of one half of a corpus (both halves with ``half`` None), sorted by path."""
    halves = read_split(corpus, splits_dir)
    with (data / corpus / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return sorted(
        (CorpusFile(corpus, row["path"], row["speaker"], row["gender"], row["label"])
         for row in rows if half is None or halves.get(row["speaker"]) == half),
        key=lambda f: f.path,
    )


def by_speaker(files: list[CorpusFile]) -> dict[str, list[str]]:
    """speaker -> their file keys, in path order (the first ones enrol)."""
    grouped: dict[str, list[str]] = {}
    for f in files:
        grouped.setdefault(f.speaker, []).append(f.key)
    return grouped


def fold(speaker: str) -> int:
    """A fixed two-way split of speakers (0 or 1), blind to any score: the calibration scores
    each fold's trials against a cohort made of the other fold only."""
    return int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 2


def embed_corpus(service: object, data: Path, files: list[CorpusFile],
                 progress: Progress = no_progress, cache: Path | None = None,
                 bandwidth: int = 16_000) -> dict[str, np.ndarray | None]:
    """key -> embedding through the service's intake (None where it refuses the file), of the
    recording band-limited to ``bandwidth`` (8000: as a narrowband pair compares it).

    ``cache``: a folder to keep embeddings in between runs (one ``.npz`` per encoder, intake
    code, limits, band and corpus); a cached file is reused only while its size matches.
    """
    prints: dict[str, np.ndarray | None] = {}
    stored = _load_cache(cache, service, files, bandwidth)
    for f in progress(files, "embedding"):
        source = data / f.corpus / f.path
        marker = f"{f.key}:{source.stat().st_size}"
        if marker in stored:
            prints[f.key] = stored[marker]
            continue
        try:
            clip = service.decode(source.read_bytes(), f.path)  # type: ignore[attr-defined]
            prints[f.key] = service.voiceprint(clip, bandwidth)  # type: ignore[attr-defined]
        except AnalyticError:
            prints[f.key] = None
        stored[marker] = prints[f.key]
    _save_cache(cache, service, files, stored, bandwidth)
    return prints


def intake_version(encoder: object) -> str:
    """A digest of the code an embedding depends on (the intake and the encoder's module), so
    a cache made before either changed is not reused."""
    package = Path(__file__).resolve().parents[1]  # analytic/, where the intake lives
    sources = [package / "audio.py", package / "speechness.py",
               Path(sys.modules[type(encoder).__module__].__file__ or "")]
    digest = hashlib.sha1()
    for source in sources:  # a missing source fails loudly: skipping it would keep stale caches
        digest.update(source.read_bytes())
    return digest.hexdigest()[:10]


def _cache_file(cache: Path, service: object, files: list[CorpusFile], bandwidth: int) -> Path:
    encoder = service.encoder  # type: ignore[attr-defined]
    limits = service.limits  # type: ignore[attr-defined]
    corpora = "+".join(sorted({f.corpus for f in files}))
    tag = (f"{encoder.name}-{intake_version(encoder)}-{limits.min_speech_s:g}-"
           f"{limits.max_duration_s:g}-{corpora}")
    if bandwidth < 16_000:
        tag += f"-{bandwidth}"
    return cache / f"{tag}.npz"


def _load_cache(cache: Path | None, service: object, files: list[CorpusFile],
                bandwidth: int) -> dict[str, np.ndarray | None]:
    path = _cache_file(cache, service, files, bandwidth) if cache and files else None
    if path is None or not path.is_file():
        return {}
    with np.load(path) as stored:
        vectors, markers, refused = stored["vectors"], stored["markers"], stored["refused"]
    return {str(m): (None if r else v) for m, v, r in zip(markers, vectors, refused, strict=True)}


def _save_cache(cache: Path | None, service: object, files: list[CorpusFile],
                stored: dict[str, np.ndarray | None], bandwidth: int) -> None:
    if cache is None or not files:
        return
    cache.mkdir(parents=True, exist_ok=True)
    size = service.encoder.embedding_size  # type: ignore[attr-defined]
    markers = sorted(stored)
    blank = np.zeros(size, np.float32)
    vectors = np.stack([v if (v := stored[m]) is not None else blank
                        for m in markers]).astype(np.float32)
    refused = np.array([stored[m] is None for m in markers])
    np.savez(_cache_file(cache, service, files, bandwidth), vectors=vectors,
             markers=np.array(markers), refused=refused)
