"""The documented Mosquitto ACL (mosquitto/acl.example) against a real broker: a device gets
its own answer and cannot read the results of others."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from analytic.service import VerificationService
from analytic.settings import Settings
from bus_adapter.adapter import BusAdapter
from bus_adapter.messages import AudioFile, VerificationRequest
from tests.conftest import MALE_A, free_port
from tests.mqtt_broker import BusProbe, MosquittoBroker

ACL = Path(__file__).resolve().parents[1] / "mosquitto" / "acl.example"
USERS = {"voicegate": "analytic-pw", "homeassistant": "ha-pw", "frontdoor": "fd-pw",
         "garage": "ga-pw"}


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


def test_a_device_reads_its_own_reply_and_nothing_of_others(acl_broker, encoder):
    settings = Settings(port=free_port(), mqtt_port=acl_broker.port, mqtt_username="voicegate",
                        mqtt_password=USERS["voicegate"],
                        mqtt_client_id=f"analytic-{uuid.uuid4().hex[:8]}")
    adapter = BusAdapter(VerificationService(settings, encoder))
    adapter.start()
    frontdoor = BusProbe(acl_broker.port, ["voicegate/reply/frontdoor/#"],
                         configure=login("frontdoor"))
    garage = BusProbe(acl_broker.port, ["voicegate/verification/result", "voicegate/error",
                                        "voicegate/reply/#"], configure=login("garage"))
    home = BusProbe(acl_broker.port, ["voicegate/verification/result"],
                    configure=login("homeassistant"))
    try:
        assert adapter.wait_connected(10)
        pair = VerificationRequest(
            file1=AudioFile(name="a.flac", data=MALE_A[0].read_bytes()),
            file2=AudioFile(name="b.flac", data=MALE_A[1].read_bytes()),
            request_id="door-acl", reply_to="voicegate/reply/frontdoor/lock",
        ).model_dump_json(exclude_none=True)
        frontdoor.publish("voicegate/verification/request", pair).wait_for_publish(10)
        reply = frontdoor.wait_for(lambda m: m.topic == "voicegate/reply/frontdoor/lock", 60)
        assert json.loads(reply[0].payload)["decision"] is True
        # Home Assistant sees the result; by then the garage would have seen it too, if it could.
        home.wait_for(lambda m: m.topic == "voicegate/verification/result", 30)
        assert garage.messages == []
    finally:
        for probe in (frontdoor, garage, home):
            probe.close()
        adapter.stop(drain_timeout=5)
