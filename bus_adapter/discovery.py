"""Home Assistant MQTT discovery: the analytic shows up as a device with two entities, plus
one "who spoke last" sensor per site once that site has had an identification.

Both entities read the ordinary result topic (no extra state topic to keep in step), and both
use ``<prefix>/status`` for availability, so Home Assistant greys them out when the analytic's
last will fires. The configs are retained, and re-sent whenever Home Assistant announces
``online`` (it may have restarted and lost non-retained state).
"""

from __future__ import annotations

import json
from typing import Any

from analytic import __version__
from bus_adapter.topics import Topics


def discovery_messages(topics: Topics) -> list[tuple[str, str]]:
    """``(config topic, JSON payload)`` pairs to publish retained; empty when discovery is off."""
    if not topics.discovery_prefix:
        return []
    node = topics.node_id
    common: dict[str, Any] = {
        "state_topic": topics.result,
        "json_attributes_topic": topics.result,
        **_availability_and_device(topics),
    }
    decision = {
        **common,
        "name": "Last decision",
        "unique_id": f"{node}_last_decision",
        "value_template": "{{ 'ON' if value_json.decision else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "icon": "mdi:account-voice",
    }
    score = {
        **common,
        "name": "Last score",
        "unique_id": f"{node}_last_score",
        "value_template": "{{ value_json.score }}",
        "state_class": "measurement",
        "icon": "mdi:account-check",
    }
    base = topics.discovery_prefix
    return [
        (f"{base}/binary_sensor/{node}/last_decision/config", json.dumps(decision)),
        (f"{base}/sensor/{node}/last_score/config", json.dumps(score)),
    ]


def speaker_discovery(topics: Topics, site: str) -> tuple[str, str] | None:
    """``(config topic, JSON payload)`` of the "who spoke last" sensor of one site, to publish
    retained; ``None`` when discovery is off.

    The state is the retained ``<prefix>/speaker/<site>`` JSON: the sensor shows ``speaker``
    (an external_id or ``unknown``) and carries score, threshold, time and analysis_id as
    attributes, so an automation can trigger on "alice spoke in the kitchen". ``site`` is
    already restricted to ``[A-Za-z0-9_-]`` (``analytic.schemas.Site``), a valid object id.
    """
    if not topics.discovery_prefix:
        return None
    node = topics.node_id
    state = topics.speaker(site)
    config = {
        "name": f"Speaker {site}",
        "unique_id": f"{node}_speaker_{site}",
        "state_topic": state,
        "value_template": "{{ value_json.speaker }}",
        "json_attributes_topic": state,
        "icon": "mdi:account-voice",
        **_availability_and_device(topics),
    }
    return f"{topics.discovery_prefix}/sensor/{node}/speaker_{site}/config", json.dumps(config)


def _availability_and_device(topics: Topics) -> dict[str, Any]:
    """What every entity shares: greyed out with ``<prefix>/status``, grouped as one device."""
    return {
        "availability_topic": topics.status,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"voicegate_{topics.node_id}"],
            "name": "Voicegate",
            "manufacturer": "Voicegate",
            "model": "Offline speaker verification",
            "sw_version": __version__,
        },
    }
