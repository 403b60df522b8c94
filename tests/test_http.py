"""The HTTP door, over a real socket served by waitress, on real speech."""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest
import requests

from tests import audio_factory as make
from tests.conftest import FEMALE_A, FEMALE_STRANGER, MALE_A, MALE_STRANGER

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60


def post_pair(base_url, first, second, data=None, path="/speaker_verification"):
    files = {"file1": ("a.flac", first), "file2": ("b.flac", second)}
    return requests.post(base_url + path, files=files, data=data or {}, timeout=TIMEOUT)


def error_code(response) -> str:
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]["code"]


@pytest.mark.parametrize(
    "first, second",
    [(MALE_A[0], MALE_A[1]), (MALE_A[1], MALE_A[2]), (FEMALE_A[0], FEMALE_A[1]),
     (FEMALE_A[1], FEMALE_A[2])],
    ids=["male-01", "male-12", "female-01", "female-12"],
)
def test_same_speaker_is_accepted(base_url, first, second):
    response = post_pair(base_url, first.read_bytes(), second.read_bytes())
    assert response.status_code == 200
    body = response.json()
    assert body["decision"] is True
    assert body["result"] == "Same Speaker"
    assert body["score"] >= body["threshold"]


@pytest.mark.parametrize(
    "first, second",
    [(MALE_A[0], FEMALE_A[0]), (MALE_A[0], MALE_STRANGER), (FEMALE_A[0], FEMALE_STRANGER),
     (MALE_STRANGER, FEMALE_STRANGER)],
    ids=["male-female", "male-male", "female-female", "strangers"],
)
def test_different_speakers_are_rejected(base_url, first, second):
    body = post_pair(base_url, first.read_bytes(), second.read_bytes()).json()
    assert body["decision"] is False
    assert body["result"] == "Different Speaker"
    assert body["score"] < body["threshold"]


def test_result_carries_everything_the_contract_names(base_url):
    fields = {"request_id": "req-1", "requestor_id": "frontdoor", "requestor_type": "device"}
    body = post_pair(base_url, MALE_A[0].read_bytes(), MALE_A[1].read_bytes(), fields).json()
    assert {k: body[k] for k in fields} == fields
    assert body["model"] == "campplus" and body["score_norm"] == "asnorm"
    # The decision is on the AS-norm scale; the cosine and a calibrated confidence beside it.
    assert body["score"] >= body["threshold"] and body["decision"] is True
    assert 0.5 < body["raw_score"] <= 1 and 0.5 < body["confidence"] <= 1
    assert body["analyzer_id"] == "voicegate"
    uuid.UUID(body["analysis_id"])
    assert [f["name"] for f in body["files"]] == ["a.flac", "b.flac"]
    for report in body["files"]:
        assert report["sample_rate"] == 16_000
        assert 0 < report["speech_s"] <= report["duration_s"]


def test_caller_threshold_overrides_the_default(base_url):
    pair = MALE_A[0].read_bytes(), MALE_A[1].read_bytes()
    strict = post_pair(base_url, *pair, {"threshold": "50"}).json()
    assert strict["threshold"] == 50
    assert strict["decision"] is False
    lenient = post_pair(base_url, MALE_A[0].read_bytes(), FEMALE_A[0].read_bytes(),
                        {"threshold": "-50"}).json()
    assert lenient["decision"] is True


def test_8khz_wav_against_16khz_flac_is_compared_narrowband(base_url):
    models = requests.get(base_url + "/models", timeout=TIMEOUT).json()["models"]
    body = post_pair(base_url, make.at_rate(MALE_A[0], 8_000), MALE_A[1].read_bytes()).json()
    assert body["files"][0]["sample_rate"] == 8_000
    assert body["bandwidth"] == "narrowband"
    # Chosen on real telephone calls, not on wideband speech resampled.
    assert body["threshold"] == models[0]["narrowband_threshold"] != models[0][
        "default_threshold"]
    assert body["decision"] is True
    wide = post_pair(base_url, MALE_A[0].read_bytes(), MALE_A[1].read_bytes()).json()
    assert wide["bandwidth"] == "wideband"
    assert wide["threshold"] == models[0]["default_threshold"]


@pytest.mark.parametrize(
    "first, second",
    [(MALE_A[0], MALE_STRANGER), (FEMALE_A[0], FEMALE_STRANGER), (MALE_A[1], FEMALE_A[1])],
    ids=["male-male", "female-female", "male-female"],
)
def test_8khz_different_speakers_are_rejected(base_url, first, second):
    body = post_pair(base_url, make.at_rate(first, 8_000), make.at_rate(second, 8_000)).json()
    assert body["bandwidth"] == "narrowband"
    assert body["decision"] is False


def test_8khz_same_speaker_is_accepted(base_url):
    body = post_pair(base_url, make.at_rate(FEMALE_A[0], 8_000),
                     make.at_rate(FEMALE_A[2], 8_000)).json()
    assert body["decision"] is True


def test_sifis_url_echoes_names_and_ids_from_the_path(base_url):
    path = "/speaker_verification/alice1.wav/alice2.flac/hall-sensor/sensor/r-42"
    body = post_pair(base_url, MALE_A[0].read_bytes(), MALE_A[1].read_bytes(), path=path).json()
    value = body["RequestPostTopicUUID"]["value"]  # the SIFIS envelope: tests/test_sifis.py
    assert [f["name"] for f in value["files"]] == ["alice1.wav", "alice2.flac"]
    assert (value["first_audio_file"], value["second_audio_file"]) == ("alice1.wav",
                                                                      "alice2.flac")
    assert (value["requestor_id"], value["requestor_type"], value["request_id"]) == (
        "hall-sensor", "sensor", "r-42")
    assert value["decision"] is True


def test_health_and_models(base_url):
    health = requests.get(base_url + "/health", timeout=TIMEOUT).json()
    assert health["status"] == "ok"
    assert health["model"] == "campplus"
    assert health["version"]
    models = requests.get(base_url + "/models", timeout=TIMEOUT).json()["models"]
    assert models == [{"name": "campplus", "embedding_size": 192, "sample_rate": 16000,
                       "default_threshold": models[0]["default_threshold"],
                       "narrowband_threshold": models[0]["narrowband_threshold"],
                       "score_norm": "asnorm", "false_accept": 0.01, "calibrated": True}]
    # AS-norm thresholds at a 1% stranger rate: a few cohort deviations above a stranger.
    assert 2 < models[0]["default_threshold"] < 6 and 2 < models[0]["narrowband_threshold"] < 6


# --- refusals: every status a client can cause ------------------------------------------------

def test_missing_file_is_400(base_url):
    response = requests.post(base_url + "/speaker_verification",
                             files={"file1": ("a.flac", MALE_A[0].read_bytes())}, timeout=TIMEOUT)
    assert response.status_code == 400
    assert error_code(response) == "missing_file"


@pytest.mark.parametrize("threshold", ["high", "1000.5", "nan"])
def test_bad_threshold_is_400(base_url, threshold):
    response = post_pair(base_url, MALE_A[0].read_bytes(), MALE_A[1].read_bytes(),
                         {"threshold": threshold})
    assert response.status_code == 400
    assert error_code(response) == "bad_field"


def test_text_file_is_415(base_url):
    response = post_pair(base_url, b"hello, I am not a recording\n" * 50, MALE_A[1].read_bytes())
    assert response.status_code == 415
    assert error_code(response) == "unsupported_audio"


def test_silence_is_422_no_speech(base_url):
    response = post_pair(base_url, MALE_A[0].read_bytes(), make.silence(3.0))
    assert response.status_code == 422
    assert error_code(response) == "no_speech"


def test_empty_file_is_422_no_speech(base_url):
    response = post_pair(base_url, b"", MALE_A[1].read_bytes())
    assert response.status_code == 422
    assert error_code(response) == "no_speech"


def test_too_little_speech_is_422_too_short(base_url):
    response = post_pair(base_url, make.excerpt(MALE_A[0], 0.2), MALE_A[1].read_bytes())
    assert response.status_code == 422
    assert error_code(response) == "too_short"


def test_recording_over_the_length_limit_is_413(base_url, live_settings):
    long_wav = make.padded(MALE_A[0], live_settings.max_duration_s / 2)
    assert len(long_wav) < live_settings.max_request_bytes
    response = post_pair(base_url, long_wav, MALE_A[1].read_bytes())
    assert response.status_code == 413
    assert error_code(response) == "too_long"


def test_body_over_the_size_limit_is_413(base_url, live_settings):
    big = b"\0" * (live_settings.max_request_bytes + 1)
    response = post_pair(base_url, big, MALE_A[1].read_bytes())
    assert response.status_code == 413
    assert error_code(response) == "too_large"


def test_unknown_route_and_wrong_method_are_json(base_url):
    assert error_code(requests.get(base_url + "/nope", timeout=TIMEOUT)) == "not_found"
    response = requests.get(base_url + "/speaker_verification", timeout=TIMEOUT)
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"


def test_uploads_never_touch_the_disk(base_url, monkeypatch):
    """Werkzeug and waitress spool large bodies through ``tempfile``: record any such call."""
    calls = []
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        original = getattr(tempfile, name)

        def recording(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(tempfile, name, recording)
    big_clip = make.padded(MALE_A[0], 4.0, "FLOAT")  # ~800 kB: above both spool thresholds
    assert len(big_clip) > 600 * 1024
    response = post_pair(base_url, big_clip, MALE_A[1].read_bytes())
    assert response.status_code == 200
    assert calls == []


def test_failing_requests_leave_nothing_in_the_temp_directory(base_url, private_tmpdir):
    assert tempfile.gettempdir() == str(private_tmpdir)  # where the server would spool
    before = set(os.listdir(private_tmpdir))
    large_noise = b"\x01\x02" * (700 * 1024)
    post_pair(base_url, large_noise, MALE_A[1].read_bytes())
    post_pair(base_url, make.silence(20.0), make.silence(20.0))
    post_pair(base_url, MALE_A[0].read_bytes(), make.excerpt(MALE_A[1], 0.3))
    after = set(os.listdir(private_tmpdir))
    assert after - before == set()
