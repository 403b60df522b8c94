"""The verification core: two recordings in, one ``VerificationResult`` out.

Doors (HTTP, the bus) hand it bytes and options; listeners registered with
``add_result_listener`` hear every decision, whichever door it came through.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import numpy as np

from analytic.analysis import AnalysisService
from analytic.audio import TARGET_RATE, AudioLimits, Clip, band_limit, decode
from analytic.cores import CoreShare
from analytic.encoders import SpeakerEncoder
from analytic.policy import ScorePolicy, build_policy
from analytic.schemas import DIFFERENT, SAME, FileReport, VerificationOptions, VerificationResult
from analytic.scoring import decide
from analytic.settings import CoreSettings
from analytic.thresholds import choose_threshold

log = logging.getLogger(__name__)

ResultListener = Callable[[VerificationResult], None]


class VerificationService:
    """Holds the loaded encoder and the limits; safe to call from many threads."""

    def __init__(
        self, settings: CoreSettings, encoder: SpeakerEncoder,
        analysis: AnalysisService | None = None,
        policy: ScorePolicy | None = None,
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        # Gender and arousal of each verified file; also served on its own at POST /analyze.
        self.analysis = analysis if analysis is not None else AnalysisService(settings, encoder)
        self.limits = AudioLimits(settings.min_speech_s, settings.max_duration_s)
        # Scale, thresholds and confidence, shared with the household (analytic/policy.py).
        self.policy = policy if policy is not None else build_policy(settings, encoder)
        # A pair's two recordings side by side while a core is free (analytic/cores.py).
        self.cores = CoreShare(settings.cores or 1)
        self._listeners: list[ResultListener] = []

    @property
    def default_threshold(self) -> float:
        """The pair threshold for wideband recordings (what ``/models`` reports)."""
        return self.threshold_for(TARGET_RATE)

    def add_result_listener(self, listener: ResultListener) -> None:
        self._listeners.append(listener)

    def decode(self, data: bytes, name: str) -> Clip:
        return decode(data, name, self.limits)

    def threshold_for(self, bandwidth: int) -> float:
        """The default threshold for a pair compared at ``bandwidth`` (see ``pair_bandwidth``):
        a configured override, else the policy's for one comparison."""
        override = (self.settings.threshold if bandwidth >= TARGET_RATE
                    else self.settings.narrowband_threshold)
        return override if override is not None else self.policy.threshold(bandwidth)

    def voiceprint(self, clip: Clip, bandwidth: int = TARGET_RATE,
                   low_cut_hz: float = 0.0) -> np.ndarray:
        """The encoder's embedding of a clip as it was chosen to hear it (trimmed speech, or
        the whole recording for CAM++), band-limited to ``bandwidth`` (and cut below
        ``low_cut_hz``, which only ``evaluate --mixed-low-cut`` asks for: docs/robustness.md)."""
        samples = clip.speech if self.encoder.trimmed_input or clip.audio is None else clip.audio
        return self.encoder.embed(band_limit(samples, bandwidth, low_cut_hz))

    def verify(
        self,
        file1: tuple[str, bytes],
        file2: tuple[str, bytes],
        options: VerificationOptions | None = None,
        privileged: bool = False,
    ) -> VerificationResult:
        """Decode, embed and score a pair; raises ``AnalyticError`` for refusable input.

        ``privileged`` (the admin) may send a threshold below the default; anyone else only a
        stricter one (``analytic.thresholds``)."""
        options = options or VerificationOptions()
        may_lower = privileged or self.settings.allow_threshold_override
        if options.threshold is not None:  # refuse before any decoding when it can be told
            choose_threshold(options.threshold, min(self.default_threshold,
                                                    self.threshold_for(8000)), may_lower)
        clips = list(self.cores.both(lambda file: self.decode(file[1], file[0]), file1, file2))
        bandwidth = pair_bandwidth(clips)
        describe = self.settings.describe_files

        def embed(clip: Clip) -> tuple[np.ndarray, dict]:
            return (self.voiceprint(clip, bandwidth),
                    self.analysis.describe(clip.speech) if describe else {})

        (first, description1), (second, description2) = self.cores.both(embed, *clips)
        scores, raws = self.policy.scorer_for(bandwidth).sample_scores(first, second)
        score, raw = float(scores[0, 0]), float(raws[0, 0])
        descriptions = [description1, description2]
        threshold, source = choose_threshold(options.threshold, self.threshold_for(bandwidth),
                                             may_lower)
        decision = decide(score, threshold)
        result = VerificationResult(
            decision=decision,
            result=SAME if decision else DIFFERENT,
            score=round(score, 6),
            raw_score=round(raw, 6),
            score_norm=self.policy.score_norm,
            confidence=self.policy.confidence(score, bandwidth),
            threshold=threshold,
            threshold_source=source,
            bandwidth="wideband" if bandwidth >= TARGET_RATE else "narrowband",
            model=self.encoder.name,
            request_id=options.request_id,
            requestor_id=options.requestor_id,
            requestor_type=options.requestor_type,
            analysis_id=str(uuid.uuid4()),
            analyzer_id=self.settings.analyzer_id,
            files=[
                file_report(clip, description)
                for clip, description in zip(clips, descriptions, strict=True)
            ],
        )
        log.info(
            "verified",
            extra={
                "event": "verified",
                "analysis_id": result.analysis_id,
                "request_id": result.request_id,
                "decision": decision,
                "score": result.score,
                "threshold": threshold,
            },
        )
        self._notify(result)
        return result

    def _notify(self, result: VerificationResult) -> None:
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:  # a broken listener must not cost the caller its answer
                log.exception("result listener failed", extra={"event": "listener_failed"})


def pair_bandwidth(clips: list[Clip]) -> int:
    """The sample rate both recordings of a pair can be compared at (at most 16 kHz)."""
    return min(TARGET_RATE, *(clip.sample_rate for clip in clips))


def file_report(clip: Clip, description: dict | None = None) -> FileReport:
    """What every result says of one recording (pair verification and the household alike):
    the file as sent, the speech kept of it, and its gender and arousal when described."""
    return FileReport(name=clip.name, duration_s=round(clip.duration_s, 3),
                      speech_s=round(clip.speech_s, 3), sample_rate=clip.sample_rate,
                      **(description or {}))
