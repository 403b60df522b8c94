"""The Node-RED example flow, run in a real Node-RED, routes real decisions of the analytic.

tests/test_examples.py checks the flow statically; this test runs it: the pinned Node-RED that
``script/setup --test`` installs in .cache/node-red, the example flow with only its broker port
changed, a private Mosquitto, and ``python -m analytic serve`` as a real process. Two real
verifications (a same-speaker pair and a different-speaker pair) go over the bus, and each must
reach the matching debug node of the flow, and only that one.

How the test sees the debug nodes: through the editor's websocket (``/comms``), the channel the
Node-RED sidebar itself uses. Every connected editor client receives each debug message (node
id, name and the message, as JSON) and the status of every node, so the test needs no change to
the flow (its debug nodes keep ``console: false``), reads structured data rather than scraping
``util.inspect`` output from the log, and can wait for the MQTT node's "connected" status before
anything is published. The client is the small ``websocket-client`` package (a dependency:
``analytic/dht.py`` uses it too).

Node-RED runs on 127.0.0.1 only, from a generated settings.js with telemetry (and so its
update check), diagnostics, projects and module installs off: it makes no network call beyond
the local broker. A missing Node-RED FAILS the test (CI must not skip it silently).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import websocket

from tests.conftest import DATA, free_port, stop_process
from tests.test_bus_process import STARTUP, analytic_process, wait_for_bus

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "examples" / "node-red" / "verification-router.json"
NODE_RED_DIR = ROOT / ".cache" / "node-red"
NODE_RED = NODE_RED_DIR / "node_modules" / ".bin" / "node-red"
SETUP = ROOT / "script" / "setup"

SAME_PAIR = (DATA / "2609-156975-0000.flac", DATA / "2609-156975-0001.flac")
DIFFERENT_PAIR = (DATA / "2609-156975-0000.flac", DATA / "3331-159605-0005.flac")
CONNECTED = "node-red:common.status.connected"  # the MQTT nodes' status text (an i18n key)
NODE_RED_START = 60.0  # seconds; about 3 s on an idle machine

Event = dict[str, Any]  # one comms message: {"topic": "debug" | "status/<id>" | ..., "data": ...}


def pinned_node_red_version() -> str:
    """The version script/setup installs, so the test runs exactly that one."""
    match = re.search(r"^NODE_RED_VERSION=(\S+)", SETUP.read_text(), re.MULTILINE)
    assert match, "script/setup no longer pins NODE_RED_VERSION"
    return match.group(1)


def require_node_red() -> None:
    """Fail (never skip) without the pinned Node-RED: CI must run this test."""
    package = NODE_RED_DIR / "node_modules" / "node-red" / "package.json"
    if not NODE_RED.exists() or not package.exists():
        pytest.fail(f"Node-RED is not installed in {NODE_RED_DIR}: run script/setup --test")
    installed = json.loads(package.read_text())["version"]
    if installed != pinned_node_red_version():
        pytest.fail(f"Node-RED {installed} in {NODE_RED_DIR}, script/setup pins "
                    f"{pinned_node_red_version()}: run script/setup --test")


def write_user_dir(user_dir: Path, broker_port: int, http_port: int) -> Path:
    """A Node-RED user dir holding the example flow and a settings.js for an offline run."""
    user_dir.mkdir(parents=True, exist_ok=True)
    nodes = json.loads(FLOW.read_text())
    # The ONLY change to the example: its broker node points at this test's Mosquitto.
    (broker,) = [n for n in nodes if n["type"] == "mqtt-broker"]
    broker["port"] = str(broker_port)
    (user_dir / "flows.json").write_text(json.dumps(nodes, indent=2))
    settings = {
        "uiHost": "127.0.0.1",
        "uiPort": http_port,
        "httpAdminRoot": "/",
        "flowFile": "flows.json",
        "credentialSecret": False,  # the flow has no credentials; no key file, no warning
        "telemetry": {"enabled": False, "updateNotification": False},  # no call home
        "diagnostics": {"enabled": False, "ui": False},
        "runtimeState": {"enabled": False, "ui": False},
        "externalModules": {"autoInstall": False, "palette": {"allowInstall": False}},
        "editorTheme": {"projects": {"enabled": False}, "tours": False},
        "logging": {"console": {"level": "info", "metrics": False, "audit": False}},
    }
    settings_js = user_dir / "settings.js"
    settings_js.write_text(f"module.exports = {json.dumps(settings, indent=2)};\n")
    return settings_js


class EditorComms:
    """A client of Node-RED's editor websocket, keeping every message it was sent."""

    def __init__(self, url: str, timeout: float, alive: Callable[[], bool]) -> None:
        """Connect (retrying while Node-RED starts) and ask for the retained node statuses."""
        deadline = time.monotonic() + timeout
        while True:
            assert alive(), "Node-RED exited"
            try:
                self.ws = websocket.create_connection(url, timeout=5)
                break
            except (OSError, websocket.WebSocketException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.events: list[Event] = []
        # Clients get everything published; subscribing also replays the retained statuses.
        self.ws.send(json.dumps({"subscribe": "status/#"}))

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event:
        """The first message so far or to come that matches, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for event in self.events[checked:]:
                if predicate(event):
                    return event
            checked = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"not within {timeout} s; last: {self.events[-5:]}")
            self.receive(left)

    def receive(self, timeout: float) -> None:
        """Read one websocket frame (a JSON list of messages), or nothing within ``timeout``."""
        self.ws.settimeout(timeout)
        try:
            frame = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return
        self.events.extend(json.loads(frame))

    def drain(self, seconds: float) -> None:
        """Keep reading for ``seconds``: a wrongly routed copy would arrive in that time."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.receive(left)

    def debug_messages(self) -> list[tuple[str, dict]]:
        """(debug node id, the payload it showed) for every debug node message so far.

        Warnings and errors of any node come on the same topic, with a ``level``: those are
        shown when an assertion fails, not parsed.
        """
        return [(e["data"]["id"], json.loads(e["data"]["msg"])) for e in self.events
                if e["topic"] == "debug" and "level" not in e["data"]]

    def close(self) -> None:
        self.ws.close()


@contextmanager
def node_red(user_dir: Path, broker_port: int) -> Iterator[EditorComms]:
    """Node-RED running the example flow; the editor websocket once its MQTT node is connected.

    The process is killed on the way out, whatever happened; its log is in user_dir.
    """
    require_node_red()
    http_port = free_port()
    settings_js = write_user_dir(user_dir, broker_port, http_port)
    log = user_dir / "node-red.log"
    env = {**os.environ, "NODE_RED_DISABLE_TELEMETRY": "1"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(NODE_RED), "--userDir", str(user_dir), "--settings", str(settings_js)],
            env=env, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    comms = None
    try:
        comms = EditorComms(f"ws://127.0.0.1:{http_port}/comms", NODE_RED_START,
                            lambda: process.poll() is None)
        (mqtt_in,) = [n["id"] for n in json.loads(FLOW.read_text()) if n["type"] == "mqtt in"]
        try:
            comms.wait_for(lambda e: e["topic"] == f"status/{mqtt_in}"
                           and e["data"].get("text") == CONNECTED, NODE_RED_START)
        except TimeoutError as exc:
            raise AssertionError(f"the flow's MQTT node never connected:\n{log.read_text()}") \
                from exc
        yield comms
    finally:
        if comms is not None:
            comms.close()
        stop_process(process)


def publish_pair(pair: tuple[Path, Path], broker_port: int, request_id: str) -> dict:
    """One real verification over the bus, as a user would send it; the analytic's answer."""
    done = subprocess.run(
        [sys.executable, "-m", "bus_adapter.publish_pair", str(pair[0]), str(pair[1]),
         "--port", str(broker_port), "--request-id", request_id, "--timeout", "60"],
        capture_output=True, text=True, timeout=90, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_flow_routes_real_decisions_to_the_matching_debug_node(mqtt_broker, tmp_path):
    require_node_red()  # before the analytic starts: say at once what is missing
    flow = {n["id"]: n for n in json.loads(FLOW.read_text())}
    (switch,) = [n for n in flow.values() if n["type"] == "switch"]
    same_node, different_node = (flow[wires[0]] for wires in switch["wires"])
    assert "Same Speaker" in same_node["name"]
    assert "Different Speaker" in different_node["name"]

    # The analytic loads its model while Node-RED starts.
    with analytic_process(mqtt_broker.port, tmp_path / "analytic.log") as (process, url), \
            node_red(tmp_path / "node-red", mqtt_broker.port) as comms:
        wait_for_bus(url, process, STARTUP)
        same = publish_pair(SAME_PAIR, mqtt_broker.port, "nr-same")
        different = publish_pair(DIFFERENT_PAIR, mqtt_broker.port, "nr-diff")
        # The analytic decided as expected, so the routing below is what is tested.
        assert (same["decision"], different["decision"]) == (True, False)

        for request_id in ("nr-same", "nr-diff"):
            comms.wait_for(lambda e, r=request_id: e["topic"] == "debug"
                           and f'"request_id":"{r}"' in e["data"].get("msg", ""), 30)
        comms.drain(1.0)

    shown = comms.debug_messages()
    by_request = {payload["request_id"]: (node, payload) for node, payload in shown}
    assert len(shown) == 2 and set(by_request) == {"nr-same", "nr-diff"}, shown
    node, payload = by_request["nr-same"]
    assert (node, payload["decision"]) == (same_node["id"], True)
    assert payload["analysis_id"] == same["analysis_id"]
    node, payload = by_request["nr-diff"]
    assert (node, payload["decision"]) == (different_node["id"], False)
    assert payload["analysis_id"] == different["analysis_id"]
