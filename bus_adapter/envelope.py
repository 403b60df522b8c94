"""Bus messages as plain data, without paho: what arrives, what leaves, where a reply goes.

The session (``bus_adapter/session.py``) turns paho's messages into ``Inbound`` and ``Outbound``
into paho publishes; everything between (decoding, dispatch, publishing) sees only these, so
it can be exercised without a broker (``tests/test_bus_brokerless.py``), as Home Assistant's MQTT
component keeps its message models apart from its client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class Delivery(Protocol):
    """How one received message is settled with the broker (QoS 1, manual acknowledgement)."""

    def ack(self) -> None:
        """Acknowledge: the broker will not deliver the message again."""

    def superseded(self) -> bool:
        """``True`` when a newer connection resumed the session: the broker delivers the
        message again there, so serving this copy would answer it twice."""


class NoDelivery:
    """Nothing to settle (QoS 0, or a message built by hand)."""

    def ack(self) -> None:
        return None

    def superseded(self) -> bool:
        return False


@dataclass(frozen=True)
class Inbound:
    """One received message: its topic, its bytes, and the MQTT 5 properties we read."""

    topic: str
    payload: bytes
    response_topic: str | None = None  # MQTT 5 Response Topic
    correlation_data: bytes | None = None  # MQTT 5 Correlation Data, echoed unchanged
    content_type: str | None = None  # MQTT 5 Content Type (a stream chunk's format)
    delivery: Delivery = field(default_factory=NoDelivery, compare=False)


@dataclass(frozen=True)
class Outbound:
    """One message to publish, always at QoS 1."""

    topic: str
    payload: str | bytes
    retain: bool = False
    json_payload: bool = False  # marked as UTF-8 ``application/json`` (MQTT 5 properties)
    correlation_data: bytes | None = None


@dataclass(frozen=True)
class ReplyRoute:
    """Where a requester asked to hear back, besides the shared result/error topics; each
    topic is already checked to lie inside the requester's reply space."""

    response_topic: str | None = None  # MQTT 5 Response Topic property
    correlation_data: bytes | None = None  # MQTT 5 Correlation Data, echoed unchanged
    reply_to: str | None = None  # the request's JSON field
