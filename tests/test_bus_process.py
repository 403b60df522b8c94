"""``python -m analytic serve`` as a real process: HTTP and the bus together, and its status.

The last will can only be tested with a process the test can kill: an in-process adapter cannot
vanish without closing its socket politely.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import MALE_A, free_port
from tests.test_bus import REQUEST, RESULT, STATUS, body, on, probe, same_pair

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

IDENTIFY_REQUEST = "voicegate/identify/request"
IDENTIFY_RESULT = "voicegate/identify/result"

STARTUP = 120.0  # model loading on a busy 2-core machine


@contextmanager
def analytic_process(
    broker_port: int, log: Path, client_id: str | None = None, analyzer_id: str = "voicegate"
) -> Iterator[tuple[subprocess.Popen, str]]:
    http_port = free_port()
    env = {
        **os.environ,
        "VOICEGATE_MQTT_PORT": str(broker_port),
        "VOICEGATE_MQTT_CLIENT_ID": client_id or f"analytic-process-{http_port}",
        "VOICEGATE_MQTT_RECONNECT_MAX_S": "2",
        "VOICEGATE_MQTT_WORKERS": "1",
        "VOICEGATE_ANALYZER_ID": analyzer_id,
        "VOICEGATE_DATA_DIR": str(log.parent / "data"),  # this test's own voiceprint store
    }
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "analytic", "serve", "--port", str(http_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    try:
        yield process, f"http://127.0.0.1:{http_port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def wait_for_health(base_url: str, process: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, "the analytic exited"
        try:
            return requests.get(f"{base_url}/health", timeout=5).json()
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for_bus(base_url: str, process: subprocess.Popen, timeout: float) -> None:
    """Until the analytic's /health says its bus is connected (model loading comes first):
    only then does an HTTP identification publish the speaker state."""
    deadline = time.monotonic() + timeout
    health: dict = {}
    while time.monotonic() < deadline:
        assert process.poll() is None, "the analytic exited"
        try:
            health = requests.get(f"{base_url}/health", timeout=5).json()
            if health.get("bus") == "connected":
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the analytic's bus did not connect within {timeout} s: {health}")


def retained_status(port: int) -> bytes:
    """What a client subscribing now is told (the retained message)."""
    with probe(port, STATUS) as fresh:
        (message,) = fresh.wait_for(lambda m: m.topic == STATUS, 10)
    assert message.retain
    return message.payload


def test_killed_process_goes_offline_and_its_unanswered_requests_are_served_next_start(
    mqtt_broker, tmp_path
):
    log = tmp_path / "analytic.log"
    ids = [f"crash-{i}" for i in range(8)]

    with probe(mqtt_broker.port, STATUS, RESULT) as bus:
        with analytic_process(mqtt_broker.port, log, "analytic-crash", "first") as (process, url):
            bus.wait_for(lambda m: m.topic == STATUS and m.payload == b"online", STARTUP)
            assert wait_for_health(url, process, 30)["bus"] == "connected"
            assert retained_status(mqtt_broker.port) == b"online"

            # The one command serves the bus too; kill it with requests still waiting.
            for request_id in ids:
                bus.publish(REQUEST, same_pair(request_id))
            bus.wait_for(on(RESULT, ids[0]), 60)
            process.send_signal(signal.SIGKILL)
            bus.wait_for(lambda m: m.topic == STATUS and m.payload == b"offline", 30)
        assert retained_status(mqtt_broker.port) == b"offline"

        # The requests it had not acknowledged wait in its session for the next start.
        with analytic_process(mqtt_broker.port, tmp_path / "second.log", "analytic-crash",
                              "second"):
            bus.wait_until(lambda _: all(bus.matching(on(RESULT, i)) for i in ids), STARTUP)
            bus.wait_for(lambda m: m.topic == STATUS and m.payload == b"online", 30)

    by = {body(m)["analyzer_id"] for m in bus.matching(lambda m: m.topic == RESULT)}
    assert by == {"first", "second"}  # the kill really left work for the second start
    assert all(body(m)["decision"] is True for m in bus.matching(lambda m: m.topic == RESULT))
    # Audio went through this process; its log carries ids, never audio.
    logged = log.read_text()
    assert "crash-0" in logged
    assert base64.b64encode(MALE_A[1].read_bytes()).decode()[3000:3060] not in logged


def test_sigterm_stops_cleanly_and_says_offline(mqtt_broker, tmp_path):
    log = tmp_path / "analytic.log"
    with probe(mqtt_broker.port, STATUS, IDENTIFY_RESULT, "voicegate/speaker/#") as bus, \
            analytic_process(mqtt_broker.port, log) as (process, base_url):
        bus.wait_for(lambda m: m.topic == STATUS and m.payload == b"online", STARTUP)
        wait_for_health(base_url, process, 30)
        # serve() hands one household to both doors: a bus identification and an HTTP one
        # (nobody enrolled: both unknown) each update the speaker state of their site.
        clip = {"name": MALE_A[0].name, "data": base64.b64encode(MALE_A[0].read_bytes()).decode()}
        bus.publish(IDENTIFY_REQUEST, json.dumps({"file": clip, "site": "hall",
                                                  "request_id": "proc-1"}))
        (by_bus,) = bus.wait_for(on(IDENTIFY_RESULT, "proc-1"), 60)
        by_http = requests.post(f"{base_url}/identify", data={"site": "porch"},
                                files={"file": MALE_A[0].read_bytes()}, timeout=60).json()
        for site, answer in (("hall", body(by_bus)), ("porch", by_http)):
            (state,) = bus.wait_for(lambda m, site=site: m.topic == f"voicegate/speaker/{site}",
                                    30)
            assert body(state)["analysis_id"] == answer["analysis_id"]
            assert (answer["enrolled"], body(state)["speaker"]) == (0, "unknown")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        bus.wait_for(lambda m: m.topic == STATUS and m.payload == b"offline", 10)
    events = [json.loads(line).get("event") for line in log.read_text().splitlines()
              if line.startswith("{")]
    assert "bus_stopped" in events
    assert retained_status(mqtt_broker.port) == b"offline"


def test_serve_keeps_http_up_without_a_broker(tmp_path):
    log = tmp_path / "analytic.log"
    with analytic_process(free_port(), log) as (process, base_url):
        assert wait_for_health(base_url, process, STARTUP)["bus"] == "disconnected"
        files = {"file1": (MALE_A[0].name, MALE_A[0].read_bytes()),
                 "file2": (MALE_A[1].name, MALE_A[1].read_bytes())}
        response = requests.post(f"{base_url}/speaker_verification", files=files, timeout=60)
        assert response.status_code == 200 and response.json()["decision"] is True

