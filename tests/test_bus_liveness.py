"""Liveness on the bus against a real Mosquitto: a challenge request/answer pair, then
verify ("is this robot?") and identify naming the challenge, on espeak-ng speech."""

from __future__ import annotations

import base64
import json

import pytest

from analytic.schemas import Challenge, EnrolOptions, HouseholdVerification, Identification
from tests.digit_speech import Espeak
from tests.test_bus import ERROR, WAIT, body, on
from tests.test_bus_household import IDENTIFY_REQUEST, IDENTIFY_RESULT, household_bus, watching

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

CHALLENGE_REQUEST = "voicegate/challenge/request"
CHALLENGE_RESULT = "voicegate/challenge/result"
VERIFY_REQUEST = "voicegate/member_verification/request"
VERIFY_RESULT = "voicegate/member_verification/result"


def wire(name: str, data: bytes) -> dict[str, str]:
    return {"name": name, "data": base64.b64encode(data).decode()}


def ask(bus, request_id: str, **fields: object) -> dict:
    bus.publish(CHALLENGE_REQUEST, json.dumps({"request_id": request_id, **fields}))
    (answer,) = bus.wait_for(on(CHALLENGE_RESULT, request_id), WAIT)
    return Challenge.model_validate(body(answer)).model_dump()


def test_challenge_verify_and_identify_on_the_bus(mqtt_broker, encoder, tmp_path) -> None:
    voice = Espeak("en-us")
    with household_bus(mqtt_broker, encoder, tmp_path, min_speech_s=0.5,
                       challenge_ttl_s=1800) as (_, household), \
            watching(mqtt_broker.port, CHALLENGE_RESULT, VERIFY_RESULT, IDENTIFY_RESULT, ERROR,
                     "voicegate/reply/#") as bus:
        recordings = [("a.wav", voice.ten(130)), ("b.wav", voice.ten(150))]
        household.enrol(EnrolOptions(external_id="robot"), recordings)
        household.enrol_digits(EnrolOptions(external_id="robot"), recordings)

        asked = ask(bus, "c-1", external_id="robot", reply_to="voicegate/reply/door")
        assert len(asked["digits"].split()) == 4 and asked["external_id"] == "robot"
        assert bus.wait_for(lambda m: m.topic == "voicegate/reply/door", WAIT)

        answer = voice.say(asked["digits"], 170)
        bus.publish(VERIFY_REQUEST, json.dumps({
            "external_id": "robot", "challenge_id": asked["challenge_id"],
            "file": wire("answer.wav", answer), "request_id": "v-1"}))
        (result,) = bus.wait_for(on(VERIFY_RESULT, "v-1"), WAIT)
        verified = HouseholdVerification.model_validate(body(result))
        assert verified.decision is True and verified.liveness is not None
        assert verified.liveness.passed and verified.liveness.heard == asked["digits"]

        # the same answer replayed on the bus: the challenge is used up
        bus.publish(VERIFY_REQUEST, json.dumps({
            "external_id": "robot", "challenge_id": asked["challenge_id"],
            "file": wire("answer.wav", answer), "request_id": "v-2"}))
        (error,) = bus.wait_for(on(ERROR, "v-2"), WAIT)
        assert body(error)["code"] == "not_found"

        # ... and against a fresh challenge: other digits
        fresh = ask(bus, "c-2", external_id="robot")
        bus.publish(VERIFY_REQUEST, json.dumps({
            "external_id": "robot", "challenge_id": fresh["challenge_id"],
            "file": wire("answer.wav", answer), "request_id": "v-3"}))
        (result,) = bus.wait_for(on(VERIFY_RESULT, "v-3"), WAIT)
        assert body(result)["decision"] is False
        assert body(result)["liveness"]["passed"] is False

        # identify with a challenge
        asked = ask(bus, "c-3")
        bus.publish(IDENTIFY_REQUEST, json.dumps({
            "challenge_id": asked["challenge_id"], "site": "door",
            "file": wire("x.wav", voice.say(asked["digits"], 150)), "request_id": "i-1"}))
        (result,) = bus.wait_for(on(IDENTIFY_RESULT, "i-1"), WAIT)
        identified = Identification.model_validate(body(result))
        assert identified.match == "robot" and identified.liveness is not None
        assert identified.liveness.passed

        # refusals carry the request id: unknown member, bad challenge id
        bus.publish(CHALLENGE_REQUEST, json.dumps({"external_id": "nobody",
                                                   "request_id": "c-4"}))
        (error,) = bus.wait_for(on(ERROR, "c-4"), WAIT)
        assert body(error)["code"] == "not_found"
        bus.publish(VERIFY_REQUEST, json.dumps({
            "external_id": "robot", "challenge_id": "no good", "request_id": "v-4",
            "file": wire("answer.wav", answer)}))
        (error,) = bus.wait_for(on(ERROR, "v-4"), WAIT)
        assert body(error)["code"] == "bad_field"
