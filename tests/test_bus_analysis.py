"""Gender and arousal analysis over the bus against a real Mosquitto, on real speech.

The answer must be ``POST /analyze``'s body for the same file and options (only the
``analysis_id`` differs), and a bad option must come back on ``<prefix>/error`` with the code
HTTP uses.
"""

from __future__ import annotations

import json

import pytest
import requests

from analytic.schemas import AnalysisResult
from analytic.web.app import create_app
from tests.conftest import FEMALE_A, MALE_A, serve_in_thread
from tests.test_bus import ERROR, WAIT, body, on
from tests.test_bus_household import household_bus, pcm16, publish_chunk, watching, wire_file

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ANALYSIS_REQUEST = "voicegate/analysis/request"
ANALYSIS_RESULT = "voicegate/analysis/result"
OPTIONS = {"models": ["gender", "arousal"], "output_period": 1024, "include_summary": True}


def majority(result: dict, model: str) -> str:
    """The label that holds most of the time (the summary's largest fraction)."""
    fractions = result["summary"][model]
    return max(fractions, key=fractions.get).removesuffix("_fraction")


def without_id(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "analysis_id"}


def test_analysis_request_answers_like_http_analyze(mqtt_broker, encoder, tmp_path):
    with household_bus(mqtt_broker, encoder, tmp_path) as (adapter, household), \
            watching(mqtt_broker.port) as bus:
        bus.publish(ANALYSIS_REQUEST,
                    json.dumps({"file": wire_file(MALE_A[0]), "request_id": "an-male",
                                "reply_to": "voicegate/reply/analysis", **OPTIONS}),
                    response_topic="voicegate/reply/mqtt5", correlation_data=b"an-1")
        bus.publish(ANALYSIS_REQUEST, json.dumps({"file": wire_file(FEMALE_A[0]),
                                                  "request_id": "an-female", **OPTIONS}))
        (male,) = bus.wait_for(on(ANALYSIS_RESULT, "an-male"), WAIT)
        (female,) = bus.wait_for(on(ANALYSIS_RESULT, "an-female"), WAIT)
        (reply,) = bus.wait_for(lambda m: m.topic == "voicegate/reply/analysis", WAIT)
        (response,) = bus.wait_for(lambda m: m.topic == "voicegate/reply/mqtt5", WAIT)

        app = create_app(household.verification, bus_status=adapter.status, household=household)
        for base_url in serve_in_thread(app, household.settings):
            over_http = requests.post(
                f"{base_url}/analyze", files={"file": (MALE_A[0].name, MALE_A[0].read_bytes())},
                data={"models": "gender,arousal", "output_period": "1024",
                      "include_summary": "true", "request_id": "an-male"}, timeout=60)
    assert over_http.status_code == 200, over_http.text

    assert majority(body(male), "gender") == "male"
    assert majority(body(female), "gender") == "female"
    AnalysisResult.model_validate_json(male.payload)
    assert without_id(body(male)) == without_id(over_http.json())  # the same body as HTTP
    assert "transitions" not in body(male)  # options left off are absent, as over HTTP
    assert male.content_type == "application/json"
    assert body(reply) == body(male) == body(response)
    assert response.correlation_data == b"an-1"
    assert not bus.matching(lambda m: m.topic == ERROR)


def test_bad_analysis_options_get_an_error_with_the_request_id(mqtt_broker, encoder, tmp_path):
    cases = {  # request_id: (fields, expected code)
        "bad-period": ({"file": wire_file(MALE_A[0]), "output_period": 1000},
                       "bad_output_period"),
        "bad-model": ({"file": wire_file(MALE_A[0]), "models": ["age"]}, "bad_field"),
        "no-file": ({"output_period": 512}, "bad_field"),
        "stream-period": ({"action": "analyze", "output_period": 100}, "bad_output_period"),
    }
    with household_bus(mqtt_broker, encoder, tmp_path) as _, watching(mqtt_broker.port) as bus:
        for request_id, (fields, _) in cases.items():
            topic = "voicegate/stream/s/end" if "action" in fields else ANALYSIS_REQUEST
            bus.publish(topic, json.dumps({**fields, "request_id": request_id}),
                        response_topic="voicegate/reply/errors",
                        correlation_data=request_id.encode())
        errors = {rid: body(bus.wait_for(on(ERROR, rid), WAIT)[0]) for rid in cases}
        direct = bus.wait_for(lambda m: m.topic == "voicegate/reply/errors", WAIT, count=len(cases))
        bus.publish(ANALYSIS_REQUEST, json.dumps({"file": wire_file(FEMALE_A[0]),
                                                  "models": "gender", "request_id": "after"}))
        (after,) = bus.wait_for(on(ANALYSIS_RESULT, "after"), WAIT)

    for request_id, (_, code) in cases.items():
        assert errors[request_id]["code"] == code, errors[request_id]
        assert errors[request_id]["request_id"] == request_id
    assert errors["bad-period"]["message"] == "output_period: must be a positive multiple of 64 ms"
    assert {m.correlation_data.decode(): body(m)["code"] for m in direct} == {
        rid: code for rid, (_, code) in cases.items()}
    assert not bus.matching(lambda m: m.topic == ANALYSIS_RESULT and m is not after)
    assert [m["name"] for m in body(after)["models"]] == ["gender"]


def test_stream_end_with_analyze_gives_the_file_time_series(mqtt_broker, encoder, tmp_path):
    pcm = pcm16(FEMALE_A[0])
    with household_bus(mqtt_broker, encoder, tmp_path) as _, watching(mqtt_broker.port) as bus:
        for start in range(0, len(pcm), 20_000):  # 0.625 s chunks
            publish_chunk(bus, "hall-mic", pcm[start:start + 20_000], "audio/pcm;rate=16000")
        bus.publish("voicegate/stream/hall-mic/end",
                    json.dumps({"action": "analyze", "request_id": "streamed", **OPTIONS}))
        bus.publish(ANALYSIS_REQUEST, json.dumps({"file": wire_file(FEMALE_A[0]),
                                                  "request_id": "whole", **OPTIONS}))
        (streamed,) = bus.wait_for(on(ANALYSIS_RESULT, "streamed"), WAIT)
        (whole,) = bus.wait_for(on(ANALYSIS_RESULT, "whole"), WAIT)

    assert body(streamed)["name"] == "stream:hall-mic"
    assert body(streamed)["duration_ms"] == body(whole)["duration_ms"]
    assert body(streamed)["time_series"] == body(whole)["time_series"]
    assert majority(body(streamed), "gender") == "female"
