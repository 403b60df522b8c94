"""Messages shared by every door: HTTP bodies and bus payloads are these same models."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from analytic.errors import AnalyticError, BadOutputPeriod, BadRequest
from analytic.ids import check_id, normalise_id
from analytic.thresholds import ThresholdSource

SAME = "Same Speaker"
DIFFERENT = "Different Speaker"

Model = TypeVar("Model", bound=BaseModel)


# Fields whose refusal has a code of its own, on every door (as in the Deeptone API).
FIELD_CODES: dict[str, type[AnalyticError]] = {"output_period": BadOutputPeriod}
UNION_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def refusal(exc: ValidationError, own_codes: Collection[str] = (),
            union_members: Collection[str] = ()) -> AnalyticError:
    """The one rule, for every door, that turns a validation error into a client error.

    The first problem is named by its field and never echoes the value sent. Its code is
    ``bad_field``, or a field's own (``FIELD_CODES``), or the error's own type when the caller
    raises such errors (``own_codes``, e.g. the bus's ``bad_base64``, preferred over the rest).
    ``union_members`` are the tags of a tagged union, left out of the field's name.
    """
    errors = exc.errors(include_input=False, include_url=False)
    first = next((e for e in errors if e["type"] in own_codes), errors[0])
    loc = [str(part) for part in first["loc"]]
    if loc[:1] and loc[0] in union_members:
        loc = loc[1:]
    if first["type"] in UNION_TAG_ERRORS:
        loc = [str(first.get("ctx", {}).get("discriminator", "request")).strip("'")]
    where = ".".join(loc) or "request"
    message = f"{where}: {first['msg'].removeprefix('Value error, ')}"
    if first["type"] in own_codes:
        return BadRequest(message, code=first["type"], field=where)
    if loc[:1] and loc[0] in FIELD_CODES:
        return FIELD_CODES[loc[0]](message, field=where)
    return BadRequest(message, code="bad_field", field=where)


def validated(model: type[Model], fields: Mapping[str, Any]) -> Model:
    """Fields from a form, a query string or bus JSON, validated by ``model`` (``refusal``
    words what is wrong)."""
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        raise refusal(exc) from None


class VerificationOptions(BaseModel):
    """Optional fields a caller may send with a pair of recordings."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        None, allow_inf_nan=False, ge=-1000.0, le=1000.0,
        description="Decision threshold on the service's score scale (see score_norm).")
    request_id: str | None = Field(None, max_length=200)
    requestor_id: str | None = Field(None, max_length=200)
    requestor_type: str | None = Field(None, max_length=200)


class LabelResult(BaseModel):
    """One model's answer: a label and how sure the model is of it (0..1)."""

    result: str
    confidence: float


class FileReport(BaseModel):
    """What the analytic heard in one recording."""

    name: str
    duration_s: float = Field(description="Length of the whole file, seconds.")
    speech_s: float = Field(description="Speech kept after trimming silences, seconds.")
    sample_rate: int = Field(description="Sample rate of the file as sent, Hz.")
    gender: LabelResult | None = Field(None, description="male / female / unknown.")
    arousal: LabelResult | None = Field(None, description="high / neutral / low / unknown.")


class VerificationResult(BaseModel):
    """One decision: HTTP's 200 body and the bus's result payload."""

    decision: bool
    result: Literal["Same Speaker", "Different Speaker"]
    score: float = Field(description="On the score_norm scale: AS-norm (unbounded, 0 = a "
                         "typical stranger) or, with score_norm 'none', the cosine.")
    raw_score: float | None = Field(
        None, description="Cosine similarity of the two voiceprints, -1..1.")
    score_norm: Literal["asnorm", "none"] = "none"
    confidence: float | None = Field(
        None, description="Calibrated probability of the same speaker, 0..1 (null for an "
        "encoder without a shipped calibration).")
    threshold: float = Field(description="The score needed for a 'Same Speaker' decision.")
    threshold_source: ThresholdSource = Field(
        "default", description="'default': the configured threshold; 'request': the request's "
        "own (stricter, or set by the admin). Never updates the bus's retained states.",
    )
    bandwidth: Literal["wideband", "narrowband"] = Field(
        "wideband",
        description="narrowband when either file is below 16 kHz: both are compared band-limited"
        " and against the narrowband threshold.",
    )
    model: str
    request_id: str | None = None
    requestor_id: str | None = None
    requestor_type: str | None = None
    analysis_id: str
    analyzer_id: str
    files: list[FileReport]


# --- The SIFIS-Home envelope (the SIFIS URL's 200 body, the bus's SIFIS topic, the DHT) ---
# sifis-home/flask_speaker_verification answers with, and sends to the SIFIS DHT, a
# ``RequestPostTopicUUID`` message; the SIFIS analytics API reads ``["RequestPostTopicUUID"]
# ["value"]`` of the 200 body and forwards the whole message to the DHT unchanged.

SIFIS_TOPIC_NAME: Final = "SIFIS:Privacy_Aware_Speaker_Verification_Results"
SIFIS_TOPIC_UUID: Final = "Speaker_Verification_Results"
SIFIS_DESCRIPTION: Final = "Speaker Verification Results"


class SifisValue(BaseModel):
    """The SIFIS keys, spelt and typed as the original analytic sends them, then Voicegate's
    own fields that add to them (``raw_score`` and ``result`` are already there as "Cosine
    Similarity" and "Result")."""

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=True)

    description: Literal["Speaker Verification Results"] = SIFIS_DESCRIPTION
    requestor_id: str | None = Field(
        description="From the SIFIS URL (always a string there); null when another door's "
        "request had none.")
    requestor_type: str | None
    request_id: str | None
    analyzer_id: str
    analysis_id: str
    connected: Literal[True] = Field(True, description="Always true, as in the original.")
    first_audio_file: str = Field(description="The SIFIS URL's first name (else the file's).")
    second_audio_file: str
    cosine_similarity: float = Field(
        alias="Cosine Similarity", description="Cosine similarity of the voiceprints, -1..1.")
    outcome: Literal["Same Speaker", "Different Speaker"] = Field(alias="Result")
    decision: bool
    score: float = Field(description="The decision score, on the score_norm scale.")
    score_norm: Literal["asnorm", "none"]
    confidence: float | None = Field(description="Calibrated probability of the same speaker.")
    threshold: float = Field(description="The score needed for 'Same Speaker'.")
    threshold_source: ThresholdSource = "default"
    bandwidth: Literal["wideband", "narrowband"]
    model: str
    files: list[FileReport]


class SifisMessage(BaseModel):
    topic_name: Literal["SIFIS:Privacy_Aware_Speaker_Verification_Results"] = SIFIS_TOPIC_NAME
    topic_uuid: Literal["Speaker_Verification_Results"] = SIFIS_TOPIC_UUID
    value: SifisValue


class SifisResult(BaseModel):
    """The SIFIS-Home DHT ``RequestPostTopicUUID`` envelope of one decision: the SIFIS URL's
    200 body, the payload of ``VOICEGATE_MQTT_SIFIS_TOPIC`` and the DHT message, all three
    made by ``from_result`` from the same ``VerificationResult``."""

    RequestPostTopicUUID: SifisMessage

    @classmethod
    def from_result(cls, result: VerificationResult) -> SifisResult:
        first, second = (f.name for f in result.files)
        value = SifisValue(
            requestor_id=result.requestor_id, requestor_type=result.requestor_type,
            request_id=result.request_id, analyzer_id=result.analyzer_id,
            analysis_id=result.analysis_id, first_audio_file=first, second_audio_file=second,
            cosine_similarity=result.raw_score if result.raw_score is not None else result.score,
            outcome=result.result, decision=result.decision, score=result.score,
            score_norm=result.score_norm, confidence=result.confidence,
            threshold=result.threshold, threshold_source=result.threshold_source,
            bandwidth=result.bandwidth, model=result.model,
            files=result.files,
        )
        return cls(RequestPostTopicUUID=SifisMessage(value=value))


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
    default_threshold: float = Field(description="Pair threshold, wideband, on score_norm.")
    narrowband_threshold: float = Field(description="Pair threshold when a file is < 16 kHz.")
    score_norm: Literal["asnorm", "none"] = "none"
    false_accept: float = Field(description="Chance a stranger passes one attempt "
                                "(VOICEGATE_FALSE_ACCEPT); the thresholds follow from it.")
    calibrated: bool = Field(description="Whether answers carry a calibrated confidence.")


class LivenessInfo(BaseModel):
    """``GET /models``' liveness entry: whether spoken-digit challenges can be checked."""

    supported: bool
    recognisers: list[str] = Field(description="templates (per member), pocketsphinx.")
    digits: int = Field(description="Digits in a challenge.")
    challenge_ttl_s: float
    required: bool = Field(description="Household verify/identify refuse requests without one.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    version: str
    bus: str | None = Field(None, description="connected / disconnected; null without a bus.")
    dht: str | None = Field(
        None, description="The SIFIS-Home DHT link: connected / disconnected; null when "
        "VOICEGATE_SIFIS_DHT_URL is unset.")


# --- Household voiceprints: enrol, verify, identify, streams (analytic/household.py) ---
# Times are UTC; ``threshold`` and ``score`` are on the scale named by ``score_norm``: "asnorm"
# (AS-norm, unbounded, about -3..7.5 on LibriSpeech, 0 = a typical stranger) or "none" (cosine).

ExternalId = Annotated[
    str,
    BeforeValidator(normalise_id),
    Field(min_length=1, max_length=200, pattern=r"^[^/\x00-\x1f]+$",
          description="The caller's id for a household member, NFKC-normalised; no '/', "
          "control or invisible characters, mixed Latin/Greek/Cyrillic letters, or reserved "
          "words such as 'unknown' (analytic/ids.py)."),
    AfterValidator(check_id),
]


class EnrolOptions(BaseModel):
    """Who is being enrolled, and whether to start over."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    replace: bool = Field(False, description="Drop earlier samples instead of adding to them.")
    request_id: str | None = Field(None, max_length=200)


# A site (kitchen, hall) is one MQTT topic level and part of a Home Assistant object id.
Site = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


ChallengeId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class HouseholdOptions(BaseModel):
    """Optional fields of a household verify or identify request."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        None, allow_inf_nan=False, ge=-1000.0, le=1000.0,
        description="Decision threshold on the service's score scale (see score_norm).",
    )
    request_id: str | None = Field(None, max_length=200)
    requestor_id: str | None = Field(None, max_length=200)
    requestor_type: str | None = Field(None, max_length=200)
    site: Site | None = Field(
        None, description="Where the recording was made (identify): names the bus's retained "
        "<prefix>/speaker/<site> state; unset = 'default'.",
    )
    challenge_id: ChallengeId | None = Field(
        None, description="A challenge from POST /challenges: the recording must then also say "
        "its digits (liveness); the challenge is used up whatever the outcome.",
    )


# --- Liveness: spoken random-digit challenges (analytic/liveness.py, docs/liveness.md) ---


class ChallengeOptions(BaseModel):
    """``POST /challenges`` (and the bus's challenge request): optionally for one member."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId | None = Field(
        None, description="The member who will answer: verify then refuses the challenge for "
        "anyone else.",
    )
    request_id: str | None = Field(None, max_length=200)


class Challenge(BaseModel):
    """A one-time challenge: say ``digits`` within ``expires_in_s``, then verify or identify
    with ``challenge_id``."""

    challenge_id: str = Field(description="Unguessable; usable once.")
    digits: str = Field(description="What to say, space-separated, e.g. '4 7 1 9'.")
    expires_in_s: float
    external_id: str | None = None
    request_id: str | None = None


class Liveness(BaseModel):
    """Whether the recording said the challenge's digits."""

    passed: bool
    expected: str = Field(description="The challenge's digits, e.g. '4 7 1 9'.")
    heard: str = Field(description="What was heard, one per segment; '?' = no digit matched.")
    recogniser: Literal["templates", "pocketsphinx", "none"] = Field(
        description="templates: the member's own digit templates; pocketsphinx: the "
        "speaker-independent model (no templates enrolled); none: nothing was compared.",
    )
    fits_templates: bool | None = Field(
        None, description="templates only: the answer sounds like the member's own digits "
        "(mean DTW cost within 1.45 times their templates' own spread); passed needs it.",
    )


class DigitEnrolmentResult(BaseModel):
    """``POST /enrollments/<id>/digits``: how many templates of each digit are stored."""

    external_id: str
    templates_per_digit: int
    request_id: str | None = None
    analysis_id: str
    analyzer_id: str
    files: list[FileReport]


class EnrolmentInfo(BaseModel):
    """One enrolled person; vectors only when export is allowed and asked for."""

    external_id: str
    encoder: str
    sample_count: int
    created_at: datetime
    updated_at: datetime
    samples: list[list[float]] | None = Field(None, description="Per-sample embeddings (export).")
    centroid: list[float] | None = Field(None, description="Their centroid (export).")


class EnrolmentList(BaseModel):
    count: int
    enrollments: list[EnrolmentInfo]
    score_norm: Literal["asnorm", "none"] = Field(
        description="How verify/identify score: 'none' also when no cohort fits the encoder."
    )
    threshold: float = Field(description="The default verify/identify threshold on that scale.")


class EnrolmentResult(BaseModel):
    """The answer to an enrolment: what was added and what is now stored."""

    external_id: str
    encoder: str
    samples_added: int
    sample_count: int
    replaced: bool
    created_at: datetime
    updated_at: datetime
    request_id: str | None = None
    analysis_id: str
    analyzer_id: str
    files: list[FileReport]


class DeleteResult(BaseModel):
    deleted: int = Field(description="How many people were forgotten.")


class HouseholdVerification(BaseModel):
    """Answers "is this <external_id>?": HTTP's 200 body, and the bus payload later."""

    external_id: str
    decision: bool
    score: float = Field(description="On the score_norm scale.")
    raw_score: float = Field(description="Mean cosine of the recording and the enrolment samples.")
    confidence: float | None = Field(
        None, description="Calibrated probability that this is the member, 0..1.")
    threshold: float
    threshold_source: ThresholdSource = Field(
        "default", description="'default': the configured threshold; 'request': the request's "
        "own (stricter, or set by the admin). Never updates the bus's retained states.",
    )
    score_norm: Literal["asnorm", "none"]
    model: str
    request_id: str | None = None
    requestor_id: str | None = None
    requestor_type: str | None = None
    liveness: Liveness | None = Field(
        None, description="With a challenge_id: the digit check; decision needs both.")
    analysis_id: str
    analyzer_id: str
    files: list[FileReport]


class Candidate(BaseModel):
    external_id: str
    score: float
    raw_score: float


class Identification(BaseModel):
    """Answers "who is speaking?": the best match at or above threshold, else null (unknown)."""

    match: str | None = Field(description="external_id of the speaker, or null: unknown.")
    decision: bool = Field(description="True when a household member was recognised.")
    score: float | None = Field(description="The best candidate's score, null if none enrolled.")
    confidence: float | None = Field(
        None, description="Calibrated probability that the best candidate is the speaker.")
    threshold: float = Field(description="Rises with the number of members enrolled, so a "
                             "stranger's chance of being named stays at VOICEGATE_FALSE_ACCEPT.")
    threshold_source: ThresholdSource = Field(
        "default", description="'default': the configured threshold; 'request': the request's "
        "own (stricter, or set by the admin). Never updates the bus's retained states.",
    )
    score_norm: Literal["asnorm", "none"]
    candidates: list[Candidate] = Field(description="Best-scoring members, best first.")
    enrolled: int = Field(description="How many voiceprints (of this encoder) were compared.")
    model: str
    request_id: str | None = None
    requestor_id: str | None = None
    requestor_type: str | None = None
    site: str | None = Field(None, description="The request's site, echoed.")
    liveness: Liveness | None = Field(
        None, description="With a challenge_id: the digit check of the matched member; match "
        "and decision need both.")
    analysis_id: str
    analyzer_id: str
    files: list[FileReport]


class StreamInfo(BaseModel):
    """A stream session: pass ``session_id`` as the ``stream`` field instead of a file."""

    session_id: str
    sample_rate: int | None
    duration_s: float
    chunks: int
    expires_in_s: float = Field(description="Seconds until it is forgotten without a chunk.")
    max_s: float = Field(description="Longest audio the session may hold.")


# --- Gender and arousal analysis (analytic/analysis.py, POST /analyze) ---
# Shaped like the Deeptone SDK's output: a time series of per-model {result, confidence} every
# ``output_period`` ms, optionally with a summary of fractions and the list of transitions.

AnalysisModel = Literal["gender", "arousal"]
ANALYSIS_MODELS: tuple[AnalysisModel, ...] = ("gender", "arousal")
SILENCE = "silence"
NO_SPEECH = "no_speech"
UNKNOWN = "unknown"
OUTPUT_PERIOD_STEP_MS = 64


class AnalysisOptions(BaseModel):
    """What to analyse and how to report it; the same fields over HTTP, the bus and the CLI."""

    model_config = ConfigDict(extra="forbid")

    models: list[AnalysisModel] = Field(
        default_factory=lambda: list(ANALYSIS_MODELS), min_length=1,
        description="Models to run; a list or a comma-separated string.",
    )
    output_period: int = Field(
        1024, description="Milliseconds per time-series entry; a positive multiple of 64."
    )
    include_summary: bool = False
    include_transitions: bool = False
    include_raw_values: bool = False
    volume_threshold: float = Field(
        0.005, ge=0.0, le=1.0, allow_inf_nan=False,
        description="Frames whose RMS (full scale = 1) is below this are 'silence'.",
    )
    request_id: str | None = Field(None, max_length=200)

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return list(dict.fromkeys(value))  # drop repeats, keep the caller's order
        return value

    @field_validator("output_period")
    @classmethod
    def _check_period(cls, value: int) -> int:
        if value <= 0 or value % OUTPUT_PERIOD_STEP_MS:
            raise ValueError(f"must be a positive multiple of {OUTPUT_PERIOD_STEP_MS} ms")
        return value


class FrameResult(LabelResult):
    partial: bool | None = Field(
        None, description="True while the model's receptive field is not yet filled (the "
        "start of a recording): the decision pooled the shorter stretch heard so far.",
    )


class TimeSeriesEntry(BaseModel):
    timestamp: int = Field(description="Start of this entry, ms from the start of the audio.")
    results: dict[str, FrameResult]
    raw: dict[str, dict[str, float] | None] | None = Field(
        None, description="Class probabilities per model (include_raw_values); null where the "
        "model was not run (silence, no speech, too little speech).",
    )


class Transition(BaseModel):
    timestamp_start: int
    timestamp_end: int
    result: str
    confidence: float = Field(description="Mean confidence over the run.")


class AnalysisModelInfo(BaseModel):
    name: str
    labels: list[str] = Field(description="Model classes; any result may also be silence, "
                              "no_speech or unknown.")
    receptive_field_ms: int = Field(description="Audio one decision looks at (ending at the "
                                    "end of its time-series entry).")
    licence: str


class AnalysisResult(BaseModel):
    """``POST /analyze``'s 200 body; the bus answers an analysis request with the same."""

    name: str
    duration_ms: int
    sample_rate: int = Field(description="Sample rate of the file as sent, Hz.")
    output_period: int
    models: list[AnalysisModelInfo]
    time_series: list[TimeSeriesEntry]
    summary: dict[str, dict[str, float]] | None = None
    transitions: dict[str, list[Transition]] | None = None
    request_id: str | None = None
    analysis_id: str
    analyzer_id: str

    def payload(self) -> dict:
        """The JSON body: absent options (raw, summary, ...) are left out, not null."""
        return self.model_dump(mode="json", exclude_none=True)
