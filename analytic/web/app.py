"""The HTTP door: a Flask app factory, one blueprint, every error as JSON.

Uploads never touch the disk: ``InMemoryRequest`` keeps multipart file parts in ``BytesIO``
instead of Werkzeug's spooled temporary files, and the request body is capped before parsing.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import IO, Any

from flask import Blueprint, Flask, current_app, jsonify, request
from flask.wrappers import Request
from werkzeug.exceptions import HTTPException

from analytic import __version__
from analytic.errors import AnalyticError, BadRequest, TooLarge
from analytic.household import HouseholdService, build_household
from analytic.schemas import (
    ErrorBody,
    ErrorDetail,
    Health,
    ModelInfo,
    SifisResult,
    VerificationOptions,
    validated,
)
from analytic.service import VerificationService
from analytic.web import auth
from analytic.web.analysis import ANALYSIS_KEY, analysis_api
from analytic.web.errors import http_headers, http_status
from analytic.web.household import HOUSEHOLD_KEY, household_api
from analytic.web.openapi import openapi_api
from analytic.web.settings import HttpSettings

log = logging.getLogger(__name__)

SERVICE_KEY = "voicegate.service"
BUS_STATUS_KEY = "voicegate.bus_status"
DHT_STATUS_KEY = "voicegate.dht_status"
HTTP_SETTINGS_KEY = "voicegate.http_settings"
OPTION_FIELDS = ("threshold", "request_id", "requestor_id", "requestor_type")

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_audio",
}

api = Blueprint("api", __name__)


class InMemoryRequest(Request):
    """Multipart file parts land in memory, never in a temporary file."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


def create_app(
    service: VerificationService,
    bus_status: Callable[[], str] | None = None,
    household: HouseholdService | None = None,
    dht_status: Callable[[], str] | None = None,
    settings: HttpSettings | None = None,
) -> Flask:
    """Build the app around an already-loaded service (models load once, outside requests).

    ``bus_status`` and ``dht_status`` report the bus adapter's and the DHT forwarder's links
    in ``/health``; None means that link is not configured.
    """
    settings = settings or HttpSettings.of(service.settings)
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.extensions[HTTP_SETTINGS_KEY] = settings
    app.extensions[SERVICE_KEY] = service
    app.extensions[BUS_STATUS_KEY] = bus_status
    app.extensions[DHT_STATUS_KEY] = dht_status
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(api)
    app.extensions[HOUSEHOLD_KEY] = household or build_household(service)  # opens the store
    app.register_blueprint(household_api)
    app.extensions[ANALYSIS_KEY] = service.analysis
    app.register_blueprint(analysis_api)
    auth.install(app, settings)  # tokens, rate limit, concurrency gate
    app.register_blueprint(openapi_api)
    app.register_error_handler(AnalyticError, _analytic_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _service() -> VerificationService:
    return current_app.extensions[SERVICE_KEY]


@api.post("/speaker_verification")
def speaker_verification() -> Any:
    file1, file2 = _uploaded("file1"), _uploaded("file2")
    return _verify(file1, file2, _options({}))


@api.post(
    "/speaker_verification/<first_audio_file>/<second_audio_file>"
    "/<requestor_id>/<requestor_type>/<request_id>"
)
def speaker_verification_sifis(
    first_audio_file: str,
    second_audio_file: str,
    requestor_id: str,
    requestor_type: str,
    request_id: str,
) -> Any:
    """The SIFIS-Home analytic's URL and answer: the ``RequestPostTopicUUID`` envelope the
    SIFIS analytics API reads. Ids come from the path, the file names too (as the original
    echoes them); the audio is the first two file parts, whatever their field names, as the
    original takes them."""
    first, second = _first_two_uploads()
    path_fields = {
        "requestor_id": requestor_id,
        "requestor_type": requestor_type,
        "request_id": request_id,
    }
    result = _service().verify((first_audio_file, first), (second_audio_file, second),
                               _options(path_fields))
    return jsonify(SifisResult.from_result(result).model_dump())


@api.get("/health")
def health() -> Any:
    service = _service()
    bus_status = current_app.extensions[BUS_STATUS_KEY]
    dht_status = current_app.extensions[DHT_STATUS_KEY]
    body = Health(
        model=service.encoder.name,
        version=__version__,
        bus=bus_status() if bus_status else None,
        dht=dht_status() if dht_status else None,
    )
    return jsonify(body.model_dump())


@api.get("/models")
def models() -> Any:
    service = _service()
    encoder = service.encoder
    info = ModelInfo(
        name=encoder.name,
        embedding_size=encoder.embedding_size,
        sample_rate=encoder.sample_rate,
        default_threshold=service.default_threshold,
        narrowband_threshold=service.threshold_for(8000),
        score_norm=service.policy.score_norm,
        false_accept=service.policy.false_accept,
        calibrated=service.policy.calibration is not None,
    )
    household: HouseholdService = current_app.extensions[HOUSEHOLD_KEY]
    return jsonify({"models": [info.model_dump()],
                    "liveness": household.liveness.info().model_dump()})


def _verify(
    file1: tuple[str, bytes], file2: tuple[str, bytes], options: VerificationOptions
) -> Any:
    result = _service().verify(file1, file2, options, privileged=auth.is_admin())
    return jsonify(result.model_dump())


def _uploaded(field: str) -> tuple[str, bytes]:
    """A multipart file part as (name, bytes); 400 when it is missing."""
    upload = request.files.get(field)
    if upload is None:
        raise BadRequest(
            f"multipart field '{field}' with an audio file is required", code="missing_file"
        )
    return upload.filename or field, upload.stream.read()


def _first_two_uploads() -> tuple[bytes, bytes]:
    """The audio of the first two file parts in the body, whatever they are called (parts that
    share a name count in turn); 400 when there are fewer than two."""
    uploads = [upload for _, upload in request.files.items(multi=True)][:2]
    if len(uploads) < 2:
        raise BadRequest(
            f"two multipart file parts with audio are required, got {len(uploads)}",
            code="missing_file",
        )
    return uploads[0].stream.read(), uploads[1].stream.read()


def _options(overrides: dict[str, str]) -> VerificationOptions:
    """Form fields (or path segments) validated by the shared pydantic model."""
    fields: dict[str, str] = {k: v for k in OPTION_FIELDS if (v := request.form.get(k))}
    fields.update(overrides)
    return validated(VerificationOptions, fields)


def _error(status: int, code: str, message: str) -> Any:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return jsonify(body.model_dump()), status


def _analytic_error(exc: AnalyticError) -> Any:
    status = http_status(exc)
    log.info("refused", extra={"event": "refused", "code": exc.code, "status": status})
    body, status = _error(status, exc.code, exc.message)
    return body, status, http_headers(exc)


def _http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    if status == 413:
        limit = current_app.extensions[HTTP_SETTINGS_KEY].max_request_bytes
        return _error(413, TooLarge.code, f"request body larger than {limit} bytes")
    return _error(status, HTTP_CODES.get(status, "http_error"), exc.description or exc.name)


def _unexpected_error(exc: Exception) -> Any:
    log.exception("unexpected error", extra={"event": "internal_error"})
    return _error(500, "internal_error", "the analytic failed to process the request")
