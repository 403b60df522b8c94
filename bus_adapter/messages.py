"""Bus payloads as pydantic models.

A request is the core's options model (the same options HTTP takes as form fields:
``VerificationOptions``, ``AnalysisOptions``, ``EnrolOptions``, ``HouseholdOptions``) plus its
files and an optional ``reply_to``; a result is the core's result model, exactly HTTP's 200 body.
Only what is bus-specific lives here, so both doors refuse the same things with the same codes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from analytic.schemas import (
    AnalysisOptions,
    ChallengeOptions,
    EnrolOptions,
    ExternalId,
    HouseholdOptions,
    VerificationOptions,
)
from bus_adapter.topics import is_reply_topic

BAD_BASE64 = "bad_base64"
Options = TypeVar("Options", bound=BaseModel)
_WHITESPACE = re.compile(rb"\s+")


class AudioFile(BaseModel):
    """One recording: its name (echoed in the result) and its bytes as standard base64."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    data: bytes = Field(description="The file's bytes, base64 (standard alphabet, padded).")

    @field_validator("data", mode="before")
    @classmethod
    def _from_base64(cls, value: Any) -> bytes:
        """Strict decoding, so a corrupted payload is refused as ``bad_base64`` instead of
        silently decoding to garbage; line breaks (``base64`` without ``-w0``) are tolerated."""
        if isinstance(value, bytes):  # built in Python, e.g. by publish_pair
            return value
        if not isinstance(value, str):
            raise PydanticCustomError(BAD_BASE64, "must be a base64 string")
        try:
            raw = value.encode("ascii")
            try:
                return base64.b64decode(raw, validate=True)
            except binascii.Error:
                return base64.b64decode(_WHITESPACE.sub(b"", raw), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raise PydanticCustomError(BAD_BASE64, "is not valid base64") from None

    @field_serializer("data")
    def _to_base64(self, data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")


class Replyable(BaseModel):
    """The bus-only field every request may carry: where else to send its answer."""

    model_config = ConfigDict(extra="forbid")

    reply_to: str | None = Field(
        None, description="Also publish the result (or error) here: a topic name inside the "
        "requesting device's reply space, <prefix>/<device>/reply/... (<prefix>/reply/... on the "
        "shared topics); anywhere else is refused as reply_not_allowed."
    )

    @field_validator("reply_to")
    @classmethod
    def _topic_name(cls, value: str | None) -> str | None:
        if value is not None and not is_reply_topic(value):
            raise ValueError("must be a topic name without wildcards, not starting with '$'")
        return value


def core_options(request: BaseModel, model: type[Options]) -> Options:
    """The part of a bus request the core understands, as the core's own options model."""
    return model.model_validate(request.model_dump(include=set(model.model_fields)))


class VerificationRequest(Replyable, VerificationOptions):
    """``<prefix>/verification/request``: the HTTP options plus the pair and a reply topic."""

    file1: AudioFile
    file2: AudioFile

    def options(self) -> VerificationOptions:
        """The part the core understands."""
        return core_options(self, VerificationOptions)


# --- issue 4: gender and arousal analysis ---------------------------------------------------


class AnalysisRequest(Replyable, AnalysisOptions):
    """``<prefix>/analysis/request``: ``POST /analyze``'s options plus the file. The answer on
    ``<prefix>/analysis/result`` is ``POST /analyze``'s body (``AnalysisResult.payload()``)."""

    file: AudioFile

    def options(self) -> AnalysisOptions:
        return core_options(self, AnalysisOptions)


# --- issue 5: household enrolment, identification, streams ----------------------------------


class EnrolmentRequest(Replyable, EnrolOptions):
    """``<prefix>/enrollment/request``: ``POST /enrollments``' fields plus the files. An empty
    ``files`` is refused by the core as ``missing_file``, as over HTTP."""

    files: list[AudioFile] = Field(default_factory=list)

    def options(self) -> EnrolOptions:
        return core_options(self, EnrolOptions)


class IdentifyRequest(Replyable, HouseholdOptions):
    """``<prefix>/identify/request``: a ``file``, or a ``stream`` session (a bus session name
    or an HTTP ``POST /streams`` id), plus ``POST /identify``'s fields (``site`` included)."""

    file: AudioFile | None = None
    stream: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_source(self) -> IdentifyRequest:
        if self.file is not None and self.stream is not None:
            raise ValueError("send either file or stream, not both")
        return self

    def options(self) -> HouseholdOptions:
        return core_options(self, HouseholdOptions)


class MemberVerificationRequest(Replyable, HouseholdOptions):
    """``<prefix>/member_verification/request``: ``POST /enrollments/<id>/verify`` on the bus
    ("is this ``external_id``?"), a ``file`` or a ``stream`` session, usually with a
    ``challenge_id``. Answered on ``<prefix>/member_verification/result``."""

    external_id: ExternalId
    file: AudioFile | None = None
    stream: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_source(self) -> MemberVerificationRequest:
        if self.file is not None and self.stream is not None:
            raise ValueError("send either file or stream, not both")
        return self

    def options(self) -> HouseholdOptions:
        return core_options(self, HouseholdOptions)


class ChallengeRequest(Replyable, ChallengeOptions):
    """``<prefix>/challenge/request``: ``POST /challenges``' fields. The answer, on
    ``<prefix>/challenge/result`` and the requester's reply routes, is ``Challenge``."""

    def options(self) -> ChallengeOptions:
        return core_options(self, ChallengeOptions)


class StreamIdentify(Replyable, HouseholdOptions):
    """``end`` with ``identify``: answered on ``<prefix>/identify/result``."""

    action: Literal["identify"]

    def options(self) -> HouseholdOptions:
        return core_options(self, HouseholdOptions)


class StreamVerify(Replyable, HouseholdOptions):
    """``end`` with ``verify`` ("is this ``external_id``?"): answered on
    ``<prefix>/member_verification/result`` (``POST /enrollments/<id>/verify``'s body)."""

    action: Literal["verify"]
    external_id: ExternalId

    def options(self) -> HouseholdOptions:
        return core_options(self, HouseholdOptions)


class StreamEnrol(Replyable, EnrolOptions):
    """``end`` with ``enrol``: the session becomes one enrolment sample of ``external_id``."""

    action: Literal["enrol", "enroll"]

    def options(self) -> EnrolOptions:
        return core_options(self, EnrolOptions)


class StreamAnalyze(Replyable, AnalysisOptions):
    """``end`` with ``analyze``: answered on ``<prefix>/analysis/result``."""

    action: Literal["analyze"]

    def options(self) -> AnalysisOptions:
        return core_options(self, AnalysisOptions)


ACTIONS = ("identify", "verify", "enrol", "enroll", "analyze")
StreamEnd = StreamIdentify | StreamVerify | StreamEnrol | StreamAnalyze
STREAM_END: TypeAdapter[StreamEnd] = TypeAdapter(
    Annotated[StreamEnd, Field(discriminator="action")]
)


class SpeakerState(BaseModel):
    """``<prefix>/speaker/<site>``, retained: who spoke last at a site, for automations."""

    speaker: str = Field(description="The member's external_id, or 'unknown'.")
    score: float | None = Field(description="The best candidate's score (null: none enrolled).")
    threshold: float
    time: str = Field(description="When it was identified, ISO 8601 UTC.")
    analysis_id: str


class BusError(BaseModel):
    """``<prefix>/error``: a request that could not be served, with the same codes as HTTP."""

    request_id: str | None = None
    code: str
    message: str


_REQUEST_ID = re.compile(rb'\s*:\s*"((?:[^"\\]|\\.){0,200})"')


def peek_request_id(payload: bytes) -> str | None:
    """Best-effort ``request_id`` of a payload we will not (or cannot) parse: too large, queue
    full, or broken JSON. Error replies carry it so requesters can match them; a C-speed
    ``find`` keeps this cheap enough for the network thread even on a 20 MB payload."""
    at = payload.find(b'"request_id"')
    if at < 0:
        return None
    match = _REQUEST_ID.match(payload, at + len(b'"request_id"'))
    if match is None:
        return None
    try:
        value = json.loads(b'"' + match.group(1) + b'"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None
