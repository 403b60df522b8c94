"""The MQTT door against a real Mosquitto: round trips, errors, delivery guarantees, scale-out.

Each test starts its own broker (``mqtt_broker`` fixture) and its own adapter(s) around the
session's real GE2E encoder, and watches the bus with a recording client (``BusProbe``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from analytic.cli.settings import Settings
from analytic.schemas import VerificationResult
from analytic.service import VerificationService
from analytic.web.app import create_app
from bus_adapter.adapter import BusAdapter
from bus_adapter.messages import AudioFile, VerificationRequest
from bus_adapter.session import apply_broker_settings
from tests import audio_factory as make
from tests.conftest import FEMALE_A, MALE_A, free_port, serve_in_thread
from tests.mqtt_broker import BusProbe, MosquittoBroker, Received

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

REQUEST = "voicegate/verification/request"
RESULT = "voicegate/verification/result"
ERROR = "voicegate/error"
STATUS = "voicegate/status"
WAIT = 30.0  # generous upper bound for one answer on a loaded 2-core machine


def bus_settings(broker: MosquittoBroker, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "port": free_port(),
        "mqtt_port": broker.port,
        "mqtt_client_id": f"analytic-{uuid.uuid4().hex[:8]}",
        "mqtt_reconnect_max_s": 2,
    }
    fields.update(overrides)
    return Settings(**fields)


@contextmanager
def running(service: VerificationService) -> Iterator[BusAdapter]:
    adapter = BusAdapter(service)
    adapter.start()
    try:
        assert adapter.wait_connected(10), "adapter did not connect"
        yield adapter
    finally:
        adapter.stop(drain_timeout=5)


@contextmanager
def probe(port: int, *topics: str, **kwargs: object) -> Iterator[BusProbe]:
    client = BusProbe(port, topics or (RESULT, ERROR, "voicegate/reply/#"), **kwargs)
    try:
        yield client
    finally:
        client.close()


def audio(path: Path) -> tuple[str, bytes]:
    return path.name, path.read_bytes()


def request(file1: tuple[str, bytes], file2: tuple[str, bytes], **fields: object) -> str:
    return VerificationRequest(
        file1=AudioFile(name=file1[0], data=file1[1]),
        file2=AudioFile(name=file2[0], data=file2[1]),
        **fields,
    ).model_dump_json(exclude_none=True)


def same_pair(request_id: str, **fields: object) -> str:
    return request(audio(MALE_A[0]), audio(MALE_A[1]), request_id=request_id, **fields)


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll a state that has no message to wait for (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def body(message: Received) -> dict:
    return json.loads(message.payload)


def on(topic: str, request_id: str):
    """Predicate: a message on ``topic`` about ``request_id``."""
    return lambda m: m.topic == topic and body(m).get("request_id") == request_id


def test_bus_request_is_answered_on_result_reply_to_and_mqtt5_response_topic(mqtt_broker, encoder):
    settings = bus_settings(mqtt_broker)
    with running(VerificationService(settings, encoder)), probe(mqtt_broker.port) as bus:
        correlation = b"\x00door-42\xff"
        bus.publish(REQUEST, same_pair("same-1", reply_to="voicegate/reply/door"),
                    response_topic="voicegate/reply/mqtt5", correlation_data=correlation)
        bus.publish(REQUEST, request(audio(MALE_A[0]), audio(FEMALE_A[0]), request_id="diff-1",
                                     requestor_id="front-door", requestor_type="lock"))

        (same,) = bus.wait_for(on(RESULT, "same-1"), WAIT)
        (diff,) = bus.wait_for(on(RESULT, "diff-1"), WAIT)
        (reply,) = bus.wait_for(lambda m: m.topic == "voicegate/reply/door", WAIT)
        (response,) = bus.wait_for(lambda m: m.topic == "voicegate/reply/mqtt5", WAIT)

    result = VerificationResult.model_validate_json(same.payload)  # HTTP's 200 body model
    assert result.decision is True and result.result == "Same Speaker"
    assert result.score >= result.threshold
    assert [f.name for f in result.files] == [MALE_A[0].name, MALE_A[1].name]
    assert same.content_type == "application/json"

    other = VerificationResult.model_validate_json(diff.payload)
    assert other.decision is False and other.result == "Different Speaker"
    assert (other.requestor_id, other.requestor_type) == ("front-door", "lock")

    assert body(reply) == body(same)  # the same decision, not a second one
    assert body(response) == body(same)
    assert response.correlation_data == correlation
    assert not bus.matching(lambda m: m.topic == ERROR)


def test_http_verification_also_appears_on_the_result_topic(mqtt_broker, encoder):
    settings = bus_settings(mqtt_broker)
    service = VerificationService(settings, encoder)
    with running(service) as adapter, probe(mqtt_broker.port) as bus:
        app = create_app(service, bus_status=adapter.status)
        for base_url in serve_in_thread(app, settings):
            assert requests.get(f"{base_url}/health", timeout=10).json()["bus"] == "connected"
            files = {"file1": audio(MALE_A[0]), "file2": audio(FEMALE_A[1])}
            response = requests.post(f"{base_url}/speaker_verification", files=files,
                                     data={"request_id": "via-http"}, timeout=60)
            assert response.status_code == 200, response.text
            (published,) = bus.wait_for(on(RESULT, "via-http"), WAIT)
    assert body(published) == response.json()
    assert response.json()["decision"] is False


NOT_AUDIO = ("notes.wav", b"Shopping list: milk, eggs, bread.\n" * 40)
SILENCE = ("quiet.wav", make.silence(3.0))
BAD_REQUESTS = {  # payload, its request_id, the error code expected
    "malformed_json": (
        b'{"request_id": "bad-json", "file1": {"name": "a.wav", "da', "bad-json", "bad_json"
    ),
    "bad_base64": (
        json.dumps({"request_id": "bad-b64", "file1": {"name": "a.wav", "data": "no*base64!"},
                    "file2": {"name": "b.wav", "data": "AAAA"}}).encode(),
        "bad-b64",
        "bad_base64",
    ),
    "text_file": (
        request(NOT_AUDIO, audio(MALE_A[0]), request_id="text-file").encode(),
        "text-file",
        "unsupported_audio",
    ),
    "silence": (
        request(audio(MALE_A[0]), SILENCE, request_id="silence").encode(), "silence", "no_speech"
    ),
    "too_large": (
        request(audio(MALE_A[0]), ("big.wav", bytes(700_000)), request_id="too-large").encode(),
        "too-large",
        "too_large",
    ),
    "missing_file": (
        json.dumps({"request_id": "no-file2", "file1": {"name": "a", "data": ""}}).encode(),
        "no-file2",
        "bad_field",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_unservable_request_gets_an_error_with_its_id_and_the_next_one_succeeds(
    case, mqtt_broker, encoder
):
    payload, request_id, code = BAD_REQUESTS[case]
    # A limit between a good request (~270 kB) and the too-large one (~1.2 MB).
    settings = bus_settings(mqtt_broker, mqtt_max_payload_bytes=600_000)
    with running(VerificationService(settings, encoder)) as adapter, probe(mqtt_broker.port) as bus:
        bus.publish(REQUEST, payload, response_topic="voicegate/reply/errors",
                    correlation_data=b"c-1")
        (error,) = bus.wait_for(on(ERROR, request_id), WAIT)
        (direct,) = bus.wait_for(lambda m: m.topic == "voicegate/reply/errors", WAIT)

        bus.publish(REQUEST, same_pair(f"after-{case}"))
        (good,) = bus.wait_for(on(RESULT, f"after-{case}"), WAIT)
        assert adapter.status() == "connected"

    assert body(error)["code"] == code, body(error)
    assert set(body(error)) == {"request_id", "code", "message"}
    assert body(direct) == body(error) and direct.correlation_data == b"c-1"
    assert body(good)["decision"] is True
    assert not bus.matching(on(RESULT, request_id))


class GatedService(VerificationService):
    """The real service, held at the door until the test opens the gate."""

    def __init__(self, settings: Settings, encoder: object) -> None:
        super().__init__(settings, encoder)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def verify(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.entered.set()
        assert self.gate.wait(WAIT)
        return super().verify(*args, **kwargs)


def test_full_queue_answers_busy_instead_of_dropping(mqtt_broker, encoder):
    settings = bus_settings(mqtt_broker, mqtt_workers=1, mqtt_queue_size=1)
    service = GatedService(settings, encoder)
    with running(service), probe(mqtt_broker.port) as bus:
        bus.publish(REQUEST, same_pair("in-progress"))
        assert service.entered.wait(WAIT)  # the only worker is now busy with it
        bus.publish(REQUEST, same_pair("queued"))  # fills the one queue slot
        bus.publish(REQUEST, same_pair("refused"))
        (busy,) = bus.wait_for(on(ERROR, "refused"), WAIT)
        service.gate.set()
        bus.wait_for(on(RESULT, "in-progress"), WAIT)
        bus.wait_for(on(RESULT, "queued"), WAIT)
    assert body(busy)["code"] == "busy"
    assert not bus.matching(on(RESULT, "refused"))
    assert not bus.matching(lambda m: m.topic == ERROR and body(m)["code"] != "busy")


def test_duplicate_request_id_is_answered_once(mqtt_broker, encoder):
    """Per device (the topic's), not per payload ``requestor_id``, which anyone can write
    (issue 14: updated from a payload-keyed check)."""
    settings = bus_settings(mqtt_broker, mqtt_workers=1)  # one worker: answers come in order
    with running(VerificationService(settings, encoder)), probe(mqtt_broker.port) as bus:
        twice = same_pair("dup-1", requestor_id="kitchen")
        bus.publish("voicegate/kitchen/verification/request", twice)
        bus.publish("voicegate/kitchen/verification/request", twice)
        # Another device's id: answered. The same device under another requestor_id: not.
        bus.publish("voicegate/hall/verification/request", same_pair("dup-1", requestor_id="hall"))
        bus.publish("voicegate/kitchen/verification/request",
                    same_pair("dup-1", requestor_id="forged"))
        bus.publish(REQUEST, same_pair("barrier"))
        bus.wait_for(on(RESULT, "barrier"), WAIT)
    answers = [body(m) for m in bus.matching(on(RESULT, "dup-1"))]
    assert sorted(a["requestor_id"] for a in answers) == ["hall", "kitchen"]


def test_requests_survive_analytic_downtime_and_a_broker_restart(mqtt_broker, encoder):
    client_id = "analytic-restart"
    settings = bus_settings(mqtt_broker, mqtt_client_id=client_id, mqtt_workers=1)
    ids = [f"r{i}" for i in range(12)]

    def answers() -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for m in results.matching(lambda m: m.topic in (RESULT, ERROR)):
            found[body(m)["request_id"]].add(body(m).get("analysis_id", "error"))
        return found

    # Persistent clients on the test side too, so nothing is lost on *their* side either.
    with probe(mqtt_broker.port, RESULT, ERROR, client_id="results", persistent=True) as results, \
            probe(mqtt_broker.port, client_id="requester", persistent=True) as requester:
        # 1. The analytic has a session, then goes away; requests arrive while it is down.
        with running(VerificationService(settings, encoder)):
            pass
        for request_id in ids[:3]:
            requester.publish(REQUEST, same_pair(request_id)).wait_for_publish(10)

        with running(VerificationService(settings, encoder)) as adapter:
            results.wait_for(lambda m: body(m).get("request_id") in ids[:3], WAIT, count=3)

            # 2. Requests in flight (queued, being served, unacknowledged) when the broker stops.
            for request_id in ids[3:8]:
                requester.publish(REQUEST, same_pair(request_id))
            results.wait_for(on(RESULT, ids[3]), WAIT)
            mqtt_broker.stop()
            # 3. Requests published while the broker is down wait in the requester's client.
            for request_id in ids[8:]:
                requester.publish(REQUEST, same_pair(request_id))
            assert eventually(lambda: adapter.status() == "disconnected")
            assert eventually(lambda: not requester.connected)  # its own network thread
            mqtt_broker.start()

            assert adapter.wait_connected(WAIT)
            results.wait_until(lambda _: set(answers()) >= set(ids), WAIT * 2)
            # A barrier behind everything else (one worker, FIFO): a late second answer to any
            # earlier request would have been published before this one.
            requester.publish(REQUEST, same_pair("barrier"))
            results.wait_for(on(RESULT, "barrier"), WAIT)

        # 4. A fresh analytic, with no memory of what it answered, resumes the session: nothing
        #    is delivered again, because each request was acknowledged once it was answered.
        with running(VerificationService(settings, encoder)):
            requester.publish(REQUEST, same_pair("barrier-2"))
            results.wait_for(on(RESULT, "barrier-2"), WAIT)

    found = answers()
    assert {request_id: len(found[request_id]) for request_id in ids} == dict.fromkeys(ids, 1)
    assert not results.matching(lambda m: m.topic == ERROR)


def test_share_group_splits_the_work_and_answers_each_request_once(mqtt_broker, encoder):
    instances = [
        VerificationService(
            bus_settings(mqtt_broker, mqtt_share_group="voicegate", analyzer_id=name), encoder
        )
        for name in ("instance-a", "instance-b")
    ]
    ids = [f"shared-{i}" for i in range(20)]
    with running(instances[0]), running(instances[1]), probe(mqtt_broker.port) as bus:
        for request_id in ids:
            bus.publish(REQUEST, same_pair(request_id))
        answers = bus.wait_for(lambda m: m.topic == RESULT, WAIT * 2, count=len(ids))
        # Nothing more may follow; a quiet second is the only way to see an absent duplicate.
        with pytest.raises(TimeoutError):
            bus.wait_for(lambda m: m.topic == RESULT, 1.0, count=len(ids) + 1)
    per_request = Counter(body(m)["request_id"] for m in answers)
    assert per_request == Counter(ids)
    workers = Counter(body(m)["analyzer_id"] for m in answers)
    assert set(workers) == {"instance-a", "instance-b"}, workers
    assert all(body(m)["decision"] is True for m in answers)


def test_http_serves_without_a_broker_and_the_bus_comes_up_with_it(tmp_path, encoder):
    broker = MosquittoBroker(tmp_path / "late-broker", free_port())
    settings = Settings(port=free_port(), mqtt_port=broker.port, mqtt_client_id="late",
                        mqtt_reconnect_max_s=1)
    service = VerificationService(settings, encoder)
    adapter = BusAdapter(service)
    adapter.start()
    try:
        for base_url in serve_in_thread(create_app(service, bus_status=adapter.status), settings):
            assert requests.get(f"{base_url}/health", timeout=10).json()["bus"] == "disconnected"
            files = {"file1": audio(FEMALE_A[0]), "file2": audio(FEMALE_A[1])}
            response = requests.post(f"{base_url}/speaker_verification", files=files, timeout=60)
            assert response.status_code == 200 and response.json()["decision"] is True

            broker.start()
            assert adapter.wait_connected(WAIT)
            assert requests.get(f"{base_url}/health", timeout=10).json()["bus"] == "connected"
            with probe(broker.port, STATUS) as bus:
                (status,) = bus.wait_for(lambda m: m.topic == STATUS, WAIT)
            assert (status.payload, status.retain) == (b"online", True)
    finally:
        adapter.stop(drain_timeout=2)
        broker.kill()


def test_home_assistant_discovery_and_sifis_result(mqtt_broker, encoder):
    settings = bus_settings(mqtt_broker, mqtt_sifis_topic="sifis/results")
    discovery = "homeassistant/+/voicegate/+/config"
    with running(VerificationService(settings, encoder)):
        # ``running`` returns once the configs are queued, not delivered: a probe subscribed
        # in time gets them live, without the retain flag. Wait until they reach the broker,
        # then subscribe anew, as Home Assistant starting later would.
        with probe(mqtt_broker.port, discovery) as first:
            first.wait_for(lambda m: m.topic.endswith("/config"), WAIT, count=2)
        with probe(mqtt_broker.port, discovery, "sifis/results") as bus:
            configs = bus.wait_for(lambda m: m.topic.endswith("/config"), WAIT, count=2)
            assert all(m.retain for m in configs)
            # Home Assistant restarted: it says so, and gets the configs again.
            bus.publish("homeassistant/status", "online")
            bus.wait_for(lambda m: m.topic.endswith("/config") and not m.retain, WAIT, count=2)

            bus.publish(REQUEST, same_pair("for-sifis"))
            (sifis,) = bus.wait_for(lambda m: m.topic == "sifis/results", WAIT)

    by_kind = {m.topic.split("/")[1]: json.loads(m.payload) for m in configs}
    assert set(by_kind) == {"binary_sensor", "sensor"}
    for config in by_kind.values():
        assert config["state_topic"] == RESULT
        assert config["availability_topic"] == STATUS
        assert (config["payload_available"], config["payload_not_available"]) == (
            "online", "offline")
    assert "decision" in by_kind["binary_sensor"]["value_template"]
    assert "score" in by_kind["sensor"]["value_template"]

    envelope = body(sifis)["RequestPostTopicUUID"]
    assert envelope["topic_name"] == "SIFIS:Privacy_Aware_Speaker_Verification_Results"
    assert envelope["topic_uuid"] == "Speaker_Verification_Results"
    value = envelope["value"]  # the SIFIS URL's 200 body (tests/test_sifis.py), not the plain one
    assert value["request_id"] == "for-sifis"
    assert (value["Result"], value["decision"], value["connected"]) == ("Same Speaker", True, True)
    # The cosine as SIFIS names it; the decision was made on the AS-norm score beside it.
    assert 0.5 < value["Cosine Similarity"] <= 1 and value["score"] >= value["threshold"]
    assert (value["first_audio_file"], value["second_audio_file"]) == (
        value["files"][0]["name"], value["files"][1]["name"])
    assert "raw_score" not in value


def test_publish_pair_cli_prints_the_answer(mqtt_broker, encoder, tmp_path):
    silent = tmp_path / "silence.wav"
    silent.write_bytes(make.silence(2.0))

    def publish_pair(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bus_adapter.publish_pair", *args,
             "--port", str(mqtt_broker.port), "--timeout", "60"],
            capture_output=True, text=True, timeout=120,
        )

    settings = bus_settings(mqtt_broker)
    with running(VerificationService(settings, encoder)):
        done = publish_pair(str(MALE_A[0]), str(MALE_A[2]), "--request-id", "cli-1")
        refused = publish_pair(str(FEMALE_A[0]), str(silent), "--request-id", "cli-2")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["request_id"], answer["decision"]) == ("cli-1", True)
    assert refused.returncode == 2, refused.stderr
    error = json.loads(refused.stdout)
    assert (error["request_id"], error["code"]) == ("cli-2", "no_speech")


def test_a_retained_request_is_not_replayed_on_subscribe(mqtt_broker, encoder):
    with probe(mqtt_broker.port) as bus:
        bus.publish(REQUEST, same_pair("retained-1"), retain=True).wait_for_publish(10)
        settings = bus_settings(mqtt_broker, mqtt_workers=1)
        with running(VerificationService(settings, encoder)):
            bus.publish(REQUEST, same_pair("barrier"))
            bus.wait_for(on(RESULT, "barrier"), WAIT)
    assert not bus.matching(on(RESULT, "retained-1"))


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    folder.mkdir()

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
            "/CN=voicegate-test-ca", "-keyout", "ca.key", "-out", "ca.crt")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", f"{name}.crt")
    return {name: folder / name for name in
            ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def test_broker_credentials_and_mutual_tls_come_from_settings(tmp_path, encoder):
    certs = make_certificates(tmp_path / "certs")
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "voicegate", "s3cret"],
                   check=True, capture_output=True)
    broker = MosquittoBroker(tmp_path / "tls-broker", free_port(), listener_conf=(
        f"allow_anonymous false\npassword_file {passwords}\n"
        f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\n"
        f"keyfile {certs['server.key']}\nrequire_certificate true\n"
    ))
    broker.start()
    tls = {"mqtt_tls_ca_file": str(certs["ca.crt"]), "mqtt_tls_certfile": str(certs["client.crt"]),
           "mqtt_tls_keyfile": str(certs["client.key"]), "mqtt_username": "voicegate"}
    try:
        wrong = BusAdapter(VerificationService(
            bus_settings(broker, mqtt_password="wrong", **tls), encoder))
        wrong.start()
        settings = bus_settings(broker, mqtt_password="s3cret", **tls)
        try:
            with running(VerificationService(settings, encoder)), probe(
                broker.port, RESULT, configure=lambda c: apply_broker_settings(c, settings)
            ) as bus:
                bus.publish(REQUEST, same_pair("over-tls"))
                (result,) = bus.wait_for(on(RESULT, "over-tls"), WAIT)
                assert body(result)["decision"] is True
                assert wrong.status() == "disconnected"  # refused all along
        finally:
            wrong.stop(drain_timeout=1)
    finally:
        broker.kill()
