"""Spoken-digit recognition for the liveness challenge: which digits does a recording hold?

Two recognisers behind one small interface (``DigitRecognizer.recognize``):

* ``TemplateDigits``, speaker-dependent: each member records "zero one two ... nine" once or
  twice at enrolment (``digit_templates``); a challenge answer is cut into one segment per
  digit (pauses found by energy) and each segment is matched by dynamic time warping (DTW) of
  its MFCCs against that member's ten digit templates. Chosen by measurement
  (``bench/liveness.py``, docs/liveness.md): on FSDD development speakers it read 60 of 60
  4-digit strings right, where the bundled pocketsphinx model read 33 of 60.
* ``PocketsphinxDigits``, speaker-independent: pocketsphinx's bundled US English model with a
  grammar of exactly the expected number of words from "zero".."nine" and "oh". Used only for
  members without templates; it is weak on 8 kHz and synthetic speech (docs/liveness.md).

Both work on the 8 kHz band (everything is brought to 8 kHz first), so 8 kHz intercom and
16 kHz microphone audio are handled alike. Both are loaded once and are safe to call from
many threads (librosa is pure; pocketsphinx's decoder is used behind a lock).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import librosa
import numpy as np
import soxr

RATE = 8_000  # the band every recogniser works in
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
WORD_DIGITS = {**{word: str(i) for i, word in enumerate(WORDS)}, "oh": "0"}
UNHEARD = "?"  # a segment that matched no digit well enough

# MFCC front end: 25 ms windows every 10 ms, 26 mel bands within the telephone band, c1..c12
# plus deltas, mean- and variance-normalised per segment (so level and channel drop out).
HOP = RATE // 100
WINDOW = RATE * 25 // 1000
N_FFT = 256
N_MFCC = 13
# Segmentation: frames within SPLIT_TOP_DB of the loudest are speech; gaps shorter than
# MIN_GAP_S are joined (the closure inside "six", "eight"), bits shorter than MIN_PART_S dropped.
SPLIT_TOP_DB = 30.0
MIN_GAP_S = 0.08
MIN_PART_S = 0.08
# Costs are judged relative to the member's own spread: the mean DTW cost between their
# templates of the same digit (how much their own digits vary). An absolute limit, read off the
# development speakers (5.4), heard a third of a held-out FSDD speaker's genuine digits as '?':
# voices differ in how well they match themselves, so only the ratio carries over.
# A segment whose best cost is above MAX_SEGMENT_RELATIVE_COST times the spread matched no digit
# of the member ('?'); development speakers' genuine segments reached 1.22 (FSDD) and 1.73
# (espeak-ng).
MAX_SEGMENT_RELATIVE_COST = 2.0
# The answer must also sound like the member's own templates: its parts' mean cost over the
# spread at most MAX_RELATIVE_COST. Development speakers: genuine answers reached 1.13 (FSDD)
# and had a 99th percentile of 1.46 (espeak-ng); the right digits in another espeak-ng voice
# had a 5th percentile of 1.55 (minimum 1.39); other FSDD voices started at 1.15, and the
# speaker check refuses those. Read speech is not told apart this way (about 1.13-1.3 against
# FSDD members): what stops its replay is that it must hold exactly the challenge's digits.
MAX_RELATIVE_COST = 1.45


@dataclass(frozen=True)
class Heard:
    """What a recogniser heard: one character per segment ('0'-'9' or '?'), and for templates
    whether the answer sounds like the member's own digits (``None``: not checked)."""

    digits: str
    recogniser: str
    fits_templates: bool | None = None


class DigitRecognizer(Protocol):
    """Reads the digits of a recording; ``expected_length`` is the challenge's length (a
    recogniser may use it to shape its search, never the expected digits themselves)."""

    name: str

    def recognize(self, samples: np.ndarray, rate: int, expected_length: int) -> Heard: ...


def to_band(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 at 8 kHz (the band both 8 and 16 kHz inputs share)."""
    if rate == RATE:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, rate, RATE, quality="HQ").astype(np.float32)


def features(samples: np.ndarray) -> np.ndarray:
    """(24, frames) MFCCs c1..c12 and their deltas, mean- and variance-normalised."""
    mfcc = librosa.feature.mfcc(y=samples, sr=RATE, n_mfcc=N_MFCC, n_fft=N_FFT,
                                hop_length=HOP, win_length=WINDOW, n_mels=26, fmin=100.0,
                                fmax=3800.0)[1:]
    width = min(5, mfcc.shape[1] - (1 - mfcc.shape[1] % 2))  # delta needs an odd width <= n
    delta = (librosa.feature.delta(mfcc, width=width, mode="nearest") if width >= 3
             else np.zeros_like(mfcc))
    stacked = np.vstack([mfcc, delta])
    # Mean and variance normalised per segment: on the development speakers with one template
    # a digit, variance normalisation read 112-115 of 120 strings right against 103 without.
    stacked = stacked - stacked.mean(axis=1, keepdims=True)
    return (stacked / (stacked.std(axis=1, keepdims=True) + 1e-6)).astype(np.float32)


def segments(samples: np.ndarray, count: int | None = None) -> list[tuple[int, int]]:
    """Spoken stretches (start, end sample) separated by pauses; with ``count``, the closest
    stretches are joined until at most ``count`` remain (a pause inside a word)."""
    if samples.size < WINDOW or not np.any(samples):
        return []
    found = librosa.effects.split(samples, top_db=SPLIT_TOP_DB, frame_length=WINDOW * 2,
                                  hop_length=HOP)
    parts: list[list[int]] = []
    for start, end in found:
        if parts and start - parts[-1][1] < MIN_GAP_S * RATE:
            parts[-1][1] = int(end)
        else:
            parts.append([int(start), int(end)])
    parts = [p for p in parts if p[1] - p[0] >= MIN_PART_S * RATE]
    while count is not None and len(parts) > count:
        gaps = [parts[i + 1][0] - parts[i][1] for i in range(len(parts) - 1)]
        i = int(np.argmin(gaps))
        parts[i][1] = parts[i + 1][1]
        del parts[i + 1]
    return [(start, end) for start, end in parts]


def dtw_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Length-normalised DTW distance of two feature sequences (librosa)."""
    cost, path = librosa.sequence.dtw(X=a, Y=b, metric="euclidean")
    return float(cost[-1, -1] / len(path))


# --- speaker-dependent templates ---

DigitTemplates = dict[str, list[np.ndarray]]  # "0".."9" -> feature sequences


def digit_templates(samples: np.ndarray, rate: int) -> DigitTemplates | None:
    """Templates from one recording of "zero one two ... nine" (in order, short pauses
    between); ``None`` when it does not split into ten spoken stretches."""
    band = to_band(samples, rate)
    parts = segments(band, 10)
    if len(parts) != 10:
        return None
    return {str(i): [features(band[s:e])] for i, (s, e) in enumerate(parts)}


def merge_templates(old: DigitTemplates | None, new: DigitTemplates, keep: int) -> DigitTemplates:
    """Add ``new`` to ``old``, keeping the newest ``keep`` templates of each digit."""
    merged = {d: list((old or {}).get(d, [])) + list(new.get(d, [])) for d in map(str, range(10))}
    return {d: items[-keep:] for d, items in merged.items()}


def pack_templates(templates: DigitTemplates) -> bytes:
    """Templates to bytes with ``np.savez`` (plain arrays, no pickling)."""
    arrays = {f"d{d}_{k}": t.astype(np.float32)
              for d, items in templates.items() for k, t in enumerate(items)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return buffer.getvalue()


def unpack_templates(blob: bytes) -> DigitTemplates:
    out: DigitTemplates = {str(d): [] for d in range(10)}
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        for key in sorted(arrays.files, key=lambda k: int(k.split("_")[1])):
            out[key[1:].split("_")[0]].append(arrays[key].astype(np.float32))
    return out


class TemplateDigits:
    """DTW against one member's own digit templates."""

    name = "templates"

    def __init__(self, templates: DigitTemplates,
                 max_segment_relative_cost: float = MAX_SEGMENT_RELATIVE_COST,
                 max_relative_cost: float = MAX_RELATIVE_COST) -> None:
        self.templates = templates
        self.spread = own_spread(templates)
        # With one template a digit there is no spread: no '?' and no fit check.
        self.max_cost = (np.inf if self.spread is None
                         else max_segment_relative_cost * self.spread)
        self.max_relative_cost = max_relative_cost

    def costs(self, segment: np.ndarray) -> dict[str, float]:
        """Each digit's best DTW cost for one 8 kHz segment."""
        feats = features(segment)
        return {d: min(dtw_cost(feats, t) for t in items)
                for d, items in self.templates.items() if items}

    def recognize(self, samples: np.ndarray, rate: int, expected_length: int) -> Heard:
        band = to_band(samples, rate)
        heard, best_costs = [], []
        for start, end in segments(band, expected_length):
            costs = self.costs(band[start:end])
            best = min(costs, key=costs.__getitem__) if costs else UNHEARD
            heard.append(best if costs and costs[best] <= self.max_cost else UNHEARD)
            best_costs.append(costs[best] if costs else np.inf)
        fits = None
        if self.spread is not None and best_costs:
            fits = bool(np.mean(best_costs) / self.spread <= self.max_relative_cost)
        return Heard("".join(heard), self.name, fits)


def own_spread(templates: DigitTemplates) -> float | None:
    """Mean DTW cost between a member's templates of the same digit (how much their own
    digits vary); ``None`` with one template per digit."""
    costs = [dtw_cost(a, b) for items in templates.values()
             for i, a in enumerate(items) for b in items[i + 1:]]
    return float(np.mean(costs)) if costs else None


# --- speaker-independent pocketsphinx ---


class PocketsphinxDigits:
    """pocketsphinx with a JSGF grammar of exactly ``expected_length`` digit words."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        from pocketsphinx import Config, Decoder, get_model_path  # loaded once, here

        config = Config(hmm=get_model_path("en-us/en-us"),
                        dict=get_model_path("en-us/cmudict-en-us.dict"), lm=None,
                        loglevel="FATAL", dither=True)
        self._decoder = Decoder(config)
        self._lock = threading.Lock()
        self._grammars: set[int] = set()

    def _grammar(self, length: int) -> str:
        name = f"digits{length}"
        if length not in self._grammars:
            words = " | ".join((*WORDS, "oh"))
            self._decoder.add_jsgf_string(
                name, f"#JSGF V1.0;\ngrammar {name};\n<d> = {words};\n"
                f"public <s> = {' '.join(['<d>'] * length)};\n")
            self._grammars.add(length)
        return name

    def recognize(self, samples: np.ndarray, rate: int, expected_length: int) -> Heard:
        band = to_band(samples, rate)
        wide = soxr.resample(band, RATE, 16_000, quality="HQ")  # the model is 16 kHz
        peak = float(np.abs(wide).max()) if wide.size else 0.0
        if peak == 0.0:
            return Heard("", self.name)
        pad = np.zeros(16_000 * 3 // 10, np.float32)
        pcm = (np.concatenate([pad, wide / peak * 0.5, pad]) * 32767).astype("<i2").tobytes()
        with self._lock:
            self._decoder.activate_search(self._grammar(max(1, expected_length)))
            self._decoder.start_utt()
            self._decoder.process_raw(pcm, full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        words = hyp.hypstr.split() if hyp is not None else []
        return Heard("".join(WORD_DIGITS.get(w, UNHEARD) for w in words), self.name)


@lru_cache(maxsize=1)
def warm_up_in_background() -> threading.Thread:
    """Load librosa's DTW and MFCC code (numba; seconds on a busy small CPU) in a background
    thread, once per process, so neither start-up nor the first challenge waits for it."""

    def run() -> None:
        noise = np.random.default_rng(0).normal(0, 0.1, RATE).astype(np.float32)
        feats = features(noise)
        dtw_cost(feats, feats)

    thread = threading.Thread(target=run, name="digits-warm-up", daemon=True)
    thread.start()
    return thread


@lru_cache(maxsize=1)
def shared_pocketsphinx() -> PocketsphinxDigits:
    """One decoder per process, however many household services (tests make many)."""
    return PocketsphinxDigits()


def pocketsphinx_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True
