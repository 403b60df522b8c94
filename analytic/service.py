"""The verification core: two recordings in, one ``VerificationResult`` out.

Doors (HTTP, the bus) hand it bytes and options; listeners registered with
``add_result_listener`` hear every decision, whichever door it came through.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from analytic.audio import AudioLimits, Clip, decode
from analytic.encoders import SpeakerEncoder
from analytic.schemas import DIFFERENT, SAME, FileReport, VerificationOptions, VerificationResult
from analytic.scoring import cosine, decide
from analytic.settings import Settings

log = logging.getLogger(__name__)

ResultListener = Callable[[VerificationResult], None]


class VerificationService:
    """Holds the loaded encoder and the limits; safe to call from many threads."""

    def __init__(self, settings: Settings, encoder: SpeakerEncoder) -> None:
        self.settings = settings
        self.encoder = encoder
        self.limits = AudioLimits(settings.min_speech_s, settings.max_duration_s)
        self.default_threshold = (
            settings.threshold if settings.threshold is not None else encoder.default_threshold
        )
        self._listeners: list[ResultListener] = []

    def add_result_listener(self, listener: ResultListener) -> None:
        self._listeners.append(listener)

    def decode(self, data: bytes, name: str) -> Clip:
        return decode(data, name, self.limits)

    def verify(
        self,
        file1: tuple[str, bytes],
        file2: tuple[str, bytes],
        options: VerificationOptions | None = None,
    ) -> VerificationResult:
        """Decode, embed and score a pair; raises ``AnalyticError`` for refusable input."""
        options = options or VerificationOptions()
        clips = [self.decode(data, name) for name, data in (file1, file2)]
        score = cosine(*(self.encoder.embed(clip.speech) for clip in clips))
        threshold = options.threshold if options.threshold is not None else self.default_threshold
        decision = decide(score, threshold)
        result = VerificationResult(
            decision=decision,
            result=SAME if decision else DIFFERENT,
            score=round(score, 6),
            threshold=threshold,
            model=self.encoder.name,
            request_id=options.request_id,
            requestor_id=options.requestor_id,
            requestor_type=options.requestor_type,
            analysis_id=str(uuid.uuid4()),
            analyzer_id=self.settings.analyzer_id,
            files=[
                FileReport(
                    name=clip.name,
                    duration_s=round(clip.duration_s, 3),
                    speech_s=round(clip.speech_s, 3),
                    sample_rate=clip.sample_rate,
                )
                for clip in clips
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
