"""Messages shared by every door: HTTP bodies and bus payloads are these same models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SAME = "Same Speaker"
DIFFERENT = "Different Speaker"


class VerificationOptions(BaseModel):
    """Optional fields a caller may send with a pair of recordings."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(None, ge=-1.0, le=1.0, description="Cosine threshold.")
    request_id: str | None = Field(None, max_length=200)
    requestor_id: str | None = Field(None, max_length=200)
    requestor_type: str | None = Field(None, max_length=200)


class FileReport(BaseModel):
    """What the analytic heard in one recording."""

    name: str
    duration_s: float = Field(description="Length of the whole file, seconds.")
    speech_s: float = Field(description="Speech kept after trimming silences, seconds.")
    sample_rate: int = Field(description="Sample rate of the file as sent, Hz.")


class VerificationResult(BaseModel):
    """One decision: HTTP's 200 body and the bus's result payload."""

    decision: bool
    result: Literal["Same Speaker", "Different Speaker"]
    score: float = Field(description="Cosine similarity of the two voiceprints, -1..1.")
    threshold: float = Field(description="The score needed for a 'Same Speaker' decision.")
    model: str
    request_id: str | None = None
    requestor_id: str | None = None
    requestor_type: str | None = None
    analysis_id: str
    analyzer_id: str
    files: list[FileReport]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """HTTP error body: ``{"error": {"code": ..., "message": ...}}``."""

    error: ErrorDetail


class ModelInfo(BaseModel):
    name: str
    embedding_size: int
    sample_rate: int
    default_threshold: float


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    version: str
    bus: str | None = Field(None, description="connected / disconnected; null without a bus.")
