"""One version everywhere: ``analytic.__version__``, the package metadata, the changelog, and
what Home Assistant shows as the device's firmware (``sw_version``), so a user can tell which
release answers on their bus."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from analytic import __version__
from bus_adapter.discovery import discovery_messages, speaker_discovery
from bus_adapter.topics import Topics

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_version_is_analytic_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "analytic.__version__"
    }


def test_the_changelog_latest_release_is_the_current_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert releases and releases[0] == __version__
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{__version__}]")


def test_every_discovered_entity_reports_the_version_as_sw_version():
    topics = Topics(prefix="home/voicegate")
    payloads = [json.loads(payload) for _, payload in discovery_messages(topics)]
    payloads.append(json.loads(speaker_discovery(topics, "hall")[1]))  # type: ignore[index]
    assert len(payloads) == 3
    for payload in payloads:
        assert payload["device"]["sw_version"] == __version__
        assert payload["device"]["identifiers"] == ["voicegate_home_voicegate"]
