"""Topic names, all derived from one configurable prefix so a deployment can move them together.

Kept in one place because the adapter, the CLI, the discovery messages and the docs must agree.

Who sent a request is read from its topic, never from its payload: a device publishes on
``<prefix>/<device>/<kind>/request`` (and streams on ``<prefix>/<device>/stream/<session>/...``)
and hears back only under ``<prefix>/<device>/reply/...``. The broker's ACL binds ``<device>`` to
the client's user name (Mosquitto's ``pattern ... %u``), so a device can neither speak for
another nor read another's replies. The device named ``admin`` is the admin: enrolment and looser
thresholds are served on its topics only. The shared topics (``<prefix>/<kind>/request``,
``<prefix>/stream/...``) are a single-tenant mode: one anonymous device whose replies live under
``<prefix>/reply/...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

from bus_adapter.settings import BusSettings

MAX_TOPIC_BYTES = 65535  # MQTT's limit for a UTF-8 topic name

# Request kinds: each has <prefix>/<kind>/request and <prefix>/<kind>/result.
VERIFICATION = "verification"
ANALYSIS = "analysis"
ENROLMENT = "enrollment"  # the wire keeps its spelling: <prefix>/enrollment/request
IDENTIFY = "identify"
# Household verify ("is this alice?"): answers only (a stream's ``end``); its own topic so the
# pairwise verification topic keeps one payload shape for the policy engines reading it.
MEMBER_VERIFICATION = "member_verification"
# Liveness (issue 16): <prefix>/challenge/request asks for a one-time digit challenge, answered
# on <prefix>/challenge/result; <prefix>/member_verification/request is "is this alice?" with a
# file (and usually a challenge_id), answered on <prefix>/member_verification/result.
CHALLENGE = "challenge"
CHUNK, END = "chunk", "end"  # <prefix>/stream/<session>/chunk and .../end
STREAM, REPLY = "stream", "reply"
ADMIN = "admin"  # the device whose topics may enrol and loosen thresholds
REQUEST_KINDS = (VERIFICATION, ANALYSIS, ENROLMENT, IDENTIFY, MEMBER_VERIFICATION, CHALLENGE)
# Device names that would make a device's topics overlap the analytic's own topics (results,
# speaker states, the shared reply space); such a user name gets no answer, only an error.
RESERVED_DEVICES = frozenset({STREAM, REPLY, "speaker", "error", "status", *REQUEST_KINDS})


@dataclass(frozen=True)
class Incoming:
    """What a topic says about a message: who sent it and what it is.

    ``device`` is ``None`` on the shared (single-tenant) topics. ``kind`` is a request kind, or
    ``CHUNK`` / ``END`` with ``session`` set for a stream message.
    """

    device: str | None
    kind: str
    session: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.device == ADMIN


def is_reply_topic(topic: object) -> TypeGuard[str]:
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
    def from_settings(cls, settings: BusSettings) -> Topics:
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

    def device_request_of(self, kind: str, device: str = "+") -> str:
        """``<prefix>/<device>/<kind>/request``; ``+`` (the default) is the adapter's filter."""
        return f"{self.prefix}/{device}/{kind}/request"

    @property
    def stream_chunk_filter(self) -> str:
        return f"{self.prefix}/stream/+/chunk"

    @property
    def stream_end_filter(self) -> str:
        return f"{self.prefix}/stream/+/end"

    @property
    def device_stream_filters(self) -> list[str]:
        return [f"{self.prefix}/+/stream/+/{CHUNK}", f"{self.prefix}/+/stream/+/{END}"]

    def parse(self, topic: str) -> Incoming | None:
        """Sender and kind of a request or stream topic (shared or per-device), else ``None``.

        A per-device topic naming a reserved device parses with that device; the adapter
        refuses it (``RESERVED_DEVICES``)."""
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return None
        levels = topic[len(head):].split("/")
        if len(levels) == 2 and levels[1] == "request" and levels[0] in REQUEST_KINDS:
            return Incoming(None, levels[0])
        if len(levels) == 3 and levels[0] == STREAM and levels[2] in (CHUNK, END) and levels[1]:
            return Incoming(None, levels[2], levels[1])
        if not levels[0]:
            return None
        if len(levels) == 3 and levels[2] == "request" and levels[1] in REQUEST_KINDS:
            return Incoming(levels[0], levels[1])
        if (len(levels) == 4 and levels[1] == STREAM and levels[3] in (CHUNK, END)
                and levels[2]):
            return Incoming(levels[0], levels[3], levels[2])
        return None

    def reply_space(self, device: str | None) -> str:
        """Where ``device`` may ask for answers: ``<prefix>/<device>/reply``, or the shared
        ``<prefix>/reply`` on the shared topics."""
        return f"{self.prefix}/{device}/{REPLY}" if device is not None else self.reply_base

    def may_reply(self, topic: str, device: str | None) -> bool:
        """Is ``topic`` inside ``device``'s own reply space (and a publishable name)?"""
        space = self.reply_space(device)
        return is_reply_topic(topic) and (topic == space or topic.startswith(space + "/"))

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
