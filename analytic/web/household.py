"""HTTP door to the household: /enrollments, /identify and /streams (a Flask blueprint).

Bodies are the pydantic models of ``analytic.schemas``; errors are the app's usual JSON errors
(404 ``not_found`` for an unknown person or an expired stream). Wherever a recording is taken,
a ``stream`` form field naming an open stream session may stand in for the ``file`` part.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from pydantic import BaseModel

from analytic.errors import BadRequest
from analytic.household import HouseholdService, Recording
from analytic.schemas import (
    ChallengeOptions,
    EnrolOptions,
    HouseholdOptions,
    StreamInfo,
    validated,
)
from analytic.streams import FILE, SessionInfo, chunk_kind
from analytic.web import auth

HOUSEHOLD_KEY = "voicegate.household"
OPTION_FIELDS = ("threshold", "request_id", "requestor_id", "requestor_type", "challenge_id")
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}

household_api = Blueprint("household", __name__)


def household() -> HouseholdService:
    return current_app.extensions[HOUSEHOLD_KEY]


def recording_or_stream(field: str = "file") -> Recording:
    """A multipart file part, or the audio of the stream session named by ``stream``.

    Public so other endpoints (analyze) can accept a stream session the same way.
    """
    upload = request.files.get(field)
    if upload is not None:
        return upload.filename or field, upload.stream.read()
    session_id = request.form.get("stream") or request.args.get("stream")
    if session_id:
        return household().streams.recording(session_id)
    raise BadRequest(f"multipart field '{field}' with an audio file, or a 'stream' session id, "
                     "is required", code="missing_file")


def _flag(name: str) -> bool:
    value = (request.form.get(name) or request.args.get(name) or "").strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadRequest(f"{name}: expected true or false", code="bad_field")


def _options(names: tuple[str, ...] = OPTION_FIELDS) -> HouseholdOptions:
    return validated(HouseholdOptions, {k: v for k in names if (v := request.form.get(k))})


def _json(model: BaseModel, status: int = 200) -> Any:
    return jsonify(model.model_dump(mode="json")), status


# --- enrolments ---
@household_api.post("/enrollments")
def enrol() -> Any:
    options = validated(EnrolOptions, {
        "external_id": request.form.get("external_id", ""),
        "replace": _flag("replace"),
        **({"request_id": v} if (v := request.form.get("request_id")) else {}),
    })
    recordings: list[Recording] = [
        (upload.filename or "file", upload.stream.read())
        for upload in request.files.getlist("file")
    ]
    recordings += [household().streams.recording(s) for s in request.form.getlist("stream") if s]
    return _json(household().enrol(options, recordings))


@household_api.post("/enrollments/<external_id>/digits")
def enrol_digits(external_id: str) -> Any:
    """Digit templates for liveness: each file says "zero one two ... nine" in order."""
    options = validated(EnrolOptions, {
        "external_id": external_id, "replace": _flag("replace"),
        **({"request_id": v} if (v := request.form.get("request_id")) else {}),
    })
    recordings: list[Recording] = [
        (upload.filename or "file", upload.stream.read())
        for upload in request.files.getlist("file")
    ]
    recordings += [household().streams.recording(s) for s in request.form.getlist("stream") if s]
    return _json(household().enrol_digits(options, recordings))


@household_api.post("/challenges")
def challenge() -> Any:
    """A one-time spoken-digit challenge (liveness), optionally for one member."""
    fields = {k: v for k in ("external_id", "request_id") if (v := request.form.get(k))}
    return _json(household().challenge(validated(ChallengeOptions, fields)), 201)


@household_api.get("/enrollments")
def list_enrolments() -> Any:
    return _json(household().list())


@household_api.get("/enrollments/<external_id>")
def get_enrolment(external_id: str) -> Any:
    return _json(household().info(external_id, export=_flag("export")))


@household_api.delete("/enrollments/<external_id>")
def delete_enrolment(external_id: str) -> Any:
    return _json(household().delete(external_id))


@household_api.delete("/enrollments")
def delete_all_enrolments() -> Any:
    return _json(household().delete_all())


@household_api.post("/enrollments/<external_id>/verify")
def verify(external_id: str) -> Any:
    service = household()
    # 404 for an unknown person even when the request carries no audio.
    service.info(external_id)
    return _json(service.verify(external_id, recording_or_stream(), _options(),
                                privileged=auth.is_admin()))


@household_api.post("/identify")
def identify() -> Any:
    # ``site`` (identify only) names the bus's retained <prefix>/speaker/<site> state.
    return _json(household().identify(recording_or_stream(), _options((*OPTION_FIELDS, "site")),
                                      privileged=auth.is_admin()))


# --- streams ---
def _stream_info(info: SessionInfo) -> StreamInfo:
    return StreamInfo(session_id=info.session_id, sample_rate=info.sample_rate,
                      duration_s=info.duration_s, chunks=info.chunks,
                      expires_in_s=info.expires_in_s, max_s=household().streams.max_s)


def _rate() -> int | None:
    """``sample_rate`` from the query, a form field, or the Content-Type's ``rate=``."""
    raw = (request.args.get("sample_rate") or request.form.get("sample_rate")
           or request.mimetype_params.get("rate"))
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("sample_rate: expected an integer number of Hz",
                         code="bad_field") from None


@household_api.post("/streams")
def open_stream() -> Any:
    return _json(_stream_info(household().streams.open(_rate())), 201)


@household_api.post("/streams/<session_id>")
def append_chunk(session_id: str) -> Any:
    streams = household().streams
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadRequest("multipart field 'file' with an audio chunk is required",
                             code="missing_file")
        data, kind = upload.stream.read(), FILE
    else:  # the content types of analytic.streams; raw PCM at ``;rate=`` or ``?sample_rate=``
        kind = chunk_kind(mimetype)
        data = request.get_data(cache=False)
    return _json(_stream_info(streams.append(session_id, data, kind, _rate())))


@household_api.get("/streams/<session_id>")
def stream_status(session_id: str) -> Any:
    return _json(_stream_info(household().streams.info(session_id)))


@household_api.delete("/streams/<session_id>")
def close_stream(session_id: str) -> Any:
    household().streams.close(session_id)
    return "", 204
