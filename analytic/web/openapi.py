"""``GET /openapi.json``: an OpenAPI 3.1 document of the HTTP door.

Bodies and option fields come from the pydantic models in ``analytic.schemas`` (their JSON
schemas, with references into ``components/schemas``), so the document cannot drift from what
the service answers; the route table below is the only hand-written part, and a test checks it
names every route Flask serves.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from analytic import __version__
from analytic.schemas import (
    AnalysisOptions,
    AnalysisResult,
    Challenge,
    ChallengeOptions,
    DeleteResult,
    DigitEnrolmentResult,
    EnrolmentInfo,
    EnrolmentList,
    EnrolmentResult,
    EnrolOptions,
    ErrorBody,
    Health,
    HouseholdOptions,
    HouseholdVerification,
    Identification,
    LivenessInfo,
    ModelInfo,
    SifisResult,
    StreamInfo,
    VerificationOptions,
    VerificationResult,
)

openapi_api = Blueprint("openapi", __name__)

REF = "#/components/schemas/{model}"
BINARY = {"type": "string", "format": "binary"}
AUDIO = {**BINARY, "description": "A recording: WAV, FLAC, OGG, anything libsndfile reads."}
STREAM_FIELD = {"type": "string", "description": "An open stream session id, instead of a file."}


class ModelList(BaseModel):
    """``GET /models``' body."""

    models: list[ModelInfo]
    liveness: LivenessInfo


RESPONSE_MODELS: list[type[BaseModel]] = [
    VerificationResult, SifisResult, ErrorBody, Health, ModelList, EnrolmentResult, EnrolmentList,
    EnrolmentInfo, DeleteResult, HouseholdVerification, Identification, StreamInfo,
    AnalysisResult, Challenge, DigitEnrolmentResult,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _fields(model: type[BaseModel], defs: dict[str, Any], only: tuple[str, ...] = ()) -> dict:
    """An option model's properties, as multipart form fields (their sub-schemas hoisted)."""
    schema = model.model_json_schema(ref_template=REF)
    defs.update(schema.get("$defs", {}))
    properties = schema["properties"]
    return {k: v for k, v in properties.items() if not only or k in only}


def _multipart(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True,
            "content": {"multipart/form-data": {"schema": schema}}}


def _operation(summary: str, model: type[BaseModel] | None, *, status: str = "200",
               body: dict | None = None, params: list | None = None,
               admin: bool = False) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Success."}
    if model is not None:
        ok["content"] = {"application/json": {"schema": _ref(model)}}
    error = {"description": "An error: see its code.",
             "content": {"application/json": {"schema": _ref(ErrorBody)}}}
    operation: dict[str, Any] = {
        "summary": summary + (" Needs the admin token when one is set." if admin else ""),
        "responses": {status: ok, "4XX": error, "5XX": error},
    }
    if body is not None:
        operation["requestBody"] = body
    if params:
        operation["parameters"] = params
    return operation


def _path_params(path: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{([^}]+)}", path)]


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document, built once per process."""
    defs: dict[str, Any] = {}
    verification = _multipart({"file1": AUDIO, "file2": AUDIO,
                               **_fields(VerificationOptions, defs)}, ["file1", "file2"])
    sifis = _multipart({"file1": AUDIO, "file2": AUDIO}, [])
    sifis["content"]["multipart/form-data"]["schema"].update(
        additionalProperties=AUDIO, minProperties=2,
        description="Two recordings: the first two file parts, whatever their field names "
                    "(the SIFIS analytics API sends file1 and file2).")
    household_options = _fields(HouseholdOptions, defs)
    member = _multipart({"file": AUDIO, "stream": STREAM_FIELD,
                         **{k: v for k, v in household_options.items() if k != "site"}}, [])
    identify = _multipart({"file": AUDIO, "stream": STREAM_FIELD, **household_options}, [])
    enrol = _multipart({"file": {"type": "array", "items": AUDIO},
                        "stream": {"type": "array", "items": STREAM_FIELD},
                        **_fields(EnrolOptions, defs)}, ["external_id"])
    digits = _multipart({"file": {"type": "array", "items": AUDIO},
                         "stream": {"type": "array", "items": STREAM_FIELD},
                         **_fields(EnrolOptions, defs, ("replace", "request_id"))}, [])
    challenge = _multipart(_fields(ChallengeOptions, defs), [])
    analysis_options = _fields(AnalysisOptions, defs)
    analyze = _multipart({"file": AUDIO, **analysis_options}, ["file"])
    chunk = {"required": True, "content": {
        "audio/pcm": {"schema": BINARY}, "application/octet-stream": {"schema": BINARY},
        "audio/wav": {"schema": BINARY}, "audio/flac": {"schema": BINARY},
        "audio/ogg": {"schema": BINARY},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"file": AUDIO},
                                           "required": ["file"]}}}}
    sample_rate = _query("sample_rate", {"type": "integer"},
                         "Hz of raw PCM chunks (or ';rate=' in the Content-Type).")
    export = _query("export", {"type": "boolean"},
                    "Include the enrolment vectors (when the service allows export).")
    sifis_path = ("/speaker_verification/{first_audio_file}/{second_audio_file}"
                  "/{requestor_id}/{requestor_type}/{request_id}")
    paths: dict[str, dict[str, Any]] = {
        "/speaker_verification": {"post": _operation(
            "Is this the same speaker as that recording?", VerificationResult,
            body=verification)},
        sifis_path: {"post": _operation(
            "The SIFIS-Home analytic's URL and answer: the RequestPostTopicUUID envelope, "
            "names and ids from the path.", SifisResult, body=sifis)},
        "/health": {"get": {**_operation("Liveness; never needs a token.", Health),
                            "security": []}},
        "/models": {"get": _operation("The loaded speaker encoder, and liveness support.",
                                      ModelList)},
        "/openapi.json": {"get": {
            "summary": "This document.",
            "responses": {"200": {"description": "OpenAPI 3.1.",
                                  "content": {"application/json": {"schema": {
                                      "type": "object"}}}}}}},
        "/enrollments": {
            "post": _operation("Enrol (or add samples to) a household member.",
                               EnrolmentResult, body=enrol, admin=True),
            "get": _operation("Everyone enrolled.", EnrolmentList),
            "delete": _operation("Forget everyone.", DeleteResult, admin=True),
        },
        "/enrollments/{external_id}": {
            "get": _operation("One enrolled member (export=true needs the admin token).",
                              EnrolmentInfo, params=[export]),
            "delete": _operation("Forget one member.", DeleteResult, admin=True),
        },
        "/enrollments/{external_id}/verify": {"post": _operation(
            "Is this recording that household member?", HouseholdVerification, body=member)},
        "/enrollments/{external_id}/digits": {"post": _operation(
            "Liveness digit templates: each file says 'zero one two ... nine' in order.",
            DigitEnrolmentResult, body=digits, admin=True)},
        "/challenges": {"post": _operation(
            "A one-time spoken-digit challenge (liveness) for verify or identify.", Challenge,
            status="201", body=challenge)},
        "/identify": {"post": _operation(
            "Who in the household is speaking (null match: a stranger)?", Identification,
            body=identify)},
        "/streams": {"post": _operation("Open a stream session.", StreamInfo, status="201",
                                        params=[sample_rate])},
        "/streams/{session_id}": {
            "post": _operation("Append one chunk of audio.", StreamInfo, body=chunk,
                               params=[sample_rate]),
            "get": _operation("A stream session's state.", StreamInfo),
            "delete": _operation("Close a stream session.", None, status="204"),
        },
        "/analyze": {"post": _operation(
            "Gender and arousal over time (options as query or form fields).", AnalysisResult,
            body=analyze,
            params=[_query(k, v, v.get("description", k)) for k, v in analysis_options.items()
                    if "$ref" not in v])},
    }
    for path, operations in paths.items():
        for operation in operations.values():
            if params := _path_params(path):
                operation["parameters"] = params + operation.get("parameters", [])
    _, top = models_json_schema([(m, "serialization") for m in RESPONSE_MODELS],
                                ref_template=REF)
    schemas = {**defs, **top.get("$defs", {})}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Voicegate", "version": __version__,
                 "description": "Offline speaker verification, household identification, "
                                "gender and arousal. Every error is an ErrorBody."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


@openapi_api.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document())
