"""Schemathesis against the live app: requests generated from GET /openapi.json, never a 5xx.

Also checks that every 200 body matches the documented schema. It runs on its own server with
its own empty voiceprint store, because generated requests include DELETE /enrollments.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from analytic.cli.settings import Settings
from analytic.service import VerificationService
from analytic.web.app import create_app
from analytic.web.openapi import openapi_document
from tests.conftest import free_port, serve_in_thread
from tests.hypothesis_guard import skip_broken_lazy_modules

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)


@schemathesis.serializer("audio/pcm", "audio/wav", "audio/flac", "audio/ogg")
def raw_audio(ctx: object, value: object) -> bytes:
    """Stream chunks are raw bytes: send whatever was generated, as bytes."""
    return value if isinstance(value, bytes) else str(value).encode()


schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def generated_server(encoder, tmp_path_factory):
    skip_broken_lazy_modules()
    settings_ = Settings(port=free_port(), data_dir=str(tmp_path_factory.mktemp("schemathesis")),
                         max_request_bytes=2 * 1024 * 1024,
                         # generated POST /streams must not fill the session table (503 busy)
                         stream_max_sessions=100_000)
    yield from serve_in_thread(create_app(VerificationService(settings_, encoder)), settings_)


@schema.parametrize()
@settings(max_examples=8, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_generated_requests_never_get_a_server_error(case, generated_server):
    case.call_and_validate(base_url=generated_server,
                           checks=[not_a_server_error, response_schema_conformance])
