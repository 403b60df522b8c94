"""Static checks of the Docker deployment: what can be verified without a Docker engine.

The development machines and CI have no Docker engine, so the image is never built here. These
tests keep the Dockerfile, docker-compose.yml, the Mosquitto config, script/setup, pyproject
and the README from drifting apart: a wrong port, a missing mount or a torch that is not the
pinned CPU build would otherwise only show on a user's machine. The manual they are checked
against is docs/deployment.md.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from analytic.cli.settings import Settings

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = ROOT / "docs" / "deployment.md"
TORCH_PIN = "torch==2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last ``FROM`` stage: what the running container is."""
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    """``ENV`` values of a stage (the ``KEY=value`` form the Dockerfile uses)."""
    values: dict[str, str] = {}
    for name, args in stage:
        if name == "ENV":
            for pair in args.split():
                key, _, value = pair.partition("=")
                values[key] = value
    return values


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def container_ports(service: dict) -> dict[int, str]:
    """container port -> host address of each ``host:port:container`` mapping."""
    mapped = {}
    for entry in service["ports"]:
        host_ip, host_port, container = str(entry).rsplit(":", 2)
        assert host_port == container, f"{entry}: host and container ports differ"
        mapped[int(container)] = host_ip
    return mapped


def test_compose_runs_the_analytic_beside_eclipse_mosquitto(compose: dict):
    services = compose["services"]
    assert set(services) == {"analytic", "mosquitto"}
    image = services["mosquitto"]["image"]
    assert image.startswith("eclipse-mosquitto:")
    manual = DEPLOYMENT.read_text()
    assert f"`{image}`" in manual, "docs/deployment.md names another Mosquitto image"
    assert services["analytic"]["build"] == "."
    assert "mosquitto" in services["analytic"]["depends_on"]


def test_compose_publishes_the_documented_ports_on_loopback_only(compose: dict):
    services = compose["services"]
    assert container_ports(services["analytic"]) == {Settings().port: "127.0.0.1"}
    assert container_ports(services["mosquitto"]) == {1883: "127.0.0.1"}
    manual = " ".join(DEPLOYMENT.read_text().split())
    assert "`docker-compose.yml` publishes both ports on `127.0.0.1` only" in manual


def test_the_analytic_container_reaches_the_broker_and_listens_beyond_its_loopback(
    compose: dict,
):
    env = {k: str(v) for k, v in compose["services"]["analytic"]["environment"].items()}
    assert env["VOICEGATE_MQTT_HOST"] == "mosquitto"  # the compose service name
    assert env["VOICEGATE_MQTT_PORT"] == "1883"
    # Inside the container, 127.0.0.1 would be unreachable through the published port.
    assert env.get("VOICEGATE_HOST", env_of(final_stage()).get("VOICEGATE_HOST")) == "0.0.0.0"


def test_serve_agrees_to_start_with_the_compose_settings(compose: dict, monkeypatch):
    """The image binds 0.0.0.0 (the published port cannot reach the container's loopback), so
    compose must satisfy serve's rule for non-loopback addresses or the container would exit
    at once and restart forever."""
    from analytic.web.auth import bind_refusal

    env = {**env_of(final_stage()), **compose["services"]["analytic"]["environment"]}
    for key, value in env.items():
        if key.startswith("VOICEGATE_"):
            monkeypatch.setenv(key, str(value))
    settings = Settings()
    assert settings.host == "0.0.0.0"
    assert bind_refusal(settings) is None
    # The opt-in is only defensible while the port is published on loopback alone.
    if not (settings.api_token or settings.admin_token):
        assert set(container_ports(compose["services"]["analytic"]).values()) == {"127.0.0.1"}


def test_the_mosquitto_config_compose_mounts_exists_and_fits_the_analytic(compose: dict):
    mounts = [str(v) for v in compose["services"]["mosquitto"]["volumes"]]
    config = next(m for m in mounts if m.split(":")[1] == "/mosquitto/config/mosquitto.conf")
    source = ROOT / config.split(":")[0]
    assert source.is_file(), f"{source} is mounted but missing"
    settings = dict(
        line.split(None, 1) for line in source.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert settings["listener"].strip() == "1883"
    assert settings["persistence"].strip() == "true"  # queued requests survive a restart
    persistence = settings["persistence_location"].strip().rstrip("/")
    assert any(m.split(":")[1].rstrip("/") == persistence for m in mounts), \
        "Mosquitto's persistence folder is not on a volume"
    # The broker must not cut off what the analytic would still accept.
    assert int(settings["max_packet_size"]) > Settings().mqtt_max_payload_bytes


def test_voiceprints_live_on_a_volume(compose: dict):
    """Enrolments must survive ``docker compose up --build`` re-creating the container."""
    data_dir = env_of(final_stage())["VOICEGATE_DATA_DIR"]
    mounts = [str(v) for v in compose["services"]["analytic"]["volumes"]]
    assert any(m.split(":")[1] == data_dir for m in mounts)
    named = {m.split(":")[0] for m in mounts}
    assert named <= set(compose["volumes"])


def test_the_image_runs_as_a_non_root_user_with_the_folders_it_writes():
    stage = final_stage()
    users = [args.strip() for name, args in stage if name == "USER"]
    assert users, "the final stage has no USER: the container would run as root"
    assert users[-1] not in {"root", "0", "0:0"}
    created = " ".join(args for name, args in stage if name == "RUN")
    assert f"useradd --create-home --uid 10001 {users[-1]}" in created
    # A named volume takes the owner of the folder it is mounted on when first created.
    data_dir = env_of(stage)["VOICEGATE_DATA_DIR"]
    assert data_dir in created and "chown" in created


def test_the_image_exposes_the_port_and_checks_health_on_it():
    stage = final_stage()
    assert [args.strip() for name, args in stage if name == "EXPOSE"] == [str(Settings().port)]
    env = env_of(stage)
    assert env["VOICEGATE_PORT"] == str(Settings().port)
    checks = [args for name, args in stage if name == "HEALTHCHECK"]
    assert len(checks) == 1
    assert f"http://127.0.0.1:{Settings().port}/health" in checks[0]
    cmd = [args for name, args in stage if name == "CMD"]
    assert cmd == ['["python", "-m", "analytic", "serve"]']


def test_torch_is_the_pinned_cpu_build_everywhere_and_installed_first():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert TORCH_PIN in pyproject["project"]["dependencies"]
    setup = (ROOT / "script" / "setup").read_text()
    assert f"{TORCH_PIN} --index-url {CPU_INDEX}" in setup
    runs = [args for name, args in dockerfile_instructions() if name == "RUN"]
    torch_step = next(i for i, run in enumerate(runs) if "torch" in run)
    assert f"pip install --no-cache-dir {TORCH_PIN} --index-url {CPU_INDEX}" in runs[torch_step]
    # Then the package, as script/setup does; after torch, so pip keeps the CPU build.
    package_step = next(i for i, run in enumerate(runs)
                        if re.search(r"pip install --no-cache-dir \.(\s|$)", run))
    assert torch_step < package_step
    assert re.search(r'pip install --quiet -e "\.\$\{extras\}"', setup)
    assert setup.index(TORCH_PIN) < setup.index('pip install --quiet -e "')


def test_the_image_is_built_from_what_the_package_is_made_of():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = " ".join(args for name, args in dockerfile_instructions() if name == "COPY")
    for package in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        folder = package.rstrip("*")
        assert f"{folder} ./{folder}" in copied, f"the image does not copy {folder}/"
    assert "pyproject.toml README.md ./" in copied  # README: the package's readme
    python = next(args for name, args in dockerfile_instructions() if name == "FROM")
    assert python.startswith("python:3.11")
    assert pyproject["project"]["requires-python"] == ">=3.11,<3.12"


def test_the_manual_says_the_image_is_unverified():
    docker = DEPLOYMENT.read_text().split("## Docker", 1)[1].split("\n## ", 1)[0]
    assert "Unverified here" in docker and "no Docker engine" in docker
