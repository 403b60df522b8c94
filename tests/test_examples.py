"""The Home Assistant and Node-RED examples use the topics and fields the analytic publishes.

Checked here statically, in a second: parsed, and every topic, id and field they name compared
with what ``bus_adapter`` builds (``Topics``, ``speaker_discovery``, ``SpeakerState``,
``VerificationResult``), so a renamed topic or field breaks a test naming it. Both are also run
for real: the flow in Node-RED (tests/test_node_red.py), the automation in Home Assistant
(tests/test_home_assistant.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from analytic.schemas import VerificationResult
from bus_adapter.discovery import speaker_discovery
from bus_adapter.messages import SpeakerState
from bus_adapter.publishing import UNKNOWN_SPEAKER
from bus_adapter.topics import Topics

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HA_AUTOMATION = EXAMPLES / "home-assistant" / "automation-known-speaker.yaml"
NODE_RED_FLOW = EXAMPLES / "node-red" / "verification-router.json"
SITE = "kitchen"


@pytest.fixture(scope="module")
def automation() -> dict:
    """The one automation of the file (a list, as automations.yaml holds)."""
    loaded = yaml.safe_load(HA_AUTOMATION.read_text())
    assert isinstance(loaded, list) and len(loaded) == 1
    return loaded[0]


@pytest.fixture(scope="module")
def flow() -> dict[str, dict]:
    nodes = json.loads(NODE_RED_FLOW.read_text())
    ids = [node["id"] for node in nodes]
    assert len(ids) == len(set(ids)), "node ids repeat"
    return {node["id"]: node for node in nodes}


def templates_of(automation: dict) -> str:
    return " ".join(c["value_template"] for c in automation["condition"])


def test_the_automation_triggers_on_the_speaker_topic_of_its_site(automation: dict):
    (trigger,) = automation["trigger"]
    assert trigger["platform"] == "mqtt"
    assert trigger["topic"] == Topics().speaker(SITE)
    _, config = speaker_discovery(Topics(), SITE)  # type: ignore[misc]
    assert json.loads(config)["state_topic"] == trigger["topic"]


def test_the_automation_reads_only_fields_the_speaker_state_has(automation: dict):
    used = set(re.findall(r"trigger\.payload_json\.(\w+)", templates_of(automation)))
    assert used == {"speaker", "time"}
    assert used <= set(SpeakerState.model_fields)


def test_the_automation_skips_strangers_and_old_retained_states(automation: dict):
    templates = templates_of(automation)
    assert f"'{UNKNOWN_SPEAKER}'" in templates
    assert "as_datetime(trigger.payload_json.time)" in templates
    (action,) = automation["action"]
    assert action["service"] == "light.turn_on"
    assert action["target"]["entity_id"].startswith("light.")


def test_the_automation_names_the_sensor_discovery_creates():
    _, config = speaker_discovery(Topics(), SITE)  # type: ignore[misc]
    unique_id = json.loads(config)["unique_id"]
    assert f"(unique_id {unique_id})" in HA_AUTOMATION.read_text()
    assert json.loads(config)["value_template"] == "{{ value_json.speaker }}"


def wired(flow: dict[str, dict], node: dict) -> list[dict]:
    """The nodes ``node``'s outputs lead to, output by output (one per output here)."""
    targets = []
    for output in node["wires"]:
        assert len(output) == 1
        targets.append(flow[output[0]])
    return targets


def test_the_flow_subscribes_to_the_verification_result_topic(flow: dict[str, dict]):
    (mqtt_in,) = [n for n in flow.values() if n["type"] == "mqtt in"]
    assert mqtt_in["topic"] == Topics().result
    broker = flow[mqtt_in["broker"]]
    assert broker["type"] == "mqtt-broker"
    assert (broker["broker"], broker["port"]) == ("127.0.0.1", "1883")
    tab = {n["id"] for n in flow.values() if n["type"] == "tab"}
    assert all(n["z"] in tab for n in flow.values() if "z" in n)


def test_the_flow_parses_json_then_routes_on_decision(flow: dict[str, dict]):
    (mqtt_in,) = [n for n in flow.values() if n["type"] == "mqtt in"]
    (parse,) = wired(flow, mqtt_in)
    assert (parse["type"], parse["property"], parse["action"]) == ("json", "payload", "obj")
    (switch,) = wired(flow, parse)
    assert switch["type"] == "switch"
    assert (switch["propertyType"], switch["property"]) == ("msg", "payload.decision")
    field = switch["property"].split(".", 1)[1]
    assert VerificationResult.model_fields[field].annotation is bool
    assert [rule["t"] for rule in switch["rules"]] == ["true", "false"]
    assert switch["outputs"] == len(switch["wires"]) == 2
    same, different = wired(flow, switch)
    assert "Same Speaker" in same["name"] and "Different Speaker" in different["name"]
