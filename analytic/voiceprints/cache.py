"""The household's voiceprints, decrypted, held in this process's memory between requests.

Identify scores a recording against every member. Reading and decrypting the whole store for
each request cost 405 of 512 ms at 1000 members (issue 17); here the voiceprints of the running
encoder are kept instead as one matrix (every member's samples stacked, with the member of each
row), with the AS-norm statistics of those rows per scorer (wideband or narrowband cohort), and
reloaded only when the store's version has changed. The store raises its version in the same
transaction as every enrolment and deletion, whichever instance on the same database makes it
(``store.py``), so one cheap read per request sees another instance's changes, and a member
deleted before a request starts is never scored by it. A reload decrypts and normalises only
the rows written since the last one (rows are told apart by a digest of their sealed bytes), so
one enrolment does not cost a decryption of the whole household.

Nothing here leaves the process: no file, no log line, no pickle. The matrix is read-only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from analytic.voiceprints.model import Voiceprint
from analytic.voiceprints.scoring import Stats, VoiceprintScorer
from analytic.voiceprints.store import Snapshot, VoiceprintStore

_MISSING = object()


@dataclass(frozen=True)
class Household:
    """Every member of one encoder as of ``version``: ``samples[i]`` belongs to
    ``ids[owner[i]]``."""

    version: int
    ids: tuple[str, ...]
    samples: np.ndarray  # (rows, d) float32, read-only
    owner: np.ndarray  # (rows,) member index of each row
    other_encoders: frozenset[str]
    digests: tuple[bytes, ...] = ()  # the stored row of each member (``store.row_digest``)
    _stats: dict[VoiceprintScorer, Stats | None] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, snapshot: Snapshot, previous: Household | None = None) -> Household:
        """The members of ``snapshot``; AS-norm statistics of members whose row is unchanged
        since ``previous`` are carried over rather than computed again."""
        prints = snapshot.voiceprints
        samples = (np.vstack([p.samples for p in prints]).astype(np.float32, copy=False)
                   if prints else np.zeros((0, 0), dtype=np.float32))
        samples.setflags(write=False)
        owner = np.repeat(np.arange(len(prints)), [p.sample_count for p in prints])
        house = cls(snapshot.version, tuple(p.external_id for p in prints), samples, owner,
                    snapshot.other_encoders, snapshot.digests)
        if previous is not None and len(house.digests) == house.members:
            house._inherit(previous)
        return house

    def _rows(self) -> list[tuple[bytes, slice]]:
        """Each member's digest and the rows of ``samples`` that are theirs."""
        counts = np.bincount(self.owner, minlength=self.members)
        ends = np.cumsum(counts)
        return [(d, slice(int(end - n), int(end)))
                for d, end, n in zip(self.digests, ends, counts, strict=True)]

    def _inherit(self, previous: Household) -> None:
        if len(previous.digests) != previous.members:
            return
        old = dict(previous._rows())
        for scorer, stats in list(previous._stats.items()):
            if stats is None:
                self._stats[scorer] = None
                continue
            mean, std = (np.empty(len(self.owner), dtype=part.dtype) for part in stats)
            missing = []
            for digest, rows in self._rows():
                if digest in old:
                    mean[rows], std[rows] = stats[0][old[digest]], stats[1][old[digest]]
                else:
                    missing.append(np.arange(rows.start, rows.stop))
            if missing:
                index = np.concatenate(missing)
                fresh = scorer.stats(self.samples[index])
                assert fresh is not None
                mean[index], std[index] = fresh
            self._stats[scorer] = (mean, std)

    @property
    def members(self) -> int:
        return len(self.ids)

    def scores(self, scorer: VoiceprintScorer,
               test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, raw cosine) of ``test`` against each member, as ``score_members`` gives."""
        if not self.ids:
            empty = np.zeros(0, dtype=np.float64)
            return empty, empty
        stats = self._stats.get(scorer, _MISSING)
        if stats is _MISSING:  # two threads may both compute it; the results are equal
            stats = self._stats[scorer] = scorer.stats(self.samples)
        return scorer.score_owned(self.samples, self.owner, self.members, test,
                                  stats)  # type: ignore[arg-type]


class VoiceprintCache:
    """The current ``Household`` of an encoder; safe to call from many threads."""

    def __init__(self, store: VoiceprintStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._current: dict[str, Household] = {}
        self._held: dict[str, dict[bytes, Voiceprint]] = {}  # decrypted rows by digest

    def household(self, encoder: str) -> Household:
        """The members as the store holds them now: one version read, and a reload (one
        reader at a time) only when it differs from the one held."""
        version = self.store.version()
        held = self._current.get(encoder)
        if held is not None and held.version == version:
            return held
        with self._lock:
            held = self._current.get(encoder)
            if held is None or held.version != version:
                snapshot = self.store.snapshot(encoder, self._held.get(encoder))
                self._held[encoder] = dict(zip(snapshot.digests, snapshot.voiceprints,
                                               strict=True))
                held = self._current[encoder] = Household.of(snapshot, held)
            return held

    def clear(self) -> None:
        """Drop what is held (closing the store)."""
        with self._lock:
            self._current.clear()
            self._held.clear()
