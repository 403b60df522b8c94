"""The SIFIS-Home drop-in: the envelope the SIFIS analytics API reads, and the DHT forwarder.

``analytics_api_verifies`` does what sifis-home/analytics_api does with a
``SIFIS:Privacy_Aware_Speaker_Verification`` request: post the two files as ``file1`` and
``file2`` (named ``filename1.wav`` / ``filename2.wav``, ``audio/wav``) to the SIFIS URL, read
``["RequestPostTopicUUID"]["value"]`` of the 200 body, and forward the whole body to the DHT.
It runs against the real service through waitress, on real speech. The DHT forwarder is tested
against a real websocket server (``tests/dht_server.py``), stopped and started again under it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from analytic.cli.settings import Settings
from analytic.dht import DhtForwarder
from analytic.schemas import SifisResult, SifisValue, VerificationResult
from analytic.service import VerificationService
from analytic.web.app import create_app
from tests import audio_factory as make
from tests.conftest import FEMALE_A, MALE_A, free_port, serve_in_thread, stop_process
from tests.dht_server import DhtServer

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60
WAIT = 60.0
SIFIS_KEYS = {"description", "requestor_id", "requestor_type", "request_id", "analyzer_id",
              "analysis_id", "connected", "first_audio_file", "second_audio_file",
              "Cosine Similarity", "Result"}


def sifis_url(base_url: str, first: str, second: str, requestor_id: str, requestor_type: str,
              request_id: str) -> str:
    return (f"{base_url}/speaker_verification/{first}/{second}/{requestor_id}/"
            f"{requestor_type}/{request_id}")


def analytics_api_verifies(base_url: str, first: bytes, second: bytes,
                           request_id: str = "2023061906001633466553786f48") -> dict:
    """The analytics API's read path: the two SIFIS result keys out of the envelope."""
    url = sifis_url(base_url, "first_audio_file.wav", "second_audio_file.wav",
                    "33466553786f48cb72faad7b2fb9d0952c97", "NSSD", request_id)
    files = [("file1", ("filename1.wav", first, "audio/wav")),
             ("file2", ("filename2.wav", second, "audio/wav"))]
    response = requests.post(url, files=files, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    response_dict = json.loads(response.content)
    value = response_dict["RequestPostTopicUUID"]["value"]
    return {"similarity": value["Cosine Similarity"], "result": value["Result"],
            "value": value, "body": response_dict}


def wav(path) -> bytes:
    """The fixture as the WAV file the analytics API sends."""
    return make.encode(*make.load(path), fmt="WAV")


def test_the_analytics_api_reads_its_result_from_the_envelope(base_url):
    same = analytics_api_verifies(base_url, wav(MALE_A[0]), wav(MALE_A[1]))
    different = analytics_api_verifies(base_url, wav(MALE_A[0]), wav(FEMALE_A[0]))
    assert same["result"] == "Same Speaker"
    assert different["result"] == "Different Speaker"
    assert same["similarity"] > different["similarity"]

    body = same["body"]
    assert list(body) == ["RequestPostTopicUUID"]
    assert body["RequestPostTopicUUID"]["topic_name"] == (
        "SIFIS:Privacy_Aware_Speaker_Verification_Results")
    assert body["RequestPostTopicUUID"]["topic_uuid"] == "Speaker_Verification_Results"
    value = same["value"]
    assert set(value) >= SIFIS_KEYS
    # The original's types: strings but for a boolean ``connected`` and a float similarity.
    for key in SIFIS_KEYS - {"connected", "Cosine Similarity"}:
        assert isinstance(value[key], str), key
    assert value["connected"] is True
    assert isinstance(value["Cosine Similarity"], float)
    assert value["description"] == "Speaker Verification Results"
    assert (value["first_audio_file"], value["second_audio_file"]) == (
        "first_audio_file.wav", "second_audio_file.wav")
    assert (value["requestor_id"], value["requestor_type"], value["request_id"]) == (
        "33466553786f48cb72faad7b2fb9d0952c97", "NSSD", "2023061906001633466553786f48")
    # Voicegate's own fields, where they add to the SIFIS keys.
    assert value["decision"] is True and value["score"] >= value["threshold"]
    assert value["score_norm"] == "asnorm" and value["confidence"] > 0.5
    assert value["model"] == "campplus"
    assert [f["name"] for f in value["files"]] == ["first_audio_file.wav",
                                                  "second_audio_file.wav"]
    assert "raw_score" not in value and "result" not in value  # no second spelling of the same


def test_the_sifis_url_takes_the_first_two_file_parts_whatever_their_names(base_url):
    url = sifis_url(base_url, "a.flac", "b.flac", "hall", "sensor", "names-1")
    files = [("audio", ("x.flac", MALE_A[0].read_bytes())),
             ("other", ("y.flac", MALE_A[1].read_bytes())),
             ("third", ("z.flac", FEMALE_A[0].read_bytes()))]  # a third part is ignored
    response = requests.post(url, files=files, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    value = response.json()["RequestPostTopicUUID"]["value"]
    assert value["Result"] == "Same Speaker"
    assert value["request_id"] == "names-1"

    # The order sent is the order compared: the woman's recording second is a different pair.
    files[1], files[2] = files[2], files[1]
    swapped = requests.post(url, files=files, timeout=TIMEOUT).json()
    assert swapped["RequestPostTopicUUID"]["value"]["Result"] == "Different Speaker"


@pytest.mark.parametrize("parts", [0, 1])
def test_the_sifis_url_needs_two_file_parts(base_url, parts):
    url = sifis_url(base_url, "a.flac", "b.flac", "hall", "sensor", "short")
    files = [("file1", ("a.flac", MALE_A[0].read_bytes()))][:parts]
    response = requests.post(url, files=files, data={"note": "a form field is no file"},
                             timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_file"


def test_the_plain_route_keeps_its_body_and_its_part_names(base_url):
    files = {"audio": ("a.flac", MALE_A[0].read_bytes()),
             "other": ("b.flac", MALE_A[1].read_bytes())}
    response = requests.post(base_url + "/speaker_verification", files=files, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_file"

    files = {"file1": files["audio"], "file2": files["other"]}
    body = requests.post(base_url + "/speaker_verification", files=files,
                         timeout=TIMEOUT).json()
    assert set(body) == set(VerificationResult.model_fields)
    assert body["result"] == "Same Speaker"


def test_the_envelope_carries_every_field_of_the_plain_result():
    """A field added to VerificationResult must be added to SifisValue (and ``from_result``)
    too, or be named here as already said by a SIFIS key."""
    said_by_sifis_keys = {"raw_score": "Cosine Similarity", "result": "Result"}
    missing = set(VerificationResult.model_fields) - set(SifisValue.model_fields)
    assert missing == set(said_by_sifis_keys), (
        f"SifisValue lacks {sorted(missing - set(said_by_sifis_keys))}")


# --- the DHT forwarder, against a real websocket server ------------------------------------

def wait_until(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def fast_forwarder(url: str, **overrides) -> DhtForwarder:
    options = {"queue_size": 100, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5,
               "timeout_s": 30.0, **overrides}
    return DhtForwarder(url, **options)


@pytest.fixture
def dht() -> Iterator[DhtServer]:
    server = DhtServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def served_with(forwarder: DhtForwarder, encoder) -> Iterator[str]:
    """The service through waitress, its results forwarded as ``serve`` wires it."""
    settings = Settings(port=free_port(), describe_files=False)
    service = VerificationService(settings, encoder)
    service.add_result_listener(forwarder.listener)
    forwarder.start()
    try:
        app = create_app(service, dht_status=forwarder.status)
        with contextmanager(serve_in_thread)(app, settings) as base_url:
            yield base_url
    finally:
        forwarder.stop()


def health(base_url: str) -> dict:
    return requests.get(base_url + "/health", timeout=TIMEOUT).json()


def test_results_reach_the_dht_in_order_and_answers_go_on_while_it_is_down(dht, encoder):
    forwarder = fast_forwarder(dht.url)
    with served_with(forwarder, encoder) as base_url:
        wait_until(lambda: health(base_url)["dht"] == "connected", "the DHT link")
        pairs = [(MALE_A[0], MALE_A[1]), (MALE_A[0], FEMALE_A[0]), (FEMALE_A[0], FEMALE_A[1])]
        bodies = [analytics_api_verifies(base_url, wav(a), wav(b), f"up-{n}")["body"]
                  for n, (a, b) in enumerate(pairs)]
        # A plain-route decision goes to the DHT too, in the same envelope.
        plain = requests.post(base_url + "/speaker_verification", timeout=TIMEOUT, files={
            "file1": ("m0.flac", MALE_A[0].read_bytes()),
            "file2": ("m1.flac", MALE_A[1].read_bytes())}).json()
        received = dht.wait_for(4)
        assert received[:3] == bodies  # the DHT gets exactly the SIFIS URL's 200 bodies
        value = received[3]["RequestPostTopicUUID"]["value"]
        assert (value["analysis_id"], value["first_audio_file"], value["request_id"]) == (
            plain["analysis_id"], "m0.flac", None)
        assert dht.paths == ["/ws"]

        dht.stop()
        wait_until(lambda: health(base_url)["dht"] == "disconnected", "the link to drop")
        while_down = [analytics_api_verifies(base_url, wav(MALE_A[1]), wav(MALE_A[2]),
                                             f"down-{n}")["body"] for n in range(2)]
        assert [b["RequestPostTopicUUID"]["value"]["Result"] for b in while_down] == [
            "Same Speaker", "Same Speaker"]
        assert health(base_url)["dht"] == "disconnected"

        dht.start()  # the same port: the DHT restarted
        assert dht.wait_for(6)[4:] == while_down  # queued while down, sent in order once up
        wait_until(lambda: health(base_url)["dht"] == "connected", "the link to come back")
        after = analytics_api_verifies(base_url, wav(FEMALE_A[1]), wav(FEMALE_A[2]), "back")
        assert dht.wait_for(7)[6] == after["body"]
        assert len(dht.paths) == 2  # one reconnect, not one per message


def test_a_full_queue_drops_the_oldest_and_keeps_the_order(service):
    port = free_port()
    forwarder = fast_forwarder(f"ws://127.0.0.1:{port}/ws", queue_size=3)
    forwarder.start()
    server = DhtServer(port)
    try:
        results = [service.verify(("a.flac", MALE_A[0].read_bytes()),
                                  ("b.flac", MALE_A[1].read_bytes())) for _ in range(5)]
        for result in results:  # nobody listens on the port yet: all wait in the queue
            forwarder.listener(result)
        assert forwarder.status() == "disconnected"
        server.start()
        marker = service.verify(("c.flac", FEMALE_A[0].read_bytes()),
                                ("d.flac", FEMALE_A[1].read_bytes()))
        server.wait_for(3)
        forwarder.listener(marker)
        got = server.wait_for(4)
        ids = [m["RequestPostTopicUUID"]["value"]["analysis_id"] for m in got]
        assert ids == [r.analysis_id for r in results[2:]] + [marker.analysis_id]
        assert got[0] == json.loads(SifisResult.from_result(results[2]).model_dump_json())
    finally:
        forwarder.stop()
        server.stop()


def test_a_dht_that_never_answers_the_handshake_holds_up_no_answer(encoder):
    """A port that accepts the connection and then says nothing: the link thread waits on it
    (its timeout is far beyond this test), the answers do not."""
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    url = f"ws://127.0.0.1:{silent.getsockname()[1]}/ws"
    forwarder = fast_forwarder(url, timeout_s=3600.0)
    with served_with(forwarder, encoder) as base_url:
        try:
            wait_until(lambda: bool(accepted), "the link to connect")
            answer = analytics_api_verifies(base_url, wav(MALE_A[0]), wav(MALE_A[1]), "stuck")
            assert answer["result"] == "Same Speaker"
            assert health(base_url)["dht"] == "disconnected"
        finally:  # let the link thread go: its handshake fails, reconnects are refused
            silent.close()
            for sock in accepted:
                sock.close()


def test_health_has_no_dht_without_one(base_url):
    assert health(base_url)["dht"] is None


def test_the_forwarder_is_off_unless_a_url_is_set():
    assert DhtForwarder.from_settings(Settings()) is None
    forwarder = DhtForwarder.from_settings(Settings(sifis_dht_url="ws://localhost:3000/ws"))
    assert forwarder is not None and forwarder.url == "ws://localhost:3000/ws"


def test_serve_forwards_to_the_dht_it_is_given(dht, tmp_path):
    """``python -m analytic serve`` as a SIFIS deployment runs it: the DHT link comes up, a
    consumer's answer reaches the DHT unchanged, and SIGTERM stops it all cleanly."""
    port = free_port()
    env = {**os.environ, "VOICEGATE_SIFIS_DHT_URL": dht.url, "VOICEGATE_MQTT_ENABLED": "false",
           "VOICEGATE_SIFIS_DHT_RECONNECT_MIN_S": "0.2", "VOICEGATE_DATA_DIR": str(tmp_path)}
    log = tmp_path / "serve.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "analytic", "serve", "--port",
                                    str(port)], env=env, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    base_url = f"http://127.0.0.1:{port}"
    try:
        def connected() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return health(base_url)["dht"] == "connected"
            except requests.ConnectionError:
                return False

        wait_until(connected, "serve's DHT link", timeout=180.0)
        answer = analytics_api_verifies(base_url, wav(MALE_A[0]), wav(MALE_A[2]), "served")
        assert dht.wait_for(1) == [answer["body"]]
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        stop_process(process)
    events = [json.loads(line).get("event") for line in log.read_text().splitlines()
              if line.startswith("{")]
    assert "dht_connected" in events
    assert "Cosine Similarity" not in log.read_text()  # messages are never logged
