"""The bus as a trust boundary (issue 14), against a real Mosquitto on real speech.

Who sent a request is its topic's device level, not anything in the payload. Each test below
reproduced one hole of issue 14 on the code before it: forged replies (hole 2), enrolment by
any device (hole 1), threshold forgery and the retained state it moved (hole 3), request-id
squatting (hole 4), chunks decoded on paho's network thread (hole 5), unbounded retained site
states (hole 8).
"""

from __future__ import annotations

import json
import threading

import pytest

from bus_adapter.streams import BusStreams
from tests.conftest import FEMALE_A, MALE_A, MALE_STRANGER
from tests.mqtt_broker import BusProbe
from tests.test_bus import ERROR, RESULT, WAIT, body, on, same_pair
from tests.test_bus_household import (
    ENROL_REQUEST,
    ENROL_RESULT,
    IDENTIFY_RESULT,
    household_bus,
    identify,
    retained,
    speaker_update,
    watching,
    wire_file,
)

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

FRONTDOOR = "voicegate/frontdoor"
GARAGE = "voicegate/garage"


def refused(bus: BusProbe, request_id: str) -> dict:
    (error,) = bus.wait_for(on(ERROR, request_id), WAIT)
    return body(error)


def test_replies_only_go_inside_the_requesting_devices_own_reply_space(mqtt_broker, encoder,
                                                                       tmp_path):
    outside = ["voicegate/garage/reply/lock", "homeassistant/lock/front/set", "voicegate/status",
               "voicegate/reply/frontdoor"]  # the shared space is not a device's
    with household_bus(mqtt_broker, encoder, tmp_path), \
            watching(mqtt_broker.port, RESULT, ERROR, "voicegate/#", "homeassistant/lock/#") as bus:
        for i, topic in enumerate(outside):
            bus.publish(f"{FRONTDOOR}/verification/request",
                        same_pair(f"fwd-{i}", reply_to=topic, threshold=0.9))
            assert refused(bus, f"fwd-{i}")["code"] == "reply_not_allowed"
            bus.publish(f"{FRONTDOOR}/verification/request", same_pair(f"mqtt5-{i}"),
                        response_topic=topic)
            assert refused(bus, f"mqtt5-{i}")["code"] == "reply_not_allowed"
        # The shared single-tenant topics answer only under voicegate/reply/.
        bus.publish("voicegate/verification/request",
                    same_pair("shared-1", reply_to="homeassistant/lock/front/set"))
        assert refused(bus, "shared-1")["code"] == "reply_not_allowed"
        # Its own space works, and is all that is published besides the shared topics.
        bus.publish(f"{FRONTDOOR}/verification/request",
                    same_pair("own-1", reply_to=f"{FRONTDOOR}/reply/lock"))
        (reply,) = bus.wait_for(lambda m: m.topic == f"{FRONTDOOR}/reply/lock", WAIT)
        assert body(reply)["decision"] is True
    # Nothing went to those topics (the status only ever says online / offline).
    forged = [m.topic for m in bus.messages if m.topic in outside and m.payload != b"online"]
    assert forged == []
    assert not [m for m in bus.messages if m.topic == RESULT
                and body(m)["request_id"] != "own-1"]


def test_enrolment_over_the_bus_is_served_on_the_admins_topics_only(mqtt_broker, encoder, tmp_path):
    enrolment = {"external_id": "dad", "replace": True, "files": [wire_file(MALE_STRANGER)]}
    with household_bus(mqtt_broker, encoder, tmp_path) as (_, household), \
            watching(mqtt_broker.port) as bus:
        for i, topic in enumerate((f"{FRONTDOOR}/enrollment/request",
                                   "voicegate/enrollment/request")):
            bus.publish(topic, json.dumps({**enrolment, "request_id": f"steal-{i}"}))
            assert refused(bus, f"steal-{i}")["code"] == "forbidden"
        # A stream's "end" with the enrol action, on a device's stream and on a shared one.
        for i, head in enumerate((f"{FRONTDOOR}/stream/s", "voicegate/stream/s")):
            bus.client.publish(f"{head}/chunk", MALE_STRANGER.read_bytes(), qos=1)
            bus.publish(f"{head}/end", json.dumps({"action": "enrol", "external_id": "dad",
                                                   "replace": True,
                                                   "request_id": f"stream-{i}"}))
            assert refused(bus, f"stream-{i}")["code"] == "forbidden"
        assert household.store.info("dad") is None
        bus.publish(ENROL_REQUEST, json.dumps({**enrolment, "request_id": "admin-1"}))
        (result,) = bus.wait_for(on(ENROL_RESULT, "admin-1"), WAIT)
        assert body(result)["sample_count"] == 1


def test_a_device_cannot_loosen_the_threshold_nor_move_the_retained_state(mqtt_broker, encoder,
                                                                          tmp_path):
    with household_bus(mqtt_broker, encoder, tmp_path), watching(mqtt_broker.port) as bus:
        bus.publish(ENROL_REQUEST, json.dumps({"external_id": "dad", "request_id": "e-1",
                                               "files": [wire_file(p) for p in MALE_A[:2]]}))
        bus.wait_for(on(ENROL_RESULT, "e-1"), WAIT)
        # A stranger at the default threshold: the site's state says unknown.
        stranger = identify(bus, FEMALE_A[0], "who-0", site="hall")
        assert (stranger["match"], stranger["threshold_source"]) == (None, "default")
        speaker_update(bus, "hall", stranger["analysis_id"])
        assert body(retained(mqtt_broker.port, "voicegate/speaker/hall"))["speaker"] == "unknown"
        # A device's "everyone is dad", over the shared and its own topics: refused.
        forged = {"file": wire_file(FEMALE_A[0]), "site": "hall", "threshold": -1000}
        for i, topic in enumerate(("voicegate/identify/request",
                                   f"{FRONTDOOR}/identify/request")):
            bus.publish(topic, json.dumps({**forged, "request_id": f"forge-{i}"}))
            assert refused(bus, f"forge-{i}")["code"] == "threshold_not_allowed"
        bus.publish(f"{FRONTDOOR}/verification/request", same_pair("pair-forge", threshold=-1))
        assert refused(bus, "pair-forge")["code"] == "threshold_not_allowed"
        # The admin may; the answer says so, and the retained state is left as it was.
        bus.publish("voicegate/admin/identify/request",
                    json.dumps({**forged, "request_id": "admin-low"}))
        (low,) = bus.wait_for(on(IDENTIFY_RESULT, "admin-low"), WAIT)
        assert (body(low)["match"], body(low)["threshold_source"]) == ("dad", "request")
        assert body(retained(mqtt_broker.port, "voicegate/speaker/hall"))["speaker"] == "unknown"
        assert not bus.matching(lambda m: m.topic == "voicegate/speaker/hall"
                                and body(m)["analysis_id"] == body(low)["analysis_id"])


def test_request_ids_are_one_devices_own(mqtt_broker, encoder, tmp_path):
    """The garage sending the front door's next request id first squats nothing."""
    with household_bus(mqtt_broker, encoder, tmp_path), \
            watching(mqtt_broker.port, RESULT, ERROR, "voicegate/+/reply/#") as bus:
        bus.publish(f"{GARAGE}/verification/request", same_pair("next-1"))
        bus.wait_for(on(RESULT, "next-1"), WAIT)
        bus.publish(f"{FRONTDOOR}/verification/request",
                    same_pair("next-1", reply_to=f"{FRONTDOOR}/reply/x"))
        (reply,) = bus.wait_for(lambda m: m.topic == f"{FRONTDOOR}/reply/x", WAIT)
        assert body(reply)["request_id"] == "next-1"
        # Its own re-delivery is still answered once.
        bus.publish(f"{FRONTDOOR}/verification/request",
                    same_pair("next-1", reply_to=f"{FRONTDOOR}/reply/x"))
        bus.publish(f"{FRONTDOOR}/verification/request", same_pair("after"))
        bus.wait_for(on(RESULT, "after"), WAIT)
    assert len(bus.matching(on(RESULT, "next-1"))) == 2


def test_stream_chunks_are_decoded_off_the_network_thread(mqtt_broker, encoder, tmp_path,
                                                          monkeypatch):
    threads: list[str] = []
    real_append = BusStreams.append

    def recording_append(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(BusStreams, "append", recording_append)
    with household_bus(mqtt_broker, encoder, tmp_path), watching(mqtt_broker.port) as bus:
        for part in (MALE_A[0], MALE_A[1]):
            bus.client.publish(f"{FRONTDOOR}/stream/mic/chunk", part.read_bytes(), qos=1)
        bus.publish(f"{FRONTDOOR}/stream/mic/end",
                    json.dumps({"action": "analyze", "request_id": "s-1"}))
        bus.wait_for(on("voicegate/analysis/result", "s-1"), WAIT)
    assert len(threads) == 2
    assert all(name.startswith("bus-chunks") for name in threads), threads


def test_a_device_cannot_use_or_end_another_devices_stream(mqtt_broker, encoder, tmp_path):
    with household_bus(mqtt_broker, encoder, tmp_path), watching(mqtt_broker.port) as bus:
        bus.client.publish(f"{GARAGE}/stream/mic/chunk", MALE_A[0].read_bytes(), qos=1)
        bus.publish(f"{FRONTDOOR}/stream/mic/end",
                    json.dumps({"action": "analyze", "request_id": "other"}))
        assert refused(bus, "other")["code"] == "not_found"
        bus.publish(f"{GARAGE}/stream/mic/end",
                    json.dumps({"action": "analyze", "request_id": "mine"}))
        bus.wait_for(on("voicegate/analysis/result", "mine"), WAIT)


def test_retained_site_states_are_capped(mqtt_broker, encoder, tmp_path):
    with household_bus(mqtt_broker, encoder, tmp_path, mqtt_max_sites=2), \
            watching(mqtt_broker.port) as bus:
        for site in ("kitchen", "hall", "site3"):
            identify(bus, MALE_A[0], f"at-{site}", site=site)
        # A barrier: the state of a site is published right after its result, in order.
        identify(bus, MALE_A[0], "barrier", site="kitchen")
    states = {m.topic for m in bus.messages if m.topic.startswith("voicegate/speaker/")}
    assert states == {"voicegate/speaker/kitchen", "voicegate/speaker/hall"}
