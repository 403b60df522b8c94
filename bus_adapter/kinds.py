"""Each request kind: the model that parses its JSON, and the core call that serves it.

Adding a kind takes a model in ``messages.py``, a topic name in ``topics.py`` and a ``Kind``
here; dispatch (``dispatch.py``) gives every kind the same path. Enrolment (and replacing a
voiceprint) is served on the admin's topics only, as over HTTP (``forbidden``); the core
refuses thresholds below the default from anyone but the admin (``threshold_not_allowed``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from analytic.errors import BadRequest, Forbidden
from analytic.household import HouseholdService
from analytic.schemas import (
    AnalysisOptions,
    EnrolmentResult,
    HouseholdVerification,
    Identification,
)
from analytic.service import VerificationService
from bus_adapter.messages import (
    STREAM_END,
    AnalysisRequest,
    ChallengeRequest,
    EnrolmentRequest,
    IdentifyRequest,
    MemberVerificationRequest,
    StreamEnd,
    StreamEnrol,
    StreamIdentify,
    StreamVerify,
    VerificationRequest,
)
from bus_adapter.streams import BusStreams, session_key
from bus_adapter.topics import (
    ANALYSIS,
    CHALLENGE,
    ENROLMENT,
    IDENTIFY,
    MEMBER_VERIFICATION,
    VERIFICATION,
    Incoming,
    Topics,
)

STREAM_END_KIND = "stream_end"


@dataclass(frozen=True)
class Answer:
    """What serving one request produced."""

    payload: str  # JSON
    result_topic: str
    published: bool  # already on result_topic: the core's listener put it there
    analysis_id: str | None


@dataclass(frozen=True)
class Kind:
    """One kind of request: how to parse its JSON, and how to serve the parsed model."""

    name: str
    parse: Callable[[Any], Any]  # raises ValidationError
    serve: Callable[[Any, Incoming], Answer]  # (request, sender); raises AnalyticError


class CoreCalls:
    """The core call behind each kind. Without ``household`` only verification and analysis
    are served (no enrolment, identification, challenges or streams)."""

    def __init__(self, service: VerificationService, topics: Topics,
                 household: HouseholdService | None = None, max_chunk_bytes: int = 0) -> None:
        self.service = service
        self.topics = topics
        self.household = household
        self.streams = (BusStreams(household.streams, max_chunk_bytes)
                        if household is not None else None)

    def kinds(self) -> dict[str, Kind]:
        """Request kind name -> kind; household kinds only with a household."""
        kinds = [
            Kind(VERIFICATION, VerificationRequest.model_validate, self.verify),
            Kind(ANALYSIS, AnalysisRequest.model_validate, self.analyze),
        ]
        if self.household is not None:
            kinds += [
                Kind(ENROLMENT, EnrolmentRequest.model_validate, self.enrol),
                Kind(IDENTIFY, IdentifyRequest.model_validate, self.identify),
                Kind(MEMBER_VERIFICATION, MemberVerificationRequest.model_validate,
                     self.member_verify),
                Kind(CHALLENGE, ChallengeRequest.model_validate, self.challenge),
            ]
        return {kind.name: kind for kind in kinds}

    def stream_end(self) -> Kind:
        """A stream's ``end``: its ``action`` picks the call."""
        return Kind(STREAM_END_KIND, STREAM_END.validate_python, self.end_stream)

    # ----- serving each kind (worker threads) -----

    def verify(self, request: VerificationRequest, sender: Incoming) -> Answer:
        result = self.service.verify(
            (request.file1.name, request.file1.data),
            (request.file2.name, request.file2.data),
            request.options(),
            privileged=sender.is_admin,
        )
        return Answer(result.model_dump_json(), self.topics.result, True, result.analysis_id)

    def analyze(self, request: AnalysisRequest, sender: Incoming) -> Answer:
        return self._analysis((request.file.name, request.file.data), request.options())

    def enrol(self, request: EnrolmentRequest, sender: Incoming) -> Answer:
        self._admin_only(sender)
        result = self._household().enrol(request.options(),
                                         [(f.name, f.data) for f in request.files])
        return self._household_answer(result, ENROLMENT)

    def identify(self, request: IdentifyRequest, sender: Incoming) -> Answer:
        result = self._household().identify(self._recording(request, sender), request.options(),
                                             privileged=sender.is_admin)
        return self._household_answer(result, IDENTIFY)

    def member_verify(self, request: MemberVerificationRequest, sender: Incoming) -> Answer:
        household = self._household()
        household.info(request.external_id)  # not_found before any decoding, as over HTTP
        result = household.verify(request.external_id, self._recording(request, sender),
                                  request.options(), privileged=sender.is_admin)
        return self._household_answer(result, MEMBER_VERIFICATION)

    def challenge(self, request: ChallengeRequest, sender: Incoming) -> Answer:
        """No listener publishes challenges: the answer goes to the result topic from here."""
        result = self._household().challenge(request.options())
        return Answer(result.model_dump_json(), self.topics.result_of(CHALLENGE), False, None)

    def end_stream(self, request: StreamEnd, sender: Incoming) -> Answer:
        """Run the ``end`` message's action on the whole session, then forget the session
        (also when the action is refused: ``end`` means the device is done with it)."""
        household, streams = self._household(), self.streams
        assert sender.session is not None and streams is not None  # routed here only then
        session = session_key(sender.device, sender.session)
        try:
            if isinstance(request, StreamEnrol):
                self._admin_only(sender)
            recording = streams.recording(session)
            if isinstance(request, StreamIdentify):
                return self._household_answer(
                    household.identify(recording, request.options(),
                                       privileged=sender.is_admin), IDENTIFY)
            if isinstance(request, StreamVerify):
                return self._household_answer(
                    household.verify(request.external_id, recording, request.options(),
                                     privileged=sender.is_admin),
                    MEMBER_VERIFICATION)
            if isinstance(request, StreamEnrol):
                return self._household_answer(
                    household.enrol(request.options(), [recording]), ENROLMENT)
            return self._analysis(recording, request.options())
        finally:
            streams.end(session)

    # ----- shared steps -----

    def _analysis(self, recording: tuple[str, bytes], options: AnalysisOptions) -> Answer:
        """No listener publishes analyses: the answer goes to the result topic from here."""
        name, data = recording
        result = self.service.analysis.analyze_file(data, name, options)
        # POST /analyze's body, field for field (options left off are absent, not null).
        payload = json.dumps(result.payload(), separators=(",", ":"))
        return Answer(payload, self.topics.result_of(ANALYSIS), False, result.analysis_id)

    def _recording(self, request: IdentifyRequest | MemberVerificationRequest,
                   sender: Incoming) -> tuple[str, bytes]:
        if request.file is not None:
            return request.file.name, request.file.data
        if request.stream is not None and self.streams is not None:
            return self.streams.recording(session_key(sender.device, request.stream))
        raise BadRequest("'file' (name and base64 data) or 'stream' (a session) is required",
                         code="missing_file")

    def _admin_only(self, sender: Incoming) -> None:
        """Enrolment (and replacing a voiceprint) is the admin's, as over HTTP."""
        if not sender.is_admin:
            raise Forbidden("enrolment is served only on the admin's topics, "
                            f"{self.topics.device_request_of(ENROLMENT, 'admin')} and "
                            f"{self.topics.prefix}/admin/stream/<session>/end")

    def _household(self) -> HouseholdService:
        if self.household is None:  # household kinds are only subscribed with a household
            raise RuntimeError("no household service")
        return self.household

    def _household_answer(
        self, result: EnrolmentResult | Identification | HouseholdVerification, kind: str
    ) -> Answer:
        """The household listener has already published it on the kind's result topic."""
        return Answer(result.model_dump_json(), self.topics.result_of(kind), True,
                      result.analysis_id)
