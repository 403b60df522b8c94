"""Household voiceprints over the bus against a real Mosquitto, on real speech.

Enrolment and identification requests, streams sent as chunks, the retained "who spoke last"
state per site (also from HTTP ``/identify``) and its Home Assistant sensor. Every test has its
own broker and its own voiceprint store in a temporary directory.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import requests
import soundfile as sf
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from analytic.household import HouseholdService, build_household
from analytic.schemas import EnrolmentResult, EnrolOptions, Identification
from analytic.service import VerificationService
from analytic.web.app import create_app
from bus_adapter.adapter import BusAdapter
from tests.conftest import FEMALE_A, FEMALE_STRANGER, MALE_A, MALE_STRANGER, serve_in_thread
from tests.mqtt_broker import BusProbe, MosquittoBroker, Received
from tests.test_bus import ERROR, WAIT, body, bus_settings, on

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ENROL_REQUEST = "voicegate/admin/enrollment/request"  # the admin's topic alone (issue 14)
ENROL_RESULT = "voicegate/enrollment/result"
IDENTIFY_REQUEST = "voicegate/identify/request"
IDENTIFY_RESULT = "voicegate/identify/result"
SPEAKERS = "voicegate/speaker/#"
SPEAKER_CONFIG = "homeassistant/sensor/voicegate/speaker_{site}/config"
WATCHED = (ENROL_RESULT, IDENTIFY_RESULT, "voicegate/analysis/result", ERROR, SPEAKERS,
           "voicegate/reply/#")
STATE_FIELDS = {"speaker", "score", "threshold", "time", "analysis_id"}


@contextmanager
def household_bus(
    broker: MosquittoBroker, encoder: object, data_dir: Path, **overrides: object
) -> Iterator[tuple[BusAdapter, HouseholdService]]:
    """One analytic on the bus with a household whose store lives in ``data_dir``."""
    settings = bus_settings(broker, data_dir=str(data_dir), **overrides)
    household = build_household(VerificationService(settings, encoder))
    adapter = BusAdapter(household.verification, household=household)
    adapter.start()
    try:
        assert adapter.wait_connected(10), "adapter did not connect"
        yield adapter, household
    finally:
        adapter.stop(drain_timeout=5)
        household.close()


@contextmanager
def watching(port: int, *topics: str) -> Iterator[BusProbe]:
    client = BusProbe(port, topics or WATCHED)
    try:
        yield client
    finally:
        client.close()


def wire_file(path: Path) -> dict[str, str]:
    """A file as a bus request carries it: its name and its bytes in base64."""
    return {"name": path.name, "data": base64.b64encode(path.read_bytes()).decode()}


def enrol(bus: BusProbe, external_id: str, paths: list[Path], request_id: str) -> dict:
    bus.publish(ENROL_REQUEST, json.dumps({"external_id": external_id, "request_id": request_id,
                                           "files": [wire_file(p) for p in paths]}))
    (result,) = bus.wait_for(on(ENROL_RESULT, request_id), WAIT)
    return body(result)


def identify(bus: BusProbe, path: Path, request_id: str, **fields: object) -> dict:
    bus.publish(IDENTIFY_REQUEST,
                json.dumps({"file": wire_file(path), "request_id": request_id, **fields}))
    (result,) = bus.wait_for(on(IDENTIFY_RESULT, request_id), WAIT)
    return body(result)


def speaker_update(bus: BusProbe, site: str, analysis_id: str) -> dict:
    """The speaker state an identification published (live, on the watching probe)."""
    topic = f"voicegate/speaker/{site}"
    (message,) = bus.wait_for(
        lambda m: m.topic == topic and body(m)["analysis_id"] == analysis_id, WAIT)
    return body(message)


def retained(port: int, topic: str) -> Received:
    """What a client subscribing now is told: the retained message on ``topic``.

    Only once the live copy was seen (``speaker_update``) has the broker surely stored it: a
    subscription racing the publish receives the live copy, not flagged retained."""
    with watching(port, topic) as fresh:
        (message,) = fresh.wait_for(lambda m: m.topic == topic, 10)
    assert message.retain, topic
    return message


def publish_chunk(bus: BusProbe, session: str, data: bytes, content_type: str | None) -> None:
    properties = None
    if content_type is not None:
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = content_type
    info = bus.client.publish(f"voicegate/stream/{session}/chunk", data, qos=1,
                              properties=properties)
    assert info.rc == mqtt.MQTT_ERR_SUCCESS


def enrol_household(bus: BusProbe) -> None:
    for external_id, clips in (("dad", MALE_A[:2]), ("mum", FEMALE_A[:2])):
        result = enrol(bus, external_id, clips, f"enrol-{external_id}")
        EnrolmentResult.model_validate(result)  # HTTP's model
        assert (result["external_id"], result["samples_added"], result["sample_count"]) == (
            external_id, 2, 2)
        assert [f["name"] for f in result["files"]] == [p.name for p in clips]


def test_enrol_two_people_then_identify_each_and_a_stranger(mqtt_broker, encoder, tmp_path):
    with household_bus(mqtt_broker, encoder, tmp_path), watching(mqtt_broker.port) as bus:
        enrol_household(bus)

        bus.publish(IDENTIFY_REQUEST,
                    json.dumps({"file": wire_file(MALE_A[2]), "site": "kitchen",
                                "request_id": "who-1", "reply_to": "voicegate/reply/kitchen"}),
                    response_topic="voicegate/reply/mqtt5", correlation_data=b"corr-1")
        (dad,) = bus.wait_for(on(IDENTIFY_RESULT, "who-1"), WAIT)
        (reply,) = bus.wait_for(lambda m: m.topic == "voicegate/reply/kitchen", WAIT)
        (response,) = bus.wait_for(lambda m: m.topic == "voicegate/reply/mqtt5", WAIT)
        dad_state = speaker_update(bus, "kitchen", body(dad)["analysis_id"])
        kitchen_after_dad = body(retained(mqtt_broker.port, "voicegate/speaker/kitchen"))

        mum = identify(bus, FEMALE_A[2], "who-2", site="kitchen")
        speaker_update(bus, "kitchen", mum["analysis_id"])
        kitchen_after_mum = body(retained(mqtt_broker.port, "voicegate/speaker/kitchen"))

        stranger = identify(bus, MALE_STRANGER, "who-3", site="hall")
        speaker_update(bus, "hall", stranger["analysis_id"])
        hall = body(retained(mqtt_broker.port, "voicegate/speaker/hall"))
        nobody_site = identify(bus, FEMALE_STRANGER, "who-4")  # no site: "default"
        default = speaker_update(bus, "default", nobody_site["analysis_id"])

    result = Identification.model_validate_json(dad.payload)  # HTTP /identify's model
    assert (result.match, result.decision, result.site) == ("dad", True, "kitchen")
    assert [c.external_id for c in result.candidates] == ["dad", "mum"]
    assert body(reply) == body(dad) == body(response)  # one decision, three routes
    assert response.correlation_data == b"corr-1"

    assert set(dad_state) == STATE_FIELDS
    assert dad_state == kitchen_after_dad
    assert (dad_state["speaker"], dad_state["score"], dad_state["threshold"]) == (
        "dad", result.score, result.threshold)
    stamped = datetime.fromisoformat(dad_state["time"])
    assert stamped.utcoffset() is not None and stamped.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 120

    assert (mum["match"], kitchen_after_mum["speaker"]) == ("mum", "mum")
    assert kitchen_after_mum["analysis_id"] == mum["analysis_id"]
    assert (stranger["match"], stranger["decision"]) == (None, False)
    assert (hall["speaker"], hall["analysis_id"]) == ("unknown", stranger["analysis_id"])
    assert hall["score"] < hall["threshold"]
    assert nobody_site["site"] is None and default["speaker"] == "unknown"
    assert not bus.matching(lambda m: m.topic == ERROR)


def test_http_identify_updates_the_speaker_topic(mqtt_broker, encoder, tmp_path):
    with household_bus(mqtt_broker, encoder, tmp_path) as (adapter, household), \
            watching(mqtt_broker.port) as bus:
        household.enrol(EnrolOptions(external_id="mum"),
                        [(p.name, p.read_bytes()) for p in FEMALE_A[:2]])
        app = create_app(household.verification, bus_status=adapter.status, household=household)
        for base_url in serve_in_thread(app, household.settings):
            response = requests.post(
                f"{base_url}/identify", files={"file": FEMALE_A[2].read_bytes()},
                data={"site": "living_room", "request_id": "http-1"}, timeout=60)
            assert response.status_code == 200, response.text
            state = speaker_update(bus, "living_room", response.json()["analysis_id"])
            (published,) = bus.wait_for(on(IDENTIFY_RESULT, "http-1"), WAIT)
            refused = requests.post(f"{base_url}/identify", data={"site": "a/b"},
                                    files={"file": FEMALE_A[2].read_bytes()}, timeout=60)
        living_room = body(retained(mqtt_broker.port, "voicegate/speaker/living_room"))

    assert (response.json()["match"], response.json()["site"]) == ("mum", "living_room")
    assert state == living_room and state["speaker"] == "mum"
    assert body(published) == response.json()  # HTTP's answer, on the bus too
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "bad_field"


def pcm16(path: Path) -> bytes:
    samples, rate = sf.read(path, dtype="int16")
    assert rate == 16_000 and samples.ndim == 1
    return samples.astype("<i2").tobytes()


def wav(pcm: bytes) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.frombuffer(pcm, dtype="<i2"), 16_000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_stream_chunks_then_end_identify_equals_the_whole_file(mqtt_broker, encoder, tmp_path):
    pcm = pcm16(MALE_A[2])
    step = 16_000  # bytes: half a second of 16 kHz 16-bit audio
    pieces = [pcm[i:i + step] for i in range(0, len(pcm), step)]
    with household_bus(mqtt_broker, encoder, tmp_path, mqtt_workers=1) as (_, household), \
            watching(mqtt_broker.port) as bus:
        enrol_household(bus)
        whole = identify(bus, MALE_A[2], "whole-file", site="porch")

        for piece in pieces[:-1]:
            publish_chunk(bus, "porch-mic-1", piece, "audio/pcm;rate=16000")
        publish_chunk(bus, "porch-mic-1", wav(pieces[-1]), None)  # a WAV, told by its bytes
        bus.publish("voicegate/stream/porch-mic-1/end",
                    json.dumps({"action": "identify", "site": "porch", "request_id": "streamed",
                                "reply_to": "voicegate/reply/porch"}))
        (streamed,) = bus.wait_for(on(IDENTIFY_RESULT, "streamed"), WAIT)
        (reply,) = bus.wait_for(lambda m: m.topic == "voicegate/reply/porch", WAIT)
        state = speaker_update(bus, "porch", body(streamed)["analysis_id"])

        # ``end`` ended it: the session is gone, and ending it again is an error.
        bus.publish("voicegate/stream/porch-mic-1/end",
                    json.dumps({"action": "identify", "request_id": "again"}))
        (gone,) = bus.wait_for(on(ERROR, "again"), WAIT)
        open_sessions = len(household.streams)

    answer = body(streamed)
    assert answer["match"] == whole["match"] == "dad"
    # The same samples (a WAV chunk's header is not audio): the same scores, to the digit.
    assert answer["candidates"] == whole["candidates"]
    assert answer["score"] == whole["score"]
    assert answer["files"][0]["name"] == "stream:porch-mic-1"
    assert answer["files"][0]["duration_s"] == whole["files"][0]["duration_s"]
    assert body(reply) == answer and state["speaker"] == "dad"
    assert body(gone)["code"] == "not_found"
    assert open_sessions == 0
    assert not bus.matching(lambda m: m.topic == ERROR and body(m)["request_id"] != "again")


def test_speaker_sensor_discovery_is_retained_and_resent_when_home_assistant_starts(
    mqtt_broker, encoder, tmp_path
):
    config_topic = SPEAKER_CONFIG.format(site="kitchen")
    with household_bus(mqtt_broker, encoder, tmp_path, mqtt_workers=1), \
            watching(mqtt_broker.port, "homeassistant/#", IDENTIFY_RESULT) as bus:
        bus.wait_for(lambda m: m.topic.endswith("/config"), WAIT, count=2)  # the device's two
        assert not bus.matching(lambda m: m.topic == config_topic)  # no site seen yet
        # Nobody enrolled: still an identification (unknown), and a first sight of "kitchen".
        # The same request id twice is answered once.
        twice = json.dumps({"file": wire_file(MALE_A[0]), "site": "kitchen",
                            "request_id": "first"})
        bus.publish(IDENTIFY_REQUEST, twice)
        bus.publish(IDENTIFY_REQUEST, twice)
        (config,) = bus.wait_for(lambda m: m.topic == config_topic, WAIT)
        kept = retained(mqtt_broker.port, config_topic)

        bus.publish("homeassistant/status", "online")  # Home Assistant restarted
        bus.wait_for(lambda m: m.topic == config_topic and not m.retain, WAIT, count=2)
        bus.wait_for(lambda m: m.topic.endswith("/config") and not m.retain, WAIT, count=4)
        identify(bus, MALE_A[1], "barrier")  # one worker: a second "first" would come before
    answers = bus.matching(on(IDENTIFY_RESULT, "first"))

    sensor = json.loads(config.payload)
    assert json.loads(kept.payload) == sensor
    assert sensor["state_topic"] == sensor["json_attributes_topic"] == "voicegate/speaker/kitchen"
    assert sensor["value_template"] == "{{ value_json.speaker }}"
    assert sensor["availability_topic"] == "voicegate/status"
    assert (sensor["payload_available"], sensor["payload_not_available"]) == ("online",
                                                                              "offline")
    assert sensor["unique_id"] == "voicegate_speaker_kitchen"
    assert sensor["device"]["identifiers"] == ["voicegate_voicegate"]  # the same device
    assert len(answers) == 1 and body(answers[0])["match"] is None


def test_household_requests_refused_with_their_codes(mqtt_broker, encoder, tmp_path):
    cases = {  # request_id: (topic, payload, expected code)
        "no-audio": (IDENTIFY_REQUEST, {"site": "hall"}, "missing_file"),
        "both": (IDENTIFY_REQUEST, {"file": wire_file(MALE_A[0]), "stream": "s"}, "bad_field"),
        "bad-site": (IDENTIFY_REQUEST, {"file": wire_file(MALE_A[0]), "site": "a b"},
                     "bad_field"),
        "no-session": (IDENTIFY_REQUEST, {"stream": "never-opened"}, "not_found"),
        "no-files": (ENROL_REQUEST, {"external_id": "dad", "files": []}, "missing_file"),
        "bad-id": (ENROL_REQUEST, {"external_id": "a/b", "files": [wire_file(MALE_A[0])]},
                   "bad_field"),
        "bad-action": ("voicegate/stream/x/end", {"action": "dance"}, "bad_field"),
        "no-id": ("voicegate/stream/x/end", {"action": "verify"}, "bad_field"),
        "end-unknown": ("voicegate/stream/unknown/end", {"action": "identify"}, "not_found"),
        "not-enrolled": ("voicegate/stream/mic/end", {"action": "verify", "external_id": "zed"},
                         "not_found"),
    }
    with household_bus(mqtt_broker, encoder, tmp_path), watching(mqtt_broker.port) as bus:
        publish_chunk(bus, "mic", pcm16(MALE_A[0])[:32_000], "audio/pcm;rate=16000")
        publish_chunk(bus, "no-rate", b"\x00\x01" * 100, None)  # raw PCM, and no rate known
        publish_chunk(bus, "odd", b"\x00" * 101, "audio/pcm;rate=16000")
        for request_id, (topic, payload, _) in cases.items():
            bus.publish(topic, json.dumps({**payload, "request_id": request_id}))
        errors = {rid: body(bus.wait_for(on(ERROR, rid), WAIT)[0]) for rid in cases}
        chunk_errors = bus.wait_for(lambda m: m.topic == ERROR and body(m)["request_id"] is None,
                                    WAIT, count=2)
        enrolled = enrol(bus, "dad", MALE_A[:1], "after-errors")  # still serving

    for request_id, (_, _, code) in cases.items():
        assert errors[request_id]["code"] == code, errors[request_id]
        assert set(errors[request_id]) == {"request_id", "code", "message"}
    assert errors["bad-action"]["message"].startswith("action:")
    assert errors["no-id"]["message"].startswith("external_id:")
    by_session = {body(m)["message"].split(":")[0]: body(m)["code"] for m in chunk_errors}
    assert by_session == {"stream no-rate": "bad_field", "stream odd": "unsupported_audio"}
    assert enrolled["sample_count"] == 1
    assert not bus.matching(lambda m: m.topic == IDENTIFY_RESULT)
