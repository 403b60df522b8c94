"""The bus door without a broker: topics, request decoding, de-duplication and dispatch.

Messages are built by hand (``envelope.Inbound``) and what the analytic would publish is
recorded instead of sent, so these run in seconds; the same behaviour against a real Mosquitto
is in the other ``tests/test_bus*.py``. Served requests reach the real core on real speech.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from analytic.cli.settings import Settings
from analytic.household import HouseholdService, build_household
from analytic.service import VerificationService
from bus_adapter.decoding import Header, Refusal, parse, read_header
from bus_adapter.dedup import RecentRequests
from bus_adapter.dispatch import Dispatcher, request_filters
from bus_adapter.envelope import Inbound, Outbound
from bus_adapter.kinds import CoreCalls
from bus_adapter.messages import (
    STREAM_END,
    AnalysisRequest,
    StreamEnrol,
    VerificationRequest,
)
from bus_adapter.publishing import Publisher
from bus_adapter.session import subscriptions
from bus_adapter.streams import chunk_format
from bus_adapter.topics import Incoming, Topics
from tests.conftest import FEMALE_A, MALE_A

TOPICS = Topics()
FRONTDOOR = Incoming("frontdoor", "verification")
WAIT = 60.0  # an upper bound for one served request on a loaded machine, never a speed check


def wire(path: Path) -> dict[str, str]:
    return {"name": path.name, "data": base64.b64encode(path.read_bytes()).decode()}


def pair(request_id: str, **fields: object) -> bytes:
    return json.dumps({"file1": wire(MALE_A[0]), "file2": wire(MALE_A[1]),
                       "request_id": request_id, **fields}).encode()


def refusal(call, *args) -> Refusal:
    with pytest.raises(Refusal) as caught:
        call(*args)
    return caught.value


# ----- topics -----


@pytest.mark.parametrize("topic, expected", [
    ("voicegate/verification/request", Incoming(None, "verification")),
    ("voicegate/frontdoor/identify/request", Incoming("frontdoor", "identify")),
    ("voicegate/stream/mic/chunk", Incoming(None, "chunk", "mic")),
    ("voicegate/garage/stream/mic/end", Incoming("garage", "end", "mic")),
    ("voicegate/speaker/identify/request", Incoming("speaker", "identify")),  # reserved: refused
    ("voicegate/frontdoor/lights/request", None),
    ("voicegate//verification/request", None),
    ("voicegate/frontdoor/stream//chunk", None),
    ("voicegate/verification/result", None),
    ("other/verification/request", None),
])
def test_a_topic_names_its_sender_and_kind(topic, expected):
    assert TOPICS.parse(topic) == expected


def test_subscriptions_follow_the_share_group_and_the_streams():
    plain = request_filters(TOPICS, ["verification", "analysis"], streams=False, shared=True)
    assert plain == ["voicegate/+/verification/request", "voicegate/+/analysis/request",
                     "voicegate/verification/request", "voicegate/analysis/request"]
    assert request_filters(TOPICS, ["identify"], streams=True, shared=False) == [
        "voicegate/+/identify/request", "voicegate/+/stream/+/chunk", "voicegate/+/stream/+/end"]
    streams = ["voicegate/+/stream/+/chunk", "voicegate/+/stream/+/end"]
    alone = subscriptions(TOPICS, plain + streams)
    assert [topic for topic, _ in alone] == [*plain, *streams, "homeassistant/status"]
    # A request someone left retained is never replayed as a new one.
    assert all(options.retainHandling == SubscribeOptions.RETAIN_DO_NOT_SEND
               for topic, options in alone[:-1])
    grouped = [topic for topic, _ in subscriptions(Topics(share_group="g"), plain + streams)]
    # Streams are off in a share group: a session's chunks must reach one instance.
    assert grouped == [f"$share/g/{t}" for t in plain] + ["homeassistant/status"]
    no_discovery = subscriptions(Topics(discovery_prefix=""), plain)
    assert [topic for topic, _ in no_discovery] == plain


# ----- decoding -----


@pytest.mark.parametrize("payload, code, request_id", [
    (b'{"request_id": "big", "file1": "' + b"A" * 2000 + b'"}', "too_large", "big"),
    (b"  \n", "bad_json", None),
    (b'{"request_id": "cut", "file1": {"na', "bad_json", "cut"),
    (b'{"request_id": "latin", "x": "\xe9"}', "bad_json", "latin"),  # not UTF-8
    (b'["request_id", "list"]', "bad_json", None),
])
def test_payloads_that_are_no_json_object_are_refused_before_any_model(payload, code, request_id):
    refused = refusal(read_header, Inbound("t", payload), FRONTDOOR, TOPICS, 1000)
    assert (refused.code, refused.request_id) == (code, request_id)


@pytest.mark.parametrize("reply_to, response_topic, sender", [
    ("voicegate/garage/reply/lock", None, FRONTDOOR),
    (None, "homeassistant/lock/front/set", FRONTDOOR),
    ("voicegate/reply/x", None, FRONTDOOR),  # the shared space is not a device's
    ("homeassistant/lock/front/set", None, Incoming(None, "verification")),
    ("voicegate/status/reply/x", None, Incoming("status", "verification")),  # reserved
])
def test_reply_topics_outside_the_senders_reply_space_are_refused(reply_to, response_topic,
                                                                  sender):
    message = Inbound("t", json.dumps({"request_id": "r", "reply_to": reply_to}).encode(),
                      response_topic=response_topic)
    refused = refusal(read_header, message, sender, TOPICS, 1000)
    assert (refused.code, refused.request_id) == ("reply_not_allowed", "r")


def test_a_reply_topic_inside_the_senders_space_is_kept():
    message = Inbound("t", b'{"request_id": "r", "reply_to": "voicegate/frontdoor/reply/a"}')
    header = read_header(message, FRONTDOOR, TOPICS, 1000)
    assert (header.request_id, header.reply_to) == ("r", "voicegate/frontdoor/reply/a")
    # A wildcard is no topic name: not reply_not_allowed, but the model's bad_field.
    wild = Inbound("t", b'{"request_id": "w", "reply_to": "voicegate/frontdoor/reply/#"}')
    refused = refusal(parse, read_header(wild, FRONTDOOR, TOPICS, 1000),
                      VerificationRequest.model_validate)
    assert (refused.code, refused.request_id) == ("bad_field", "w")


def header(document: dict) -> Header:
    return Header(document, document.get("request_id"), None)


@pytest.mark.parametrize("document, model, code, where", [
    ({"file1": {"name": "a", "data": "no*base64!"}, "file2": wire(MALE_A[0])},
     VerificationRequest.model_validate, "bad_base64", "file1.data"),
    ({"file1": wire(MALE_A[0])}, VerificationRequest.model_validate, "bad_field", "file2"),
    ({"file": wire(MALE_A[0]), "output_period": 100}, AnalysisRequest.model_validate,
     "bad_output_period", "output_period"),
    ({"action": "sing"}, STREAM_END.validate_python, "bad_field", "action"),
    ({"action": "identify", "site": "the hall"}, STREAM_END.validate_python, "bad_field",
     "site"),
])
def test_invalid_fields_are_refused_with_https_code_and_where(document, model, code, where):
    refused = refusal(parse, header({"request_id": "f", **document}), model)
    assert (refused.code, refused.request_id) == (code, "f")
    assert refused.message.startswith(f"{where}: ")
    assert "no*base64" not in refused.message  # the input is never quoted back


def test_both_spellings_of_enrol_end_a_stream_as_an_enrolment():
    for action in ("enrol", "enroll"):
        request = STREAM_END.validate_python({"action": action, "external_id": "dad"})
        assert isinstance(request, StreamEnrol)


@pytest.mark.parametrize("content_type, payload, expected", [
    (None, MALE_A[0].read_bytes(), ("file", None)),  # a FLAC by its signature
    (None, bytes(320), ("pcm", None)),
    ("audio/pcm;rate=16000", bytes(320), ("pcm", 16000)),
    ("Audio/FLAC", b"", ("file", None)),
])
def test_a_chunks_format_comes_from_its_content_type_or_its_first_bytes(content_type, payload,
                                                                        expected):
    assert chunk_format(content_type, payload) == expected


@pytest.mark.parametrize("content_type, code", [
    ("video/mp4", "unsupported_audio"), ("audio/pcm;rate=fast", "bad_field")])
def test_unknown_chunk_formats_are_refused(content_type, code):
    from analytic.errors import AnalyticError

    with pytest.raises(AnalyticError) as caught:
        chunk_format(content_type, bytes(320))
    assert caught.value.code == code


# ----- de-duplication -----


def test_a_request_id_is_remembered_for_the_window_only():
    now = [0.0]
    recent = RecentRequests(10.0, clock=lambda: now[0])
    assert recent.first_time(("frontdoor", "verification", "a"))
    assert not recent.first_time(("frontdoor", "verification", "a"))
    assert recent.first_time(("garage", "verification", "a"))  # per device
    now[0] = 10.5
    assert recent.first_time(("frontdoor", "verification", "a"))
    assert RecentRequests(0, clock=lambda: 0.0).first_time("x")  # a window of 0: off


# ----- dispatch, on the real core -----


@dataclass
class Settle:
    """A delivery that records its acknowledgement."""

    stale: bool = False
    acked: threading.Event = field(default_factory=threading.Event)

    def ack(self) -> None:
        self.acked.set()

    def superseded(self) -> bool:
        return self.stale


@dataclass
class Bus:
    """A dispatcher whose publishes are recorded."""

    dispatcher: Dispatcher
    household: HouseholdService | None
    sent: list[Outbound] = field(default_factory=list)
    stopped: int | None = None  # what stop() left unacknowledged, once stopped

    def stop(self, drain_timeout: float = WAIT) -> int:
        if self.stopped is None:
            self.stopped = self.dispatcher.stop(drain_timeout)
        return self.stopped

    def send(self, topic: str, payload: bytes, stale: bool = False) -> Settle:
        settle = Settle(stale)
        assert self.dispatcher.accept(Inbound(topic, payload, delivery=settle))
        return settle

    def served(self, topic: str, payload: bytes) -> Settle:
        settle = self.send(topic, payload)
        assert settle.acked.wait(WAIT)
        return settle

    def on(self, topic: str) -> list[dict]:
        return [json.loads(m.payload) for m in self.sent if m.topic == topic]


@contextmanager
def bus(encoder, tmp_path: Path, household: bool = False, start: bool = True,
        **overrides: object) -> Iterator[Bus]:
    settings = Settings(data_dir=str(tmp_path), **overrides)
    service = VerificationService(settings, encoder)
    home = build_household(service) if household else None
    sent: list[Outbound] = []
    publisher = Publisher(settings, TOPICS, sent.append)
    service.add_result_listener(publisher.result)
    if home is not None:
        home.add_listener(publisher.household_result)
    dispatcher = Dispatcher(settings, TOPICS, CoreCalls(service, TOPICS, home, 1 << 20),
                            publisher)
    if start:
        dispatcher.start()
    running = Bus(dispatcher, home, sent)
    try:
        yield running
    finally:
        running.stop()
        if home is not None:
            home.close()


def test_a_duplicate_is_answered_once_per_device(encoder, tmp_path):
    with bus(encoder, tmp_path, mqtt_workers=1) as b:
        first = b.served("voicegate/frontdoor/verification/request", pair("dup-1"))
        again = b.served("voicegate/frontdoor/verification/request", pair("dup-1"))
        other = b.served("voicegate/garage/verification/request", pair("dup-1"))
    assert first.acked.is_set() and again.acked.is_set() and other.acked.is_set()
    results = b.on("voicegate/verification/result")
    assert [r["request_id"] for r in results] == ["dup-1", "dup-1"]  # frontdoor, garage
    assert all(r["decision"] is True for r in results)
    assert not b.on("voicegate/error")


def test_a_refusal_reaches_the_error_topic_and_the_requesters_reply_topic(encoder, tmp_path):
    text = base64.b64encode(b"Shopping list: milk, eggs, bread.\n" * 40).decode()
    request = json.dumps({"file1": wire(MALE_A[0]), "file2": {"name": "notes.wav", "data": text},
                          "request_id": "junk", "reply_to": "voicegate/frontdoor/reply/x"})
    with bus(encoder, tmp_path) as b:
        b.served("voicegate/frontdoor/verification/request", request.encode())
    (error,) = b.on("voicegate/error")
    assert (error["request_id"], error["code"]) == ("junk", "unsupported_audio")
    assert b.on("voicegate/frontdoor/reply/x") == [error]
    assert not b.on("voicegate/verification/result")


def test_reserved_devices_and_enrolment_off_the_admins_topics_are_forbidden(encoder, tmp_path):
    enrolment = {"external_id": "dad", "files": [wire(FEMALE_A[0])]}
    with bus(encoder, tmp_path, household=True) as b:
        reserved = b.send("voicegate/status/verification/request", pair("res-1"))
        assert reserved.acked.is_set()  # refused at once, on the network thread
        for i, topic in enumerate(("voicegate/frontdoor/enrollment/request",
                                   "voicegate/enrollment/request")):
            b.served(topic, json.dumps({**enrolment, "request_id": f"steal-{i}"}).encode())
        assert b.household is not None and b.household.store.info("dad") is None
    codes = {e["request_id"]: e["code"] for e in b.on("voicegate/error")}
    assert codes == {"res-1": "forbidden", "steal-0": "forbidden", "steal-1": "forbidden"}


def test_a_full_queue_answers_busy_and_leaves_the_queued_request_for_redelivery(encoder,
                                                                                 tmp_path):
    with bus(encoder, tmp_path, start=False, mqtt_workers=1, mqtt_queue_size=1) as b:
        queued = b.send("voicegate/frontdoor/verification/request", pair("queued"))
        refused = b.send("voicegate/frontdoor/verification/request", pair("refused"))
        assert b.stop(drain_timeout=0) == 1  # never started: nothing drained
    assert refused.acked.is_set() and not queued.acked.is_set()
    assert [(e["request_id"], e["code"]) for e in b.on("voicegate/error")] == [
        ("refused", "busy")]


def test_a_copy_from_a_superseded_connection_is_left_to_its_redelivery(encoder, tmp_path):
    with bus(encoder, tmp_path, mqtt_workers=1) as b:
        stale = b.send("voicegate/frontdoor/verification/request", pair("old"), stale=True)
        b.served("voicegate/frontdoor/verification/request", pair("barrier"))  # FIFO
    assert not stale.acked.is_set()
    assert [r["request_id"] for r in b.on("voicegate/verification/result")] == ["barrier"]


def test_topics_that_are_no_request_are_left_to_the_caller(encoder, tmp_path):
    with bus(encoder, tmp_path) as b:
        for topic in ("homeassistant/status", "voicegate/verification/result",
                      "voicegate/stream/mic/chunk", "voicegate/frontdoor/enrollment/request"):
            assert not b.dispatcher.accept(Inbound(topic, b"{}"))  # no household: no streams
    assert b.sent == []
