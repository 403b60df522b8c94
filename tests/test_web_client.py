"""The HTTP door through Flask's test client: routes, JSON errors and the code-to-status map,
with no socket and no waitress (the fast layer; tests/test_http.py runs the same door over
real waitress). Real speech, the real encoder and a real SQLite store in a temporary folder.
"""

from __future__ import annotations

import io

import pytest

from analytic.cli.settings import Settings
from analytic.errors import AnalyticError, Busy, NoSpeech, NotFound, TooShort
from analytic.service import VerificationService
from analytic.web.app import create_app
from analytic.web.errors import RateLimited, Unauthorized, http_headers, http_status
from tests.conftest import FEMALE_A, MALE_A, MALE_STRANGER


@pytest.fixture(scope="module")
def client(encoder, tmp_path_factory):
    settings = Settings(data_dir=str(tmp_path_factory.mktemp("client-store")))
    app = create_app(VerificationService(settings, encoder))
    app.testing = True
    return app.test_client()


def pair(first: bytes, second: bytes) -> dict:
    return {"file1": (io.BytesIO(first), "a.flac"), "file2": (io.BytesIO(second), "b.flac")}


def test_the_same_speaker_is_accepted_and_a_stranger_refused(client):
    same = client.post("/speaker_verification", data=pair(
        MALE_A[0].read_bytes(), MALE_A[1].read_bytes()))
    other = client.post("/speaker_verification", data=pair(
        MALE_A[0].read_bytes(), MALE_STRANGER.read_bytes()))
    assert same.status_code == other.status_code == 200
    assert same.json["decision"] is True and same.json["result"] == "Same Speaker"
    assert other.json["decision"] is False
    assert same.json["score"] > same.json["threshold"] > other.json["score"]


def test_a_missing_part_is_a_json_400(client):
    response = client.post("/speaker_verification",
                           data={"file1": (io.BytesIO(MALE_A[0].read_bytes()), "a.flac")})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "missing_file"


def test_silence_is_refused_with_its_code_and_status(client):
    silence = bytes(32_000)  # not even a container: unsupported audio
    response = client.post("/speaker_verification", data=pair(silence, FEMALE_A[0].read_bytes()))
    assert response.status_code == 415
    assert response.json["error"]["code"] == "unsupported_audio"


def test_unknown_member_and_route_are_json_404(client):
    assert client.get("/enrollments/nobody").json["error"]["code"] == "not_found"
    route = client.get("/no/such/route")
    assert route.status_code == 404 and route.json["error"]["code"] == "not_found"


def test_enrol_then_identify_over_the_test_client(client):
    files = [(io.BytesIO(p.read_bytes()), p.name) for p in MALE_A[:2]]
    enrolled = client.post("/enrollments", data={"external_id": "dad", "file": files})
    assert enrolled.status_code in (200, 201), enrolled.json
    found = client.post("/identify",
                        data={"file": (io.BytesIO(MALE_A[2].read_bytes()), "c.flac")})
    assert found.status_code == 200 and found.json["match"] == "dad"
    stranger = client.post("/identify",
                           data={"file": (io.BytesIO(FEMALE_A[0].read_bytes()), "d.flac")})
    assert stranger.json["decision"] is False
    assert client.delete("/enrollments/dad").status_code in (200, 204)


@pytest.mark.parametrize(("error", "status"), [
    (NoSpeech("x"), 422), (TooShort("x"), 422), (NotFound("x"), 404), (Busy("x"), 503),
    (AnalyticError("x", code="missing_file"), 400), (RateLimited("x"), 429),
    (Unauthorized("x", "Bearer"), 401),
])
def test_each_core_code_maps_to_one_http_status(error, status):
    assert http_status(error) == status


def test_retry_and_auth_hints_become_headers():
    busy = Busy("x")
    busy.retry_after_s = 3
    assert http_headers(busy) == {"Retry-After": "3"}
    assert http_headers(Unauthorized("x", 'Bearer realm="voicegate"')) == {
        "WWW-Authenticate": 'Bearer realm="voicegate"'}
    assert http_headers(NoSpeech("x")) == {}


def test_open_challenges_are_bounded_with_a_busy_503(encoder, tmp_path):
    """Beyond ``challenge_max_open`` a challenge is refused as ``busy`` with Retry-After,
    like every other full resource (TooManyChallenges is a Busy)."""
    settings = Settings(data_dir=str(tmp_path), challenge_max_open=1)
    client = create_app(VerificationService(settings, encoder)).test_client()
    assert client.post("/challenges").status_code == 201
    refused = client.post("/challenges")
    assert refused.status_code == 503
    assert refused.json["error"]["code"] == "busy"
    assert refused.headers["Retry-After"] == "1"
