"""The paho client: connects, routes messages, hands requests to workers, publishes answers.

Delivery, and why:

* QoS 1 both ways, MQTT 5, a fixed client id, ``clean_start=False`` and a session expiry: the
  broker keeps our subscription and queues requests while the analytic is down.
* Manual acknowledgements: a request is acknowledged only once it is answered (or refused), so
  a request that was queued here when the process died or the connection dropped is delivered
  again by the broker, not lost. Re-deliveries are answered once thanks to ``RecentRequests``.
* Requests run on a bounded ``WorkerPool``; when it is full the requester gets ``busy`` at once.
* ``connect_async`` + ``loop_start``: a missing broker never stops HTTP; paho retries with
  exponential backoff (``reconnect_delay_set``) and results published meanwhile wait in paho's
  queue.

Every request kind (verification, analysis, enrollment, identify, a stream's ``end``) takes the
same path: parse with the shared pydantic model, serve on a worker, publish on the kind's result
topic and to the requester's own ``reply_to`` / response topic, or an error on ``<prefix>/error``.
Stream chunks are decoded on one chunk worker of their own, never on the network thread (a FLAC
chunk costs real CPU), in arrival order; a stream's ``end`` passes through that same worker
before it reaches the pool, so it sees every chunk sent before it.
Household results reach the bus through the household's listener, so ``POST /identify`` updates
the retained ``<prefix>/speaker/<site>`` state exactly as a bus request does.

Trust comes from the topic (``bus_adapter/topics.py``): the device is the topic's second level,
bound to the client's user name by the broker's ACL. Replies go only inside the requesting
device's reply space (else ``reply_not_allowed``); enrolment and thresholds below the default are
served on the admin's topics only (else ``forbidden`` / ``threshold_not_allowed``); duplicates
are recognised per device; a decision made with a request's own threshold never updates a
retained speaker state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel, ValidationError

from analytic.errors import AnalyticError, BadRequest, Forbidden
from analytic.household import HouseholdService
from analytic.schemas import (
    AnalysisOptions,
    EnrolmentResult,
    HouseholdVerification,
    Identification,
    SifisResult,
    VerificationResult,
)
from analytic.service import VerificationService
from analytic.thresholds import DEFAULT as DEFAULT_THRESHOLD
from bus_adapter.dedup import RecentRequests
from bus_adapter.discovery import discovery_messages, speaker_discovery
from bus_adapter.messages import (
    ACTIONS,
    BAD_BASE64,
    STREAM_END,
    AnalysisRequest,
    BusError,
    ChallengeRequest,
    EnrollmentRequest,
    IdentifyRequest,
    MemberVerificationRequest,
    SpeakerState,
    StreamEnd,
    StreamEnrol,
    StreamIdentify,
    StreamVerify,
    VerificationRequest,
    peek_request_id,
)
from bus_adapter.settings import BusSettings, bus_settings
from bus_adapter.streams import BusStreams, session_key
from bus_adapter.topics import (
    ANALYSIS,
    CHALLENGE,
    CHUNK,
    ENROLLMENT,
    IDENTIFY,
    MEMBER_VERIFICATION,
    RESERVED_DEVICES,
    VERIFICATION,
    Incoming,
    Topics,
    is_reply_topic,
)
from bus_adapter.workers import WorkerPool

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
# Results published while the broker is away wait in paho's memory; past this many they are
# dropped (and logged) rather than growing without bound during a long outage.
MAX_QUEUED_PUBLISHES = 10_000
DEFAULT_SITE = "default"  # the speaker topic of an identification that names no site
UNKNOWN_SPEAKER = "unknown"
STREAM_END_KIND = "stream_end"
# Chunks waiting for the chunk worker; beyond it a chunk is refused as ``busy``.
CHUNK_QUEUE_FACTOR = 4


@dataclass(frozen=True)
class ReplyRoute:
    """Where a requester asked to hear back, besides the shared result/error topics."""

    response_topic: str | None = None  # MQTT 5 Response Topic property
    correlation_data: bytes | None = None  # MQTT 5 Correlation Data, echoed unchanged
    reply_to: str | None = None  # the request's JSON field


@dataclass(frozen=True)
class Answer:
    """What serving one request produced."""

    payload: str  # JSON
    result_topic: str
    published: bool  # already on result_topic: the core's listener put it there
    analysis_id: str | None


@dataclass(frozen=True)
class Kind:
    """One kind of request: how to parse its JSON, and how to serve the parsed model."""

    name: str
    parse: Callable[[Any], Any]  # raises ValidationError
    serve: Callable[[Any, Incoming], Answer]  # (request, sender); raises AnalyticError


class BusAdapter:
    """One analytic instance on the bus. ``start()`` returns at once; ``stop()`` is graceful."""

    def __init__(
        self,
        service: VerificationService,
        settings: BusSettings | None = None,
        household: HouseholdService | None = None,
    ) -> None:
        """Without ``household`` only verification and analysis are served (no enrolment,
        identification or streams)."""
        self.service = service
        self.settings = settings or bus_settings(service.settings)
        self.topics = Topics.from_settings(self.settings)
        self.household = household
        self._kinds = self._request_kinds()
        self._stream_end = Kind(STREAM_END_KIND, STREAM_END.validate_python, self._end_stream)
        self._streams = (
            BusStreams(household.streams, self.settings.mqtt_max_payload_bytes)
            if household is not None else None
        )
        # Each site gets a retained state and discovery config; bounded (mqtt_max_sites) so
        # requests naming ever new sites cannot grow memory or the broker's retained store.
        self._sites: set[str] = set()
        self._pool = WorkerPool(self.settings.mqtt_workers, self.settings.mqtt_queue_size)
        # One thread, so chunks keep their order; off the network thread, so decoding a chunk
        # never stalls pings, acknowledgements and every other device's requests.
        self._chunk_pool = WorkerPool(
            1, self.settings.mqtt_queue_size * CHUNK_QUEUE_FACTOR, name="bus-chunks")
        self._recent = RecentRequests(self.settings.mqtt_dedup_window_s)
        self._connected = threading.Event()
        self._subscribe_mid: int | None = None
        self._lock = threading.Lock()
        # Connection generations tell a worker whether the message it holds can still be
        # acknowledged (packet ids belong to one connection) or will be re-delivered anyway.
        self._generation = 0
        self._redelivered_below = 0
        self._closing = False
        self._stopped = False
        self._client = self._make_client()
        service.add_result_listener(self._on_result)
        if household is not None:
            household.add_listener(self._on_household_result)

    def _request_kinds(self) -> dict[str, Kind]:
        """Request kind name -> kind; household kinds only with a household."""
        kinds = [
            Kind(VERIFICATION, VerificationRequest.model_validate, self._verify),
            Kind(ANALYSIS, AnalysisRequest.model_validate, self._analyze),
        ]
        if self.household is not None:
            kinds += [
                Kind(ENROLLMENT, EnrollmentRequest.model_validate, self._enrol),
                Kind(IDENTIFY, IdentifyRequest.model_validate, self._identify),
                Kind(MEMBER_VERIFICATION, MemberVerificationRequest.model_validate,
                     self._member_verify),
                Kind(CHALLENGE, ChallengeRequest.model_validate, self._challenge),
            ]
        return {kind.name: kind for kind in kinds}

    def _request_topics(self) -> list[str]:
        """Per-device request and stream filters, and the shared topics when they are on."""
        topics = [self.topics.device_request_of(name) for name in self._kinds]
        if self._streams is not None:
            topics += self.topics.device_stream_filters
        if self.settings.mqtt_shared_topics:
            topics += [self.topics.request_of(name) for name in self._kinds]
            if self._streams is not None:
                topics += [self.topics.stream_chunk_filter, self.topics.stream_end_filter]
        return topics

    # ----- lifecycle -----

    def start(self) -> None:
        """Begin connecting in the background; never raises for a missing broker."""
        s = self.settings
        connect_properties = Properties(PacketTypes.CONNECT)
        connect_properties.SessionExpiryInterval = s.mqtt_session_expiry_s
        self._pool.start()
        self._chunk_pool.start()
        self._client.connect_async(
            s.mqtt_host,
            s.mqtt_port,
            keepalive=s.mqtt_keepalive,
            clean_start=False,
            properties=connect_properties,
        )
        self._client.loop_start()
        log.info(
            "bus connecting",
            extra={"event": "bus_connecting", "host": s.mqtt_host, "port": s.mqtt_port,
                   "client_id": s.mqtt_client_id, "subscription": self.topics.request_filter},
        )

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Finish queued requests (bounded), say ``offline``, and disconnect.

        Requests still queued after ``drain_timeout`` are left unacknowledged, so the broker
        hands them to this session again on the next start.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
        dropped = self._chunk_pool.stop(drain_timeout / 2)
        dropped += self._pool.stop(drain_timeout / 2)
        if self._connected.is_set():
            info = self._client.publish(self.topics.status, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # gone again: the will says it
                info.wait_for_publish(timeout=2.0)
        self._stopped = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        log.info("bus stopped", extra={"event": "bus_stopped", "left_for_redelivery": dropped})

    def status(self) -> str:
        """``connected`` / ``disconnected``, for ``/health``."""
        return "connected" if self._connected.is_set() else "disconnected"

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # ----- paho client and callbacks -----

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.mqtt_client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        apply_broker_settings(client, s)
        client.will_set(self.topics.status, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(s.mqtt_reconnect_min_s, s.mqtt_reconnect_max_s)
        client.max_queued_messages_set(MAX_QUEUED_PUBLISHES)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: Properties | None,
    ) -> None:
        try:
            if reason_code.is_failure:
                log.warning("bus connection refused",
                            extra={"event": "bus_refused", "reason": str(reason_code)})
                return
            with self._lock:
                self._generation += 1
                if flags.session_present:
                    # The broker kept our session: whatever we had not acknowledged comes
                    # again, so queued copies from the old connection can be skipped.
                    self._redelivered_below = self._generation
            # A request someone published retained is not a new request: never replay it.
            fresh_only = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
            topics = self._request_topics()
            requests = [t for t in topics if t.endswith("/request")]
            streams = [t for t in topics if not t.endswith("/request")]
            subscriptions = [(self.topics.shared(topic), fresh_only) for topic in requests]
            if streams and not self.topics.share_group:
                subscriptions += [(topic, fresh_only) for topic in streams]
            elif streams:
                # A session's chunks must all reach one instance; a share group splits them.
                log.warning("bus streams are off in a share group",
                            extra={"event": "bus_streams_off", "group": self.topics.share_group})
            if self.topics.ha_status:
                subscriptions.append((self.topics.ha_status, SubscribeOptions(qos=1)))
            _, self._subscribe_mid = client.subscribe(subscriptions)
            if self.topics.share_group:
                # A persistent session may still hold plain subscriptions from a run without
                # a share group; they would hand this instance every request a second time.
                client.unsubscribe(topics)
            log.info(
                "bus connected",
                extra={"event": "bus_connected", "session_present": flags.session_present,
                       "generation": self._generation},
            )
        except Exception:  # an exception here would kill paho's network thread
            log.exception("bus on_connect failed", extra={"event": "bus_callback_failed"})

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[mqtt.ReasonCode],
        properties: Properties | None,
    ) -> None:
        """Only once the broker has acknowledged the request subscriptions is the analytic
        ready: a request published before that would match no subscription and be lost, so
        ``online`` (which devices may wait for) and ``wait_connected`` come after the SUBACK."""
        if mid != self._subscribe_mid:
            return
        try:
            refused = [str(code) for code in reason_codes if code.is_failure]
            if refused:
                log.error("bus subscription refused",
                          extra={"event": "bus_subscribe_refused", "reasons": refused})
            self._publish(self.topics.status, ONLINE, retain=True)
            self._publish_discovery()
            self._connected.set()
        except Exception:  # an exception here would kill paho's network thread
            log.exception("bus on_subscribe failed", extra={"event": "bus_callback_failed"})

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        log.warning("bus broker unreachable, retrying",
                    extra={"event": "bus_connect_failed", "host": self.settings.mqtt_host,
                           "port": self.settings.mqtt_port})

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        if not self._closing:
            log.warning("bus disconnected, retrying",
                        extra={"event": "bus_disconnected", "reason": str(reason_code)})

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        """Network thread: route, and hand requests to a worker. Nothing slow happens here."""
        try:
            incoming = self.topics.parse(msg.topic)
            kind = None
            if incoming is not None and incoming.session is None:
                kind = self._kinds.get(incoming.kind)
            elif incoming is not None and self._streams is not None:
                kind = self._stream_end
            if incoming is not None and kind is not None:
                if incoming.device in RESERVED_DEVICES:
                    self._refuse(msg, incoming, None, peek_request_id(msg.payload), "forbidden",
                                 f"{incoming.device!r} is a reserved name, not a device")
                    self._ack(msg, self._generation)
                elif incoming.kind == CHUNK:
                    self._accept_chunk(msg, incoming)
                elif incoming.session is not None:  # an end: after the chunks before it
                    self._accept_end(msg, incoming)
                else:
                    self._accept_request(msg, incoming, kind)
                return
            if msg.topic == self.topics.ha_status and msg.payload.strip() == ONLINE:
                self._publish_discovery()
            self._ack(msg, self._generation)
        except Exception:
            log.exception("bus on_message failed", extra={"event": "bus_callback_failed"})

    # ----- requests -----

    def _accept_request(
        self, msg: mqtt.MQTTMessage, incoming: Incoming, kind: Kind,
        generation: int | None = None,
    ) -> None:
        if self._closing:
            return  # not acknowledged: the broker re-delivers it after our restart
        if generation is None:
            generation = self._generation
        if self._pool.submit(lambda: self._serve(msg, generation, incoming, kind)):
            return
        self._busy(msg, incoming, generation, kind.name)

    def _busy(self, msg: mqtt.MQTTMessage, incoming: Incoming, generation: int,
              kind: str) -> None:
        request_id = peek_request_id(msg.payload)
        log.warning("bus busy", extra={"event": "bus_busy", "request_id": request_id,
                                       "kind": kind})
        self._refuse(msg, incoming, None, request_id, "busy", "the analytic is busy; retry later")
        self._ack(msg, generation)

    def _accept_end(self, msg: mqtt.MQTTMessage, incoming: Incoming) -> None:
        """Network thread: queue the ``end`` behind the chunks already queued; the chunk worker
        then hands it to the pool, where the model runs."""
        if self._closing:
            return
        generation = self._generation
        forward = lambda: self._accept_request(  # noqa: E731
            msg, incoming, self._stream_end, generation)
        if not self._chunk_pool.submit(forward):
            self._busy(msg, incoming, generation, STREAM_END_KIND)

    def _accept_chunk(self, msg: mqtt.MQTTMessage, incoming: Incoming) -> None:
        """Network thread: queue one stream chunk for the chunk worker (in order)."""
        if self._closing or self._streams is None:
            return
        generation = self._generation
        if not self._chunk_pool.submit(lambda: self._append_chunk(msg, incoming, generation)):
            self._busy(msg, incoming, generation, CHUNK)

    def _append_chunk(self, msg: mqtt.MQTTMessage, incoming: Incoming, generation: int) -> None:
        """Chunk worker: decode and append one chunk (bounded by the stream limits)."""
        assert self._streams is not None and incoming.session is not None
        session = incoming.session
        content_type = getattr(getattr(msg, "properties", None), "ContentType", None)
        try:
            info = self._streams.append(session_key(incoming.device, session),
                                        bytes(msg.payload), content_type)
            log.debug("bus stream chunk", extra={"event": "bus_chunk", "session": session,
                                                 "chunks": info.chunks,
                                                 "duration_s": info.duration_s})
        except AnalyticError as exc:
            log.info("bus stream chunk refused",
                     extra={"event": "bus_chunk_refused", "session": session, "code": exc.code})
            self._refuse(msg, incoming, None, None, exc.code, f"stream {session}: {exc.message}")
        except Exception:
            log.exception("bus stream chunk failed", extra={"event": "bus_internal_error"})
            self._refuse(msg, incoming, None, None, "internal_error",
                         f"stream {session}: the analytic failed to process the chunk")
        finally:
            self._ack(msg, generation)

    def _serve(self, msg: mqtt.MQTTMessage, generation: int, incoming: Incoming,
               kind: Kind) -> None:
        """Worker thread: answer one request, then acknowledge it."""
        with self._lock:
            stale = generation < self._redelivered_below
        if stale:
            log.info("bus request left for re-delivery", extra={"event": "bus_redelivery"})
            return
        try:
            self._answer(msg, incoming, kind)
        finally:
            self._ack(msg, generation)

    def _answer(self, msg: mqtt.MQTTMessage, incoming: Incoming, kind: Kind) -> None:
        started = time.perf_counter()
        payload: bytes = msg.payload
        limit = self.settings.mqtt_max_payload_bytes
        if len(payload) > limit:
            self._refuse(msg, incoming, None, peek_request_id(payload), "too_large",
                         f"request payload larger than {limit} bytes")
            return
        if not payload.strip():
            self._refuse(msg, incoming, None, None, "bad_json", "the request is empty")
            return
        try:
            document = json.loads(payload)
        except ValueError:  # includes bad UTF-8
            self._refuse(msg, incoming, None, peek_request_id(payload), "bad_json",
                         "the request is not valid JSON")
            return
        if not isinstance(document, dict):
            self._refuse(msg, incoming, None, None, "bad_json",
                         "the request must be a JSON object")
            return
        request_id = _str_or_none(document.get("request_id"))
        asked = document.get("reply_to")
        reply_to = asked if isinstance(asked, str) and self._may_reply(asked, incoming) else None
        # A topic name outside the device's reply space is refused; a malformed one (a
        # wildcard) is the request model's ``bad_field``.
        outside = [t for t in (asked, _response_topic(msg)) if is_reply_topic(t)
                   and not self._may_reply(t, incoming)]
        if outside:
            self._refuse(msg, incoming, reply_to, request_id, "reply_not_allowed",
                         "replies go only under " + self.topics.reply_space(incoming.device)
                         + "/...")
            return
        # Per device: a device sending another's next request_id first squats only its own.
        if request_id is not None and not self._recent.first_time(
            (incoming.device, kind.name, request_id)
        ):
            log.info("bus duplicate request ignored",
                     extra={"event": "bus_duplicate", "request_id": request_id,
                            "kind": kind.name})
            return
        try:
            request = kind.parse(document)
        except ValidationError as exc:
            code, message = _describe(exc)
            self._refuse(msg, incoming, reply_to, request_id, code, message)
            return
        del document  # the base64 text; the decoded bytes are all we still need
        try:
            answer = kind.serve(request, incoming)
        except AnalyticError as exc:
            self._refuse(msg, incoming, reply_to, request_id, exc.code, exc.message)
            return
        except Exception:
            log.exception("bus request failed",
                          extra={"event": "bus_internal_error", "request_id": request_id,
                                 "kind": kind.name})
            self._refuse(msg, incoming, reply_to, request_id, "internal_error",
                         "the analytic failed to process the request")
            return
        if not answer.published:
            self._publish(answer.result_topic, answer.payload, json_payload=True)
        # The result topic has it (from a listener, or just above); now the requester's own.
        self._reply(self._route(msg, incoming, reply_to), answer.payload,
                    skip=answer.result_topic)
        log.info(
            "bus request served",
            extra={"event": "bus_served", "request_id": request_id, "kind": kind.name,
                   "analysis_id": answer.analysis_id,
                   "seconds": round(time.perf_counter() - started, 3)},
        )

    # ----- serving each kind (worker threads) -----

    def _verify(self, request: VerificationRequest, sender: Incoming) -> Answer:
        result = self.service.verify(
            (request.file1.name, request.file1.data),
            (request.file2.name, request.file2.data),
            request.options(),
            privileged=sender.is_admin,
        )
        return Answer(result.model_dump_json(), self.topics.result, True, result.analysis_id)

    def _analyze(self, request: AnalysisRequest, sender: Incoming) -> Answer:
        return self._analysis_answer((request.file.name, request.file.data), request.options())

    def _analysis_answer(self, recording: tuple[str, bytes], options: AnalysisOptions) -> Answer:
        """No listener publishes analyses: the answer goes to the result topic from here."""
        name, data = recording
        result = self.service.analysis.analyze_file(data, name, options)
        # POST /analyze's body, field for field (options left off are absent, not null).
        payload = json.dumps(result.payload(), separators=(",", ":"))
        return Answer(payload, self.topics.result_of(ANALYSIS), False, result.analysis_id)

    def _enrol(self, request: EnrollmentRequest, sender: Incoming) -> Answer:
        self._admin_only(sender)
        result = self._household().enrol(request.options(),
                                         [(f.name, f.data) for f in request.files])
        return self._household_answer(result, ENROLLMENT)

    def _identify(self, request: IdentifyRequest, sender: Incoming) -> Answer:
        result = self._household().identify(self._recording(request, sender), request.options(),
                                             privileged=sender.is_admin)
        return self._household_answer(result, IDENTIFY)

    def _member_verify(self, request: MemberVerificationRequest, sender: Incoming) -> Answer:
        household = self._household()
        household.info(request.external_id)  # not_found before any decoding, as over HTTP
        result = household.verify(request.external_id, self._recording(request, sender),
                                  request.options(), privileged=sender.is_admin)
        return self._household_answer(result, MEMBER_VERIFICATION)

    def _challenge(self, request: ChallengeRequest, sender: Incoming) -> Answer:
        """No listener publishes challenges: the answer goes to the result topic from here."""
        result = self._household().challenge(request.options())
        return Answer(result.model_dump_json(), self.topics.result_of(CHALLENGE), False, None)

    def _recording(self, request: IdentifyRequest | MemberVerificationRequest,
                   sender: Incoming) -> tuple[str, bytes]:
        if request.file is not None:
            return request.file.name, request.file.data
        if request.stream is not None and self._streams is not None:
            return self._streams.recording(session_key(sender.device, request.stream))
        raise BadRequest("'file' (name and base64 data) or 'stream' (a session) is required",
                         code="missing_file")

    def _end_stream(self, request: StreamEnd, sender: Incoming) -> Answer:
        """Run the ``end`` message's action on the whole session, then forget the session
        (also when the action is refused: ``end`` means the device is done with it)."""
        household, streams = self._household(), self._streams
        assert sender.session is not None and streams is not None  # routed here only then
        session = session_key(sender.device, sender.session)
        try:
            if isinstance(request, StreamEnrol):
                self._admin_only(sender)
            recording = streams.recording(session)
            if isinstance(request, StreamIdentify):
                return self._household_answer(
                    household.identify(recording, request.options(),
                                       privileged=sender.is_admin), IDENTIFY)
            if isinstance(request, StreamVerify):
                return self._household_answer(
                    household.verify(request.external_id, recording, request.options(),
                                     privileged=sender.is_admin),
                    MEMBER_VERIFICATION)
            if isinstance(request, StreamEnrol):
                return self._household_answer(
                    household.enrol(request.options(), [recording]), ENROLLMENT)
            return self._analysis_answer(recording, request.options())
        finally:
            streams.end(session)

    def _admin_only(self, sender: Incoming) -> None:
        """Enrolment (and replacing a voiceprint) is the admin's, as over HTTP."""
        if not sender.is_admin:
            raise Forbidden("enrolment is served only on the admin's topics, "
                            f"{self.topics.device_request_of(ENROLLMENT, 'admin')} and "
                            f"{self.topics.prefix}/admin/stream/<session>/end")

    def _household(self) -> HouseholdService:
        if self.household is None:  # household kinds are only subscribed with a household
            raise RuntimeError("no household service")
        return self.household

    def _household_answer(
        self, result: EnrolmentResult | Identification | HouseholdVerification, kind: str
    ) -> Answer:
        """The household listener has already published it on the kind's result topic."""
        return Answer(result.model_dump_json(), self.topics.result_of(kind), True,
                      result.analysis_id)

    def _refuse(
        self, msg: mqtt.MQTTMessage, incoming: Incoming, reply_to: str | None,
        request_id: str | None, code: str, message: str,
    ) -> None:
        log.info("bus request refused",
                 extra={"event": "bus_refused_request", "request_id": request_id, "code": code,
                        "device": incoming.device})
        self._reply_error(self._route(msg, incoming, reply_to),
                          BusError(request_id=request_id, code=code, message=message))

    def _may_reply(self, topic: str, incoming: Incoming) -> bool:
        return (incoming.device not in RESERVED_DEVICES
                and self.topics.may_reply(topic, incoming.device))

    def _route(self, msg: mqtt.MQTTMessage, incoming: Incoming,
               reply_to: str | None) -> ReplyRoute:
        """The requester's own reply topics, each kept only inside its reply space."""
        response_topic = _response_topic(msg)
        correlation = getattr(getattr(msg, "properties", None), "CorrelationData", None)
        return ReplyRoute(
            response_topic=response_topic if isinstance(response_topic, str)
            and self._may_reply(response_topic, incoming) else None,
            correlation_data=bytes(correlation) if correlation is not None else None,
            reply_to=reply_to if reply_to and self._may_reply(reply_to, incoming) else None,
        )

    # ----- publishing -----

    def _on_result(self, result: VerificationResult) -> None:
        """Every decision, from any door, goes to the result topic (and SIFIS-Home's)."""
        if self._stopped:
            return
        self._publish(self.topics.result, result.model_dump_json(), json_payload=True)
        if self.topics.sifis:
            self._publish(self.topics.sifis, SifisResult.from_result(result).model_dump_json(),
                          json_payload=True)

    def _on_household_result(self, result: BaseModel) -> None:
        """Household results from any door (HTTP, CLI, bus) go to their result topic, and an
        identification also updates the retained speaker state of its site."""
        if self._stopped:
            return
        if isinstance(result, Identification):
            self._publish(self.topics.result_of(IDENTIFY), result.model_dump_json(),
                          json_payload=True)
            self._publish_speaker(result)
        elif isinstance(result, EnrolmentResult):
            self._publish(self.topics.result_of(ENROLLMENT), result.model_dump_json(),
                          json_payload=True)
        elif isinstance(result, HouseholdVerification):
            self._publish(self.topics.result_of(MEMBER_VERIFICATION), result.model_dump_json(),
                          json_payload=True)
        # Deletions are not announced: nothing listens for them yet.

    def _publish_speaker(self, result: Identification) -> None:
        """The retained state of the result's site, which automations act on: only for
        decisions at the configured threshold, and for at most ``mqtt_max_sites`` sites."""
        site = result.site or DEFAULT_SITE
        if result.threshold_source != DEFAULT_THRESHOLD:
            log.info("bus speaker state kept: request threshold",
                     extra={"event": "bus_speaker_skipped", "site": site,
                            "analysis_id": result.analysis_id})
            return
        with self._lock:
            new = site not in self._sites
            if new and len(self._sites) >= self.settings.mqtt_max_sites:
                log.warning("bus speaker state not published: too many sites",
                            extra={"event": "bus_sites_full", "site": site,
                                   "max_sites": self.settings.mqtt_max_sites})
                return
            self._sites.add(site)
        state = SpeakerState(
            speaker=result.match or UNKNOWN_SPEAKER,
            score=result.score,
            threshold=result.threshold,
            time=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            analysis_id=result.analysis_id,
        )
        self._publish(self.topics.speaker(site), state.model_dump_json(), retain=True,
                      json_payload=True)
        if new:
            self._publish_speaker_discovery(site)
        log.info("bus speaker state", extra={"event": "bus_speaker", "site": site,
                                             "speaker": state.speaker,
                                             "analysis_id": state.analysis_id})

    def _publish_speaker_discovery(self, site: str) -> None:
        message = speaker_discovery(self.topics, site)
        if message is not None:
            self._publish(*message, retain=True)

    def _reply_error(self, route: ReplyRoute, error: BusError) -> None:
        self._publish(self.topics.error, error.model_dump_json(), json_payload=True)
        self._reply(route, error, skip=self.topics.error)

    def _reply(self, route: ReplyRoute, body: BaseModel | str, skip: str) -> None:
        payload = body if isinstance(body, str) else body.model_dump_json()
        if route.reply_to and route.reply_to != skip:
            self._publish(route.reply_to, payload, json_payload=True)
        if route.response_topic:
            self._publish(route.response_topic, payload, json_payload=True,
                          correlation_data=route.correlation_data)

    def _publish_discovery(self) -> None:
        """The device's configs, and a speaker sensor for every site seen since start."""
        for topic, payload in discovery_messages(self.topics):
            self._publish(topic, payload, retain=True)
        with self._lock:
            sites = sorted(self._sites)
        for site in sites:
            self._publish_speaker_discovery(site)

    def _publish(
        self,
        topic: str,
        payload: str | bytes,
        *,
        retain: bool = False,
        json_payload: bool = False,
        correlation_data: bytes | None = None,
    ) -> None:
        """QoS 1 publish that never raises; while disconnected paho keeps it for later."""
        properties = None
        if json_payload or correlation_data is not None:
            properties = Properties(PacketTypes.PUBLISH)
            if json_payload:
                properties.PayloadFormatIndicator = 1
                properties.ContentType = "application/json"
            if correlation_data is not None:
                properties.CorrelationData = correlation_data
        try:
            info = self._client.publish(topic, payload, qos=1, retain=retain,
                                        properties=properties)
        except ValueError:  # e.g. an invalid response topic from a requester
            log.warning("bus publish refused", extra={"event": "bus_publish_invalid",
                                                      "topic": topic})
            return
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("bus publish failed",
                        extra={"event": "bus_publish_failed", "topic": topic,
                               "rc": mqtt.error_string(info.rc)})

    def _ack(self, msg: mqtt.MQTTMessage, generation: int) -> None:
        """Acknowledge on the connection the message came on; on a newer connection its packet
        id may already name another message, and the broker re-delivers it anyway."""
        if msg.qos == 0:
            return
        with self._lock:
            current = generation == self._generation
        if current:
            self._client.ack(msg.mid, msg.qos)


def apply_broker_settings(client: mqtt.Client, settings: BusSettings) -> None:
    """Credentials and TLS from the settings; shared with ``publish_pair`` so both connect the
    same way."""
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
    if settings.mqtt_tls or settings.mqtt_tls_ca_file:
        client.tls_set(
            ca_certs=settings.mqtt_tls_ca_file,
            certfile=settings.mqtt_tls_certfile,
            keyfile=settings.mqtt_tls_keyfile,
        )


def _response_topic(msg: mqtt.MQTTMessage) -> str | None:
    """The MQTT 5 Response Topic property, if the request has one."""
    return getattr(getattr(msg, "properties", None), "ResponseTopic", None)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _describe(exc: ValidationError) -> tuple[str, str]:
    """Error code and message for an invalid request, as HTTP words it (never the input)."""
    errors = exc.errors(include_input=False, include_url=False)
    first = next((e for e in errors if e["type"] == BAD_BASE64), errors[0])
    loc = [str(part) for part in first["loc"]]
    if loc[:1] and loc[0] in ACTIONS:  # a stream end's union names the action first
        loc = loc[1:]
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc = ["action"]
    where = ".".join(loc) or "request"
    if first["type"] == BAD_BASE64:
        code = BAD_BASE64
    elif loc[:1] == ["output_period"]:  # its own code, as over HTTP (422 bad_output_period)
        code = "bad_output_period"
    else:
        code = "bad_field"
    return code, f"{where}: {first['msg'].removeprefix('Value error, ')}"
