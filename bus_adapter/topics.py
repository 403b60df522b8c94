"""Topic names, all derived from one configurable prefix so a deployment can move them together.

Kept in one place because the adapter, the CLI, the discovery messages and the docs must agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analytic.settings import Settings

MAX_TOPIC_BYTES = 65535  # MQTT's limit for a UTF-8 topic name


def is_reply_topic(topic: object) -> bool:
    """A topic a requester may ask us to answer on: a concrete name, not a filter or ``$SYS``.

    Wildcards would make paho refuse the publish; ``$``-topics belong to the broker.
    """
    return (
        isinstance(topic, str)
        and 0 < len(topic.encode("utf-8")) <= MAX_TOPIC_BYTES
        and not topic.startswith("$")
        and "+" not in topic
        and "#" not in topic
        and "\x00" not in topic
    )


@dataclass(frozen=True)
class Topics:
    """Every topic the adapter uses, from the ``mqtt_*`` settings."""

    prefix: str = "voicegate"
    share_group: str | None = None
    discovery_prefix: str = "homeassistant"
    sifis: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(
            prefix=settings.mqtt_prefix,
            share_group=settings.mqtt_share_group or None,
            discovery_prefix=settings.mqtt_discovery_prefix,
            sifis=settings.mqtt_sifis_topic,
        )

    @property
    def request(self) -> str:
        return f"{self.prefix}/verification/request"

    @property
    def request_filter(self) -> str:
        """What the adapter subscribes to: a shared subscription when a group is configured,
        so the broker hands each request to exactly one instance of the group."""
        if self.share_group:
            return f"$share/{self.share_group}/{self.request}"
        return self.request

    @property
    def result(self) -> str:
        return f"{self.prefix}/verification/result"

    @property
    def error(self) -> str:
        return f"{self.prefix}/error"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    @property
    def reply_base(self) -> str:
        """Where ``publish_pair`` asks for its private MQTT 5 responses."""
        return f"{self.prefix}/reply"

    @property
    def ha_status(self) -> str | None:
        """Home Assistant's birth/last-will topic; ``None`` when discovery is off."""
        return f"{self.discovery_prefix}/status" if self.discovery_prefix else None

    @property
    def node_id(self) -> str:
        """The prefix made safe for a Home Assistant discovery node id (``[a-zA-Z0-9_-]``)."""
        return re.sub(r"[^a-zA-Z0-9_-]", "_", self.prefix)
