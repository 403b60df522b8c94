"""Gender and arousal over time: one engine behind whole files, single chunks and streams.

``Timeline`` is the one implementation. It takes 16 kHz samples in any number of pieces,
computes frame features once on the fixed grid of ``classifiers.features`` and emits one
``TimeSeriesEntry`` per ``output_period``. A whole file is one ``push`` followed by
``finish``; a stream is many. Every decision is causal (it looks at the receptive field that
*ends* at the end of its entry) and depends only on the frames inside that window, so a stream
gives the labels the file gives, and keeps no more than a receptive field of audio.

Per entry and model, in this order:
- ``silence``: the entry's RMS (full scale 1) is below ``volume_threshold``;
- ``no_speech``: there is sound, but (almost) no voiced frame ends inside the entry;
- else the model's decision over its receptive field: a class, or ``unknown`` when the window
  holds too little speech or the model's top probability is below its floor. While the
  receptive field is not yet filled (the start of a recording) the decision pools what has
  been heard so far and is marked ``partial``.

The core knows nothing of HTTP or MQTT: the web door (``web_analysis``) and the bus call
``AnalysisService.analyze_file``, the library API is ``analyze_chunk`` and ``stream``.
"""

from __future__ import annotations

import functools
import logging
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import soxr

from analytic.audio import MAX_SOURCE_RATE, MIN_SOURCE_RATE, TARGET_RATE, read_mono, resample
from analytic.classifiers import Decision, WindowClassifier, load_classifiers
from analytic.classifiers.features import (
    FRAME,
    HOP,
    Frames,
    Speech,
    compute_frames,
    empty_frames,
    speech_in,
    window_rows,
)
from analytic.errors import BadRequest, UnsupportedAudio
from analytic.schemas import (
    NO_SPEECH,
    SILENCE,
    UNKNOWN,
    AnalysisModelInfo,
    AnalysisOptions,
    AnalysisResult,
    FrameResult,
    LabelResult,
    TimeSeriesEntry,
    Transition,
    validated,
)
from analytic.settings import CoreSettings

log = logging.getLogger(__name__)

SAMPLES_PER_MS = TARGET_RATE // 1000
# An entry is speech when at least this share of the frames ending in it are voiced (and at
# least one is): voiced frames are ~40 % of running speech, so 10 % still catches an entry
# that holds the end of a sentence, while pauses, noise and clicks hold none.
MIN_VOICED_SHARE = 0.1
ROUND = 4  # decimals of confidences and probabilities
# Models decide at most every 256 ms: with a short output period, an entry takes the decision
# of the latest window that ended on this grid (still causal, at most 192 ms older). The GE2E
# forward pass is most of the cost, and 64 ms entries would otherwise need 16 per second.
DECISION_STRIDE_MS = 256


def parse_analysis_options(fields: Mapping[str, Any]) -> AnalysisOptions:
    """Validate request fields (query string, form, bus JSON) into options.

    A bad ``output_period`` is its own refusal (422 ``bad_output_period``), as in the Deeptone
    API; anything else is a 400 ``bad_field`` naming the field.
    """
    return validated(AnalysisOptions, fields)  # its own code: schemas.FIELD_CODES


def _ms(samples: int) -> int:
    return math.ceil(samples / SAMPLES_PER_MS)


def _pcm16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


class Report:
    """Running summary and transitions, built entry by entry (so streams need no history)."""

    def __init__(self, classifiers: list[WindowClassifier]) -> None:
        self._labels = {
            c.name: [*c.labels, UNKNOWN, NO_SPEECH, SILENCE] for c in classifiers
        }
        self._time = {name: dict.fromkeys(labels, 0) for name, labels in self._labels.items()}
        self._runs: dict[str, list[list[Any]]] = {name: [] for name in self._labels}
        self.duration_ms = 0

    def add(self, entry: TimeSeriesEntry, end_ms: int) -> None:
        length = end_ms - entry.timestamp
        self.duration_ms = end_ms
        for name, result in entry.results.items():
            self._time[name][result.result] += length
            runs = self._runs[name]
            if runs and runs[-1][2] == result.result:
                runs[-1][1] = end_ms
                runs[-1][3] += result.confidence * length
            else:
                runs.append([entry.timestamp, end_ms, result.result, result.confidence * length])

    def summary(self) -> dict[str, dict[str, float]]:
        total = self.duration_ms or 1
        return {
            name: {f"{label}_fraction": round(ms / total, 6) for label, ms in times.items()}
            for name, times in self._time.items()
        }

    def transitions(self) -> dict[str, list[Transition]]:
        return {
            name: [
                Transition(
                    timestamp_start=start,
                    timestamp_end=end,
                    result=label,
                    confidence=round(weighted / max(end - start, 1), ROUND),
                )
                for start, end, label, weighted in runs
            ]
            for name, runs in self._runs.items()
        }


class Timeline:
    """16 kHz samples in, one ``TimeSeriesEntry`` per output period out (see module doc)."""

    def __init__(self, classifiers: list[WindowClassifier], options: AnalysisOptions) -> None:
        self._classifiers = classifiers
        self._options = options
        self._period = options.output_period * SAMPLES_PER_MS
        self._history = max(c.receptive_field_ms for c in classifiers) * SAMPLES_PER_MS
        self._stride = DECISION_STRIDE_MS * SAMPLES_PER_MS
        self._decisions: dict[str, tuple[int, Decision]] = {}  # model -> (window end, decision)
        self._samples = np.zeros(0, dtype=np.float32)
        self._samples_start = 0  # absolute index of _samples[0], always on the frame grid
        self._frames = empty_frames(0)
        self._next_frame = 0  # absolute index of the next frame to compute
        self._emitted = 0
        self.total_samples = 0
        self.report = Report(classifiers)

    def push(self, samples: np.ndarray) -> list[TimeSeriesEntry]:
        """Add audio; returns the entries it completed (none while an entry is filling)."""
        if len(samples) == 0:
            return []
        self._samples = np.concatenate([self._samples, np.asarray(samples, dtype=np.float32)])
        self.total_samples += len(samples)
        self._extend_frames()
        entries = []
        while (self._emitted + 1) * self._period <= self.total_samples:
            entries.append(self._emit((self._emitted + 1) * self._period))
        self._forget()
        return entries

    def finish(self) -> list[TimeSeriesEntry]:
        """The last, shorter entry, if the audio did not end on an output period."""
        if self.total_samples > self._emitted * self._period:
            return [self._emit(self.total_samples)]
        return []

    @property
    def duration_ms(self) -> int:
        return _ms(self.total_samples)

    def _extend_frames(self) -> None:
        start = self._next_frame * HOP - self._samples_start
        fresh = compute_frames(self._samples[start:], first=self._next_frame)
        if len(fresh):
            self._frames = Frames.concat([self._frames, fresh])
            self._next_frame += len(fresh)

    def _forget(self) -> None:
        """Drop audio and frames that no later entry or window can reach."""
        next_start = self._emitted * self._period
        # The next entry ends after next_start (the last one may end anywhere after it), so no
        # window of it starts before the stride point at or below next_start, minus history.
        earliest_window = next_start // self._stride * self._stride - self._history
        keep = min(next_start, earliest_window, self._next_frame * HOP)
        keep = max(keep, 0) // HOP * HOP
        if keep > self._samples_start:
            self._samples = self._samples[keep - self._samples_start :]
            self._samples_start = keep
            self._frames = self._frames.rows(keep // HOP, self._frames.first + len(self._frames))

    def _emit(self, end: int) -> TimeSeriesEntry:
        start = self._emitted * self._period
        self._emitted += 1
        piece = self._samples[start - self._samples_start : end - self._samples_start]
        rms = float(np.sqrt(np.mean(piece.astype(np.float64) ** 2))) if len(piece) else 0.0
        silent = rms < self._options.volume_threshold
        speaking = not silent and self._voiced(start, end)
        results: dict[str, FrameResult] = {}
        raw: dict[str, dict[str, float] | None] = {}
        speech_cache: dict[tuple[int, int], tuple[Frames, Speech]] = {}
        decided_at = self._decision_end(end)
        for classifier in self._classifiers:
            raw[classifier.name] = None
            if silent:
                results[classifier.name] = FrameResult(result=SILENCE, confidence=1.0)
                continue
            if not speaking:
                results[classifier.name] = FrameResult(result=NO_SPEECH, confidence=1.0)
                continue
            reach = classifier.receptive_field_ms * SAMPLES_PER_MS
            cached = self._decisions.get(classifier.name)
            if cached is not None and cached[0] == decided_at:
                decision = cached[1]
            else:
                rows = window_rows(max(decided_at - reach, 0), decided_at)
                if rows not in speech_cache:
                    window = self._frames.rows(*rows)
                    speech_cache[rows] = (window, speech_in(window))
                decision = classifier.classify(*speech_cache[rows])
                self._decisions[classifier.name] = (decided_at, decision)
            results[classifier.name] = FrameResult(
                result=decision.result,
                confidence=round(decision.confidence, ROUND),
                partial=True if decided_at < reach else None,
            )
            if decision.probabilities is not None:
                raw[classifier.name] = {
                    k: round(v, ROUND) for k, v in decision.probabilities.items()
                }
        entry = TimeSeriesEntry(
            timestamp=start // SAMPLES_PER_MS,
            results=results,
            raw=raw if self._options.include_raw_values else None,
        )
        self.report.add(entry, _ms(end))
        return entry

    def _decision_end(self, end: int) -> int:
        """Where the models' window ends for an entry ending at ``end`` (see
        ``DECISION_STRIDE_MS``); entries of 256 ms or more each get their own decision."""
        if self._period >= self._stride or end < self._stride:
            return end
        return end // self._stride * self._stride

    def _voiced(self, start: int, end: int) -> bool:
        """Whether the frames that end inside ``[start, end)`` hold voice (causal: a frame
        belongs to the entry in which its last sample falls)."""
        last = (end - FRAME) // HOP
        if last < 0:
            return False
        first = min(max(-(-(start + 1 - FRAME) // HOP), 0), last)
        frames = self._frames.rows(first, last + 1)
        voiced = int(frames.voiced.sum())
        return voiced >= max(1, math.ceil(MIN_VOICED_SHARE * len(frames)))


class StreamAnalysis:
    """A stream: 16-bit little-endian mono PCM bytes in, entries out as periods complete."""

    def __init__(self, timeline: Timeline, sample_rate: int) -> None:
        if not MIN_SOURCE_RATE <= sample_rate <= MAX_SOURCE_RATE:
            raise UnsupportedAudio(f"stream: sample rate {sample_rate} Hz is not supported")
        self.timeline = timeline
        self._carry = b""
        self._resampler = (
            None
            if sample_rate == TARGET_RATE
            else soxr.ResampleStream(sample_rate, TARGET_RATE, 1, dtype="float32", quality="HQ")
        )

    def feed(self, data: bytes) -> list[TimeSeriesEntry]:
        data = self._carry + bytes(data)
        usable = len(data) - len(data) % 2  # a sample may straddle two chunks
        self._carry = data[usable:]
        samples = _pcm16(data[:usable])
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self.timeline.push(samples)

    def close(self) -> list[TimeSeriesEntry]:
        entries = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            entries = self.timeline.push(tail)
        return entries + self.timeline.finish()


class AnalysisService:
    """Loaded classifiers plus the audio limits; safe to call from many threads."""

    def __init__(
        self,
        settings: CoreSettings,
        encoder: Any = None,
        classifiers: dict[str, WindowClassifier] | None = None,
    ) -> None:
        self.settings = settings
        self.classifiers = classifiers or load_classifiers(_partial_embedder(encoder))

    # -- description -------------------------------------------------------------------------

    def models(self, names: Iterable[str] | None = None) -> list[AnalysisModelInfo]:
        return [
            AnalysisModelInfo(
                name=c.name,
                labels=list(c.labels),
                receptive_field_ms=c.receptive_field_ms,
                licence=c.licence,
            )
            for c in self._selected(names)
        ]

    def _selected(self, names: Iterable[str] | None) -> list[WindowClassifier]:
        if names is None:
            return list(self.classifiers.values())
        try:
            return [self.classifiers[name] for name in names]
        except KeyError as exc:
            raise BadRequest(f"models: unknown model {exc.args[0]!r}", code="bad_field") from None

    # -- whole files -------------------------------------------------------------------------

    def analyze_file(
        self, data: bytes, name: str, options: AnalysisOptions | None = None
    ) -> AnalysisResult:
        """A whole recording, any format libsndfile reads; the function the bus calls.

        Raises ``AnalyticError`` (same codes as verification) for what cannot be analysed.
        """
        samples, rate = read_mono(data, name, self.settings.max_duration_s)
        return self.analyze_samples(resample(samples, rate), name, options, sample_rate=rate)

    def analyze_samples(
        self,
        samples: np.ndarray,
        name: str = "audio",
        options: AnalysisOptions | None = None,
        sample_rate: int = TARGET_RATE,
    ) -> AnalysisResult:
        """16 kHz float samples already in memory; ``sample_rate`` is only reported."""
        options = options or AnalysisOptions()
        timeline = self.timeline(options)
        entries = timeline.push(samples) + timeline.finish()
        result = AnalysisResult(
            name=name,
            duration_ms=timeline.duration_ms,
            sample_rate=sample_rate,
            output_period=options.output_period,
            models=self.models(options.models),
            time_series=entries,
            summary=timeline.report.summary() if options.include_summary else None,
            transitions=timeline.report.transitions() if options.include_transitions else None,
            request_id=options.request_id,
            analysis_id=str(uuid.uuid4()),
            analyzer_id=self.settings.analyzer_id,
        )
        log.info(
            "analyzed",
            extra={
                "event": "analyzed",
                "analysis_id": result.analysis_id,
                "request_id": result.request_id,
                "duration_ms": result.duration_ms,
                "entries": len(entries),
                "models": options.models,
            },
        )
        return result

    def timeline(self, options: AnalysisOptions) -> Timeline:
        return Timeline(self._selected(options.models), options)

    # -- one chunk, one answer ---------------------------------------------------------------

    def analyze_chunk(
        self,
        audio: np.ndarray | bytes,
        sample_rate: int = TARGET_RATE,
        models: Iterable[str] | None = None,
        volume_threshold: float = 0.005,
    ) -> dict[str, LabelResult]:
        """One aggregate answer per model for a whole chunk (float samples or PCM16 bytes).

        The chunk is one window, however long: the statistics pool over all of it, so a long
        chunk is a more reliable answer than any single time-series entry.
        """
        samples = _pcm16(audio) if isinstance(audio, bytes | bytearray) else np.asarray(audio)
        samples = resample(samples.astype(np.float32, copy=False), sample_rate)
        frames = compute_frames(samples)
        rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0
        speech = speech_in(frames)
        answers: dict[str, LabelResult] = {}
        for classifier in self._selected(models):
            if rms < volume_threshold:
                answers[classifier.name] = LabelResult(result=SILENCE, confidence=1.0)
            elif int(frames.voiced.sum()) == 0:
                answers[classifier.name] = LabelResult(result=NO_SPEECH, confidence=1.0)
            else:
                decision = classifier.classify(frames, speech)
                answers[classifier.name] = LabelResult(
                    result=decision.result, confidence=round(decision.confidence, ROUND)
                )
        return answers

    def describe(self, speech: np.ndarray) -> dict[str, LabelResult]:
        """Gender and arousal of a verification clip's trimmed 16 kHz speech.

        Never raises: these are extras on a verification result, which must not be lost to
        them; a failure is logged and the fields stay null.
        """
        try:
            return self.analyze_chunk(speech, TARGET_RATE)
        except Exception:
            log.exception("describing a clip failed", extra={"event": "describe_failed"})
            return {}

    # -- streams -----------------------------------------------------------------------------

    def open_stream(
        self, options: AnalysisOptions | None = None, sample_rate: int = TARGET_RATE
    ) -> StreamAnalysis:
        """A push-style stream: ``feed(bytes)`` and ``close()`` return finished entries;
        ``.timeline.report`` holds the running summary and transitions."""
        return StreamAnalysis(self.timeline(options or AnalysisOptions()), sample_rate)

    def stream(
        self,
        chunks: Iterable[bytes],
        options: AnalysisOptions | None = None,
        sample_rate: int = TARGET_RATE,
    ) -> Iterator[TimeSeriesEntry]:
        """Generator: 16-bit PCM byte chunks in, one entry per ``output_period`` out."""
        session = self.open_stream(options, sample_rate)
        for chunk in chunks:
            yield from session.feed(chunk)
        yield from session.close()


def _partial_embedder(encoder: Any) -> Any:
    """GE2E for the gender head: the verification encoder's when it is GE2E, else one GE2E
    shared by the process (an ECAPA service; the weights ship in the Resemblyzer wheel)."""
    embed_partials = getattr(encoder, "embed_partials", None)
    return embed_partials if callable(embed_partials) else _own_ge2e().embed_partials


@functools.lru_cache(maxsize=1)
def _own_ge2e() -> Any:
    from analytic.encoders.ge2e import Ge2eEncoder

    return Ge2eEncoder()
