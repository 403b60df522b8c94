"""The documented Mosquitto ACL (mosquitto/acl.example) against a real broker: a device gets
its own answer and cannot read the results of others; it cannot enrol or replace a voiceprint,
read another device's replies, publish into another's namespace, or make the analytic publish
outside its own (issue 14, holes 1 and 2)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from analytic.cli.settings import Settings
from analytic.household import build_household
from analytic.service import VerificationService
from bus_adapter.adapter import BusAdapter
from bus_adapter.messages import AudioFile, VerificationRequest
from tests.conftest import FEMALE_STRANGER, MALE_A, free_port
from tests.mqtt_broker import BusProbe, MosquittoBroker

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ACL = Path(__file__).resolve().parents[1] / "mosquitto" / "acl.example"
USERS = {"voicegate": "analytic-pw", "homeassistant": "ha-pw", "frontdoor": "fd-pw",
         "garage": "ga-pw", "admin": "admin-pw"}


def login(user: str):
    def configure(client: mqtt.Client) -> None:
        client.username_pw_set(user, USERS[user])
    return configure


@pytest.fixture
def acl_broker(tmp_path):
    passwords = tmp_path / "passwords"
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwords),
                        user, password], check=True, capture_output=True)
    broker = MosquittoBroker(tmp_path / "acl-broker", free_port(), listener_conf=(
        f"allow_anonymous false\npassword_file {passwords}\nacl_file {ACL}\n"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def analytic_settings(broker: MosquittoBroker, **fields: object) -> Settings:
    return Settings(port=free_port(), mqtt_port=broker.port, mqtt_username="voicegate",
                    mqtt_password=USERS["voicegate"], mqtt_shared_topics=False,
                    mqtt_client_id=f"analytic-{uuid.uuid4().hex[:8]}", **fields)


def test_a_device_reads_its_own_reply_and_nothing_of_others(acl_broker, encoder):
    settings = analytic_settings(acl_broker)
    adapter = BusAdapter(VerificationService(settings, encoder))
    adapter.start()
    frontdoor = BusProbe(acl_broker.port, ["voicegate/frontdoor/reply/#"],
                         configure=login("frontdoor"))
    garage = BusProbe(acl_broker.port, ["voicegate/verification/result", "voicegate/error",
                                        "voicegate/+/reply/#", "voicegate/reply/#"],
                      configure=login("garage"))
    home = BusProbe(acl_broker.port, ["voicegate/verification/result"],
                    configure=login("homeassistant"))
    try:
        assert adapter.wait_connected(10)
        pair = VerificationRequest(
            file1=AudioFile(name="a.flac", data=MALE_A[0].read_bytes()),
            file2=AudioFile(name="b.flac", data=MALE_A[1].read_bytes()),
            request_id="door-acl", reply_to="voicegate/frontdoor/reply/lock",
        ).model_dump_json(exclude_none=True)
        frontdoor.publish("voicegate/frontdoor/verification/request", pair).wait_for_publish(10)
        reply = frontdoor.wait_for(lambda m: m.topic == "voicegate/frontdoor/reply/lock", 60)
        assert json.loads(reply[0].payload)["decision"] is True
        # Home Assistant sees the result; by then the garage would have seen it too, if it could.
        home.wait_for(lambda m: m.topic == "voicegate/verification/result", 30)
        assert garage.messages == []
    finally:
        for probe in (frontdoor, garage, home):
            probe.close()
        adapter.stop(drain_timeout=5)


def wire(path: Path) -> dict[str, str]:
    return AudioFile(name=path.name, data=path.read_bytes()).model_dump()


def test_a_device_cannot_enrol_nor_speak_or_be_answered_outside_its_namespace(
    acl_broker, encoder, tmp_path
):
    settings = analytic_settings(acl_broker, data_dir=str(tmp_path))
    household = build_household(VerificationService(settings, encoder))
    adapter = BusAdapter(household.verification, household=household)
    adapter.start()
    admin = BusProbe(acl_broker.port, ["voicegate/admin/reply/#"], configure=login("admin"))
    frontdoor = BusProbe(acl_broker.port, ["voicegate/frontdoor/reply/#"],
                         configure=login("frontdoor"))
    garage = BusProbe(acl_broker.port, ["voicegate/#", "homeassistant/#"],
                      configure=login("garage"))
    home = BusProbe(acl_broker.port, ["voicegate/+/result", "homeassistant/lock/#"],
                    configure=login("homeassistant"))
    probes = (admin, frontdoor, garage, home)
    try:
        assert adapter.wait_connected(10)
        admin.publish("voicegate/admin/enrollment/request", json.dumps({
            "external_id": "dad", "files": [wire(p) for p in MALE_A[:2]], "request_id": "e-1",
            "reply_to": "voicegate/admin/reply/enrol"})).wait_for_publish(10)
        (enrolled,) = admin.wait_for(lambda m: m.topic == "voicegate/admin/reply/enrol", 60)
        assert json.loads(enrolled.payload)["sample_count"] == 2

        def own(request_id: str):
            return lambda m: (m.topic == "voicegate/frontdoor/reply/x"
                              and json.loads(m.payload).get("request_id") == request_id)

        theft = {"external_id": "dad", "replace": True, "files": [wire(FEMALE_STRANGER)]}
        # The broker drops these: the admin's topics, the shared ones, another device's.
        for topic in ("voicegate/admin/enrollment/request", "voicegate/enrollment/request",
                      "voicegate/garage/enrollment/request"):
            frontdoor.publish(topic, json.dumps({**theft, "request_id": "t-0"}))
        frontdoor.publish("voicegate/garage/verification/request", VerificationRequest(
            file1=AudioFile(name="a.flac", data=MALE_A[0].read_bytes()),
            file2=AudioFile(name="b.flac", data=FEMALE_STRANGER.read_bytes()),
            request_id="as-garage", reply_to="voicegate/garage/reply/x",
        ).model_dump_json(exclude_none=True))
        # The analytic refuses these: enrolment on its own topic, replies elsewhere.
        frontdoor.publish("voicegate/frontdoor/enrollment/request", json.dumps(
            {**theft, "request_id": "t-1"}), response_topic="voicegate/frontdoor/reply/x")
        (forbidden,) = frontdoor.wait_for(own("t-1"), 60)
        assert json.loads(forbidden.payload)["code"] == "forbidden"
        for i, elsewhere in enumerate(("voicegate/garage/reply/x",
                                       "homeassistant/lock/front/set")):
            frontdoor.publish("voicegate/frontdoor/verification/request", VerificationRequest(
                file1=AudioFile(name="a.flac", data=MALE_A[0].read_bytes()),
                file2=AudioFile(name="b.flac", data=MALE_A[1].read_bytes()),
                request_id=f"fwd-{i}", reply_to=elsewhere,
            ).model_dump_json(exclude_none=True), response_topic="voicegate/frontdoor/reply/x")
            (error,) = frontdoor.wait_for(own(f"fwd-{i}"), 60)
            assert json.loads(error.payload)["code"] == "reply_not_allowed"
        # A barrier: the front door's own request, answered on its own reply topic.
        frontdoor.publish("voicegate/frontdoor/verification/request", VerificationRequest(
            file1=AudioFile(name="a.flac", data=MALE_A[0].read_bytes()),
            file2=AudioFile(name="b.flac", data=MALE_A[1].read_bytes()),
            request_id="barrier", reply_to="voicegate/frontdoor/reply/x",
        ).model_dump_json(exclude_none=True))
        frontdoor.wait_for(own("barrier"), 60)
        home.wait_for(lambda m: m.topic == "voicegate/verification/result"
                      and json.loads(m.payload)["request_id"] == "barrier", 30)
        info = household.store.info("dad")
        assert info is not None and info.sample_count == 2  # not replaced
        # It may read only its own space and the status.
        assert [m.topic for m in garage.messages if m.topic != "voicegate/status"] == []
        assert not [m for m in home.messages if m.topic.startswith("homeassistant/lock/")]
        assert not [m for m in home.messages
                    if json.loads(m.payload).get("request_id") in ("t-0", "as-garage")]
    finally:
        for probe in probes:
            probe.close()
        adapter.stop(drain_timeout=5)
        household.close()
