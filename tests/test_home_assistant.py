"""The Home Assistant example automation, run in a real Home Assistant, on real identifications.

tests/test_examples.py checks examples/home-assistant/automation-known-speaker.yaml statically;
this test runs it: Home Assistant 2023.12.4 from its own venv (script/setup-home-assistant,
pins in tests/home_assistant/requirements.txt), a private Mosquitto, and
``python -m analytic serve`` as a real process. The automation is copied UNCHANGED as the
configuration's automations.yaml. Three cases, in the order a household meets them:

- a stale retained state (10 minutes old, already on the broker when Home Assistant connects)
  does NOT switch the light: the age condition rejects it;
- a real identification of an enrolled member in the kitchen switches it on;
- a real identification of a stranger (``unknown``) does not.

How the test observes Home Assistant, with no API token: ``light.kitchen`` is an MQTT light
whose every ``turn_on`` publishes ``ON`` on a command topic the test subscribes to; the
automation's decisions come from Home Assistant's own log (``Running automation actions``, and
at debug level ``Conditions not met`` with the trigger payload and each condition's result), so
a light that stays off is seen to have been decided, not merely missed. ``mqtt_statestream``
republishes the states of ``light.kitchen`` and of the sensor the analytic's MQTT discovery
config created, so the test also sees the discovery config work in Home Assistant.

Home Assistant runs with ``--skip-pip`` (it installs nothing), on 127.0.0.1 only, from a minimal
configuration without ``default_config``: no frontend, cloud, analytics or updater. A missing
or outdated Home Assistant venv FAILS the test (CI must not skip it silently).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template

import pytest
import requests

from tests.conftest import FEMALE_STRANGER, MALE_A, free_port, stop_process
from tests.mqtt_broker import BusProbe, Received
from tests.test_bus_process import STARTUP, analytic_process, wait_for_bus

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ROOT = Path(__file__).resolve().parent.parent
AUTOMATION = ROOT / "examples" / "home-assistant" / "automation-known-speaker.yaml"
TEMPLATES = Path(__file__).resolve().parent / "home_assistant"
REQUIREMENTS = TEMPLATES / "requirements.txt"
VENV = ROOT / ".cache" / "home-assistant" / "venv"
HASS = VENV / "bin" / "hass"
STAMP = VENV / "installed-requirements.txt"  # written by script/setup-home-assistant when done

SITE = "kitchen"
SPEAKER_TOPIC = f"voicegate/speaker/{SITE}"
LIGHT_COMMAND = "voicegate-test/light/kitchen/set"  # tests/home_assistant/configuration.yaml
STATESTREAM = "voicegate-test/state"
SPEAKER_SENSOR = "sensor.voicegate_speaker_kitchen"  # Voicegate device + "Speaker kitchen"
# What bus_adapter/discovery.py's three configs become (entity_registry logs "Registered new").
DISCOVERED = (SPEAKER_SENSOR, "sensor.voicegate_last_score",
              "binary_sensor.voicegate_last_decision")
MEMBER = "alice"
HASS_START = 120.0  # seconds; about 3 s on an idle machine
DECIDED = 30.0  # from a publish to the automation's decision in the log
QUIET = 2.0  # how long a light command that should not come is waited for, after the decision
TRIGGER_READY = "Initialized trigger"  # the automation, once Home Assistant has started
RUNNING = "Running automation actions"
NOT_MET = "Conditions not met, aborting automation"
# In a "Conditions not met" line: 'condition/0': deque([{'path': ..., 'timestamp':
# datetime.datetime(...), 'result': {'result': False, ...
CONDITION = re.compile(r"'condition/(\d+)': deque\(\[\{'path': '[^']*', 'timestamp': "
                       r"datetime\.datetime\([^)]*\), 'result': \{'result': (True|False)")
# Lines Home Assistant logs on every start of this configuration, harmless here: --skip-pip is
# meant, and the mqtt integration loads every platform, camera too, which needs numpy.
EXPECTED_NOISE = ("Skipping pip installation of required modules",
                  "Setup failed for 'camera': Unable to import component: No module named")


def require_home_assistant() -> None:
    """Fail (never skip) without the pinned Home Assistant venv: CI must run this test."""
    if not HASS.exists() or not STAMP.exists():
        pytest.fail(f"Home Assistant is not installed in {VENV}: run script/setup-home-assistant")
    if STAMP.read_text() != REQUIREMENTS.read_text():
        pytest.fail(f"{VENV} does not hold the pins of {REQUIREMENTS.relative_to(ROOT)}: "
                    "run script/setup-home-assistant")


def write_config_dir(config_dir: Path, broker_port: int, http_port: int) -> None:
    """A Home Assistant configuration directory: the template, the example automation
    unchanged, and the MQTT config entry (the only place the broker can be set)."""
    storage = config_dir / ".storage"
    storage.mkdir(parents=True)
    template = Template((TEMPLATES / "configuration.yaml").read_text())
    (config_dir / "configuration.yaml").write_text(template.substitute(http_port=http_port))
    shutil.copyfile(AUTOMATION, config_dir / "automations.yaml")
    # What the MQTT config flow would store (config_entries.ConfigEntry.as_dict, version 1).
    entry = {
        "entry_id": "voicegatetestmqttbroker", "version": 1, "domain": "mqtt",
        "title": "127.0.0.1", "source": "user", "unique_id": None, "disabled_by": None,
        "data": {"broker": "127.0.0.1", "port": broker_port, "discovery": True},
        "options": {}, "pref_disable_new_entities": False, "pref_disable_polling": False,
    }
    (storage / "core.config_entries").write_text(json.dumps({
        "version": 1, "minor_version": 1, "key": "core.config_entries",
        "data": {"entries": [entry]},
    }))


class HassLog:
    """Home Assistant's log file (``<config>/home-assistant.log``), read as it grows."""

    def __init__(self, path: Path, process: subprocess.Popen[bytes]) -> None:
        """``process`` is watched while waiting: a Home Assistant that exits fails at once."""
        self.path = path
        self.process = process

    def lines(self) -> list[str]:
        """Every line so far (none before Home Assistant has set up its logging)."""
        return self.path.read_text(errors="replace").splitlines() if self.path.exists() else []

    def wait_for(
        self,
        predicate: Callable[[str], bool],
        timeout: float,
        what: str,
        give_up: Callable[[], str | None] = lambda: None,
    ) -> str:
        """The first line matching ``predicate``, waiting up to ``timeout`` seconds; fails at
        once when ``give_up()`` says why the line will never come."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if predicate(line):
                    return line
            if (reason := give_up()) is not None:
                raise AssertionError(f"{reason} waiting for {what}:\n{self.tail()}")
            if self.process.poll() is not None:
                raise AssertionError(f"Home Assistant exited ({self.process.returncode}) "
                                     f"waiting for {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.tail()}")
            time.sleep(0.1)

    def rejection(self, analysis_id: str, bus: BusProbe) -> dict[int, bool]:
        """Each evaluated condition's result for the trigger whose payload carried
        ``analysis_id``, once the automation has logged that its conditions were not met.
        A light command meanwhile fails at once: the automation did run."""
        before = len(light_commands(bus))

        def switched() -> str | None:
            return "light.kitchen was switched on" if len(light_commands(bus)) > before else None

        line = self.wait_for(lambda line: NOT_MET in line and analysis_id in line, DECIDED,
                             f"'{NOT_MET}' for {analysis_id}", switched)
        return {int(n): result == "True" for n, result in CONDITION.findall(line)}

    def count(self, text: str) -> int:
        """How many lines so far contain ``text``."""
        return sum(text in line for line in self.lines())

    def problems(self) -> list[str]:
        """WARNING and ERROR lines (a bad template in the example would show here)."""
        return [line for line in self.lines()
                if re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) ", line)
                and not any(noise in line for noise in EXPECTED_NOISE)]

    def tail(self, count: int = 40) -> str:
        """The last lines, for failure messages."""
        return "\n".join(self.lines()[-count:])


@contextmanager
def home_assistant(config_dir: Path) -> Iterator[HassLog]:
    """``hass`` running ``config_dir``, stopped on the way out whatever happened (SIGTERM, and
    SIGKILL if it does not stop in time). Yields at once: the caller waits for what it needs."""
    require_home_assistant()
    with (config_dir.parent / "hass.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            [str(HASS), "--config", str(config_dir), "--skip-pip", "--log-no-color"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    log = HassLog(config_dir / "home-assistant.log", process)
    try:
        yield log
    except BaseException:
        print(f"--- Home Assistant log (tail) ---\n{log.tail(80)}")  # shown on failure
        raise
    finally:
        stop_process(process, 30)


def speaker_state(speaker: str, age: timedelta, analysis_id: str) -> str:
    """A ``voicegate/speaker/<site>`` payload as bus_adapter publishes it, ``age`` old."""
    when = datetime.now(UTC) - age
    return json.dumps({
        "speaker": speaker, "score": 4.2, "threshold": 3.07, "analysis_id": analysis_id,
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    })


def identify(base_url: str, clip: Path) -> dict:
    """``POST /identify`` with ``site=kitchen``, as a kitchen microphone would send it."""
    response = requests.post(f"{base_url}/identify", data={"site": SITE},
                             files={"file": (clip.name, clip.read_bytes())}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def light_commands(bus: BusProbe) -> list[bytes]:
    """Every command Home Assistant sent light.kitchen so far: one per light.turn_on."""
    return [m.payload for m in bus.matching(lambda m: m.topic == LIGHT_COMMAND)]


def streamed(entity_id: str, value: bytes) -> Callable[[Received], bool]:
    """An mqtt_statestream message saying ``entity_id`` has the state ``value``."""
    domain, name = entity_id.split(".")
    return lambda m: m.topic == f"{STATESTREAM}/{domain}/{name}/state" and m.payload == value


def test_the_example_automation_switches_the_light_for_known_speakers_only(
    mqtt_broker, tmp_path
):
    """One Home Assistant and one analytic for all three cases: starting them is most of the
    time, and the cases come in the order a real kitchen sees them (restart, member, stranger).
    """
    require_home_assistant()  # before anything starts: say at once what is missing
    config_dir = tmp_path / "home-assistant"
    write_config_dir(config_dir, mqtt_broker.port, free_port())
    bus = BusProbe(mqtt_broker.port, [LIGHT_COMMAND, f"{STATESTREAM}/#"])
    try:
        # 1. A state 10 minutes old, retained on the broker before Home Assistant connects:
        # what Home Assistant receives on every (re)start. The age condition must reject it.
        bus.publish(SPEAKER_TOPIC, speaker_state(MEMBER, timedelta(minutes=10), "stale-state"),
                    retain=True).wait_for_publish(10)

        # The analytic loads its model while Home Assistant starts.
        with analytic_process(mqtt_broker.port, tmp_path / "analytic.log") as (process, url), \
                home_assistant(config_dir) as hass:
            hass.wait_for(lambda line: TRIGGER_READY in line, HASS_START, "the trigger set up")
            assert hass.rejection("stale-state", bus) == {0: True, 1: False}, \
                "the stale state was not rejected by the age condition"
            assert light_commands(bus) == []

            wait_for_bus(url, process, STARTUP)
            enrolled = requests.post(
                f"{url}/enrollments", data={"external_id": MEMBER},
                files=[("file", (p.name, p.read_bytes())) for p in MALE_A[:2]], timeout=60)
            assert enrolled.status_code == 200, enrolled.text

            # 2. The member speaks in the kitchen: the light is switched on.
            known = identify(url, MALE_A[2])
            assert known["match"] == MEMBER, known
            bus.wait_for(lambda m: m.topic == LIGHT_COMMAND and m.payload == b"ON", DECIDED)
            bus.wait_for(streamed("light.kitchen", b"on"), DECIDED)
            # The analytic's discovery configs made its entities; this sensor shows who spoke.
            bus.wait_for(streamed(SPEAKER_SENSOR, MEMBER.encode()), DECIDED)
            for entity_id in DISCOVERED:
                hass.wait_for(lambda line, e=entity_id: line.endswith(f" entity: {e}"), DECIDED,
                              f"the discovered entity {entity_id}")
            assert hass.count(RUNNING) == 1

            # 3. A stranger in the kitchen: "unknown" is rejected by the first condition.
            stranger = identify(url, FEMALE_STRANGER)
            assert stranger["match"] is None, stranger
            assert hass.rejection(stranger["analysis_id"], bus) == {0: False}, \
                "the unknown speaker was not rejected by the speaker condition"
            bus.wait_for(streamed(SPEAKER_SENSOR, b"unknown"), DECIDED)
            time.sleep(QUIET)  # a wrongly sent command would have come by now
            assert light_commands(bus) == [b"ON"]
            assert hass.count(RUNNING) == 1
            assert hass.problems() == []
    finally:
        bus.close()
