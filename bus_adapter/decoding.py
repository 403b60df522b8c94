"""Request decoding: a payload's bytes to one pydantic model, or a refusal naming a code.

In the order the bus answers them: a payload over ``mqtt_max_payload_bytes`` is ``too_large``
(before any parsing); an empty one, broken JSON or JSON that is not an object is ``bad_json``;
a reply topic (``reply_to`` or the MQTT 5 Response Topic) that is a topic name but lies outside
the sender's reply space is ``reply_not_allowed``; then the request's model refuses what HTTP
would (``bad_field``, ``bad_base64``, ``bad_output_period``, worded as HTTP words them, never
quoting the input). Refusals carry the request's id, read best-effort even from a payload that
is not parsed, so a requester can match the error to its request. Nothing here touches the
network: ``tests/test_bus_brokerless.py`` calls it with hand-made messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from analytic.schemas import refusal
from bus_adapter.envelope import Inbound, ReplyRoute
from bus_adapter.messages import ACTIONS, BAD_BASE64, peek_request_id
from bus_adapter.topics import RESERVED_DEVICES, Incoming, Topics, is_reply_topic


class Refusal(Exception):
    """A request answered with an error (``BusError``) instead of a result."""

    def __init__(self, code: str, message: str, request_id: str | None = None,
                 reply_to: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id
        self.reply_to = reply_to  # already inside the sender's reply space


@dataclass(frozen=True)
class Header:
    """A request's JSON object and the bus-level fields read before its model."""

    document: dict[str, Any]
    request_id: str | None
    reply_to: str | None  # asked for, and inside the sender's reply space; else None


def may_reply(topics: Topics, topic: str, sender: Incoming) -> bool:
    """Is ``topic`` inside the sender's own reply space? Never for a reserved device name."""
    return sender.device not in RESERVED_DEVICES and topics.may_reply(topic, sender.device)


def read_header(message: Inbound, sender: Incoming, topics: Topics, limit: int) -> Header:
    """The request's JSON object, its ``request_id`` and its allowed ``reply_to``; raises
    ``Refusal`` (``too_large``, ``bad_json``, ``reply_not_allowed``)."""
    payload = message.payload
    if len(payload) > limit:
        raise Refusal("too_large", f"request payload larger than {limit} bytes",
                      peek_request_id(payload))
    if not payload.strip():
        raise Refusal("bad_json", "the request is empty")
    try:
        document = json.loads(payload)
    except ValueError:  # includes bad UTF-8
        raise Refusal("bad_json", "the request is not valid JSON",
                      peek_request_id(payload)) from None
    if not isinstance(document, dict):
        raise Refusal("bad_json", "the request must be a JSON object")
    request_id = document.get("request_id")
    request_id = request_id if isinstance(request_id, str) else None
    asked = document.get("reply_to")
    reply_to = asked if isinstance(asked, str) and may_reply(topics, asked, sender) else None
    # A topic name outside the device's reply space is refused; a malformed one (a
    # wildcard) is the request model's ``bad_field``.
    outside = [t for t in (asked, message.response_topic) if is_reply_topic(t)
               and not may_reply(topics, t, sender)]
    if outside:
        raise Refusal("reply_not_allowed",
                      f"replies go only under {topics.reply_space(sender.device)}/...",
                      request_id, reply_to)
    return Header(document, request_id, reply_to)


def parse(header: Header, model: Callable[[Any], Any]) -> Any:
    """The request's model (``model`` is a kind's ``parse``); raises ``Refusal``."""
    try:
        return model(header.document)
    except ValidationError as exc:
        error = refusal(exc, own_codes=(BAD_BASE64,), union_members=ACTIONS)
        raise Refusal(error.code, error.message, header.request_id, header.reply_to) from None


def reply_route(message: Inbound, sender: Incoming, topics: Topics,
                reply_to: str | None) -> ReplyRoute:
    """The requester's own reply topics, each kept only inside its reply space."""
    response_topic = message.response_topic
    return ReplyRoute(
        response_topic=response_topic if response_topic is not None
        and may_reply(topics, response_topic, sender) else None,
        correlation_data=message.correlation_data,
        reply_to=reply_to if reply_to and may_reply(topics, reply_to, sender) else None,
    )
