"""The HTTP door to the analysis: ``POST /analyze``, one recording in, a time series out.

    curl -F file=@kitchen.wav \
      'http://127.0.0.1:7070/analyze?models=gender,arousal&output_period=1024&include_summary=true'

Options come from the query string or from form fields (the query wins when both name one);
they are validated by the shared ``AnalysisOptions`` model, so HTTP, the bus and the CLI refuse
the same things with the same codes. Errors are the app's usual JSON error bodies.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from analytic.analysis import AnalysisService, parse_analysis_options
from analytic.errors import BadRequest

ANALYSIS_KEY = "voicegate.analysis"
OPTION_FIELDS = (
    "models",
    "output_period",
    "include_summary",
    "include_transitions",
    "include_raw_values",
    "volume_threshold",
    "request_id",
)

analysis_api = Blueprint("analysis", __name__)


def _analysis() -> AnalysisService:
    return current_app.extensions[ANALYSIS_KEY]


@analysis_api.post("/analyze")
def analyze() -> Any:
    fields = {k: v for k in OPTION_FIELDS if (v := request.form.get(k)) is not None}
    fields |= {k: v for k, v in request.args.items()}  # unknown names are refused by the model
    options = parse_analysis_options(fields)
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("multipart field 'file' with an audio file is required",
                         code="missing_file")
    result = _analysis().analyze_file(upload.stream.read(), upload.filename or "file", options)
    return jsonify(result.payload())
