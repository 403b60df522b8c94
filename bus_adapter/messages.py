"""Bus payloads as pydantic models.

A request is ``VerificationOptions`` (the same options HTTP takes as form fields) plus the two
files and an optional ``reply_to``; a result is ``analytic.schemas.VerificationResult``, exactly
HTTP's 200 body. Only what is bus-specific lives here.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from pydantic_core import PydanticCustomError

from analytic.schemas import VerificationOptions, VerificationResult
from bus_adapter.topics import is_reply_topic

BAD_BASE64 = "bad_base64"
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


class VerificationRequest(VerificationOptions):
    """``<prefix>/verification/request``: the HTTP options plus the pair and a reply topic."""

    file1: AudioFile
    file2: AudioFile
    reply_to: str | None = Field(
        None, description="Also publish the result (or error) here; a topic name, no wildcards."
    )

    @field_validator("reply_to")
    @classmethod
    def _topic_name(cls, value: str | None) -> str | None:
        if value is not None and not is_reply_topic(value):
            raise ValueError("must be a topic name without wildcards, not starting with '$'")
        return value

    def options(self) -> VerificationOptions:
        """The part the core understands."""
        return VerificationOptions.model_validate(
            self.model_dump(include=set(VerificationOptions.model_fields))
        )


class BusError(BaseModel):
    """``<prefix>/error``: a request that could not be served, with the same codes as HTTP."""

    request_id: str | None = None
    code: str
    message: str


SIFIS_TOPIC_NAME = "SIFIS:Privacy_Aware_Speaker_Verification_Results"
SIFIS_TOPIC_UUID = "Speaker_Verification_Results"


class SifisTopicValue(BaseModel):
    topic_name: Literal["SIFIS:Privacy_Aware_Speaker_Verification_Results"] = SIFIS_TOPIC_NAME
    topic_uuid: Literal["Speaker_Verification_Results"] = SIFIS_TOPIC_UUID
    value: VerificationResult


class SifisResult(BaseModel):
    """The SIFIS-Home DHT ``RequestPostTopicUUID`` envelope, so a DHT bridge can forward results
    without knowing our schema."""

    RequestPostTopicUUID: SifisTopicValue

    @classmethod
    def wrap(cls, result: VerificationResult) -> SifisResult:
        return cls(RequestPostTopicUUID=SifisTopicValue(value=result))


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
