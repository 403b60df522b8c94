"""Topic names, all derived from one configurable prefix so a deployment can move them together.

Kept in one place because the adapter, the CLI, the discovery messages and the docs must agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analytic.settings import Settings

MAX_TOPIC_BYTES = 65535  # MQTT's limit for a UTF-8 topic name

# Request kinds: each has <prefix>/<kind>/request and <prefix>/<kind>/result.
VERIFICATION = "verification"
ANALYSIS = "analysis"
ENROLLMENT = "enrollment"
IDENTIFY = "identify"
# Household verify ("is this alice?"): answers only (a stream's ``end``); its own topic so the
# pairwise verification topic keeps one payload shape for the policy engines reading it.
MEMBER_VERIFICATION = "member_verification"
# Liveness (issue 16): <prefix>/challenge/request asks for a one-time digit challenge, answered
# on <prefix>/challenge/result; <prefix>/member_verification/request is "is this alice?" with a
# file (and usually a challenge_id), answered on <prefix>/member_verification/result.
CHALLENGE = "challenge"
CHUNK, END = "chunk", "end"  # <prefix>/stream/<session>/chunk and .../end


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
        return self.request_of(VERIFICATION)

    @property
    def request_filter(self) -> str:
        """What the adapter subscribes to: a shared subscription when a group is configured,
        so the broker hands each request to exactly one instance of the group."""
        return self.shared(self.request)

    def shared(self, topic: str) -> str:
        """``topic`` as this instance subscribes to it: ``$share/<group>/...`` in a group."""
        if self.share_group:
            return f"$share/{self.share_group}/{topic}"
        return topic

    @property
    def result(self) -> str:
        return self.result_of(VERIFICATION)

    def request_of(self, kind: str) -> str:
        """``<prefix>/<kind>/request``: verification, analysis, enrollment, identify."""
        return f"{self.prefix}/{kind}/request"

    def result_of(self, kind: str) -> str:
        """``<prefix>/<kind>/result``; every kind's answers, whichever door asked for them."""
        return f"{self.prefix}/{kind}/result"

    @property
    def stream_chunk_filter(self) -> str:
        return f"{self.prefix}/stream/+/chunk"

    @property
    def stream_end_filter(self) -> str:
        return f"{self.prefix}/stream/+/end"

    def stream_message(self, topic: str) -> tuple[str, str] | None:
        """``(session, "chunk" | "end")`` for a stream topic, else ``None``."""
        head = f"{self.prefix}/stream/"
        if not topic.startswith(head):
            return None
        session, _, last = topic[len(head):].rpartition("/")
        if not session or "/" in session or last not in (CHUNK, END):
            return None
        return session, last

    def speaker(self, site: str) -> str:
        """The retained "who spoke last" state of one site."""
        return f"{self.prefix}/speaker/{site}"

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
