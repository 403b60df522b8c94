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
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel, ValidationError

from analytic.errors import AnalyticError
from analytic.schemas import VerificationResult
from analytic.service import VerificationService
from analytic.settings import Settings
from bus_adapter.dedup import RecentRequests
from bus_adapter.discovery import discovery_messages
from bus_adapter.messages import (
    BAD_BASE64,
    BusError,
    SifisResult,
    VerificationRequest,
    peek_request_id,
)
from bus_adapter.topics import Topics, is_reply_topic
from bus_adapter.workers import WorkerPool

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
# Results published while the broker is away wait in paho's memory; past this many they are
# dropped (and logged) rather than growing without bound during a long outage.
MAX_QUEUED_PUBLISHES = 10_000


@dataclass(frozen=True)
class ReplyRoute:
    """Where a requester asked to hear back, besides the shared result/error topics."""

    response_topic: str | None = None  # MQTT 5 Response Topic property
    correlation_data: bytes | None = None  # MQTT 5 Correlation Data, echoed unchanged
    reply_to: str | None = None  # the request's JSON field


class BusAdapter:
    """One analytic instance on the bus. ``start()`` returns at once; ``stop()`` is graceful."""

    def __init__(self, service: VerificationService, settings: Settings | None = None) -> None:
        self.service = service
        self.settings = settings or service.settings
        self.topics = Topics.from_settings(self.settings)
        self._pool = WorkerPool(self.settings.mqtt_workers, self.settings.mqtt_queue_size)
        self._recent = RecentRequests(self.settings.mqtt_dedup_window_s)
        self._connected = threading.Event()
        self._lock = threading.Lock()
        # Connection generations tell a worker whether the message it holds can still be
        # acknowledged (packet ids belong to one connection) or will be re-delivered anyway.
        self._generation = 0
        self._redelivered_below = 0
        self._closing = False
        self._stopped = False
        self._client = self._make_client()
        service.add_result_listener(self._on_result)

    # ----- lifecycle -----

    def start(self) -> None:
        """Begin connecting in the background; never raises for a missing broker."""
        s = self.settings
        connect_properties = Properties(PacketTypes.CONNECT)
        connect_properties.SessionExpiryInterval = s.mqtt_session_expiry_s
        self._pool.start()
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
        dropped = self._pool.stop(drain_timeout)
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
            subscriptions = [(self.topics.request_filter, fresh_only)]
            if self.topics.ha_status:
                subscriptions.append((self.topics.ha_status, SubscribeOptions(qos=1)))
            client.subscribe(subscriptions)
            if self.topics.share_group:
                # A persistent session may still hold a plain subscription from a run without
                # a share group; it would hand this instance every request a second time.
                client.unsubscribe(self.topics.request)
            self._publish(self.topics.status, ONLINE, retain=True)
            self._publish_discovery()
            self._connected.set()
            log.info(
                "bus connected",
                extra={"event": "bus_connected", "session_present": flags.session_present,
                       "generation": self._generation},
            )
        except Exception:  # an exception here would kill paho's network thread
            log.exception("bus on_connect failed", extra={"event": "bus_callback_failed"})

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
            if msg.topic == self.topics.request:
                self._accept_request(msg)
                return
            if msg.topic == self.topics.ha_status and msg.payload.strip() == ONLINE:
                self._publish_discovery()
            self._ack(msg, self._generation)
        except Exception:
            log.exception("bus on_message failed", extra={"event": "bus_callback_failed"})

    # ----- requests -----

    def _accept_request(self, msg: mqtt.MQTTMessage) -> None:
        if self._closing:
            return  # not acknowledged: the broker re-delivers it after our restart
        generation = self._generation
        if self._pool.submit(lambda: self._serve(msg, generation)):
            return
        request_id = peek_request_id(msg.payload)
        log.warning("bus busy", extra={"event": "bus_busy", "request_id": request_id})
        self._reply_error(
            _route(msg, None),
            BusError(request_id=request_id, code="busy",
                     message="the analytic is busy; retry later"),
        )
        self._ack(msg, generation)

    def _serve(self, msg: mqtt.MQTTMessage, generation: int) -> None:
        """Worker thread: answer one request, then acknowledge it."""
        with self._lock:
            stale = generation < self._redelivered_below
        if stale:
            log.info("bus request left for re-delivery", extra={"event": "bus_redelivery"})
            return
        try:
            self._answer(msg)
        finally:
            self._ack(msg, generation)

    def _answer(self, msg: mqtt.MQTTMessage) -> None:
        started = time.perf_counter()
        payload: bytes = msg.payload
        limit = self.settings.mqtt_max_payload_bytes
        if len(payload) > limit:
            self._refuse(msg, None, peek_request_id(payload), "too_large",
                         f"request payload larger than {limit} bytes")
            return
        if not payload.strip():
            self._refuse(msg, None, None, "bad_json", "the request is empty")
            return
        try:
            document = json.loads(payload)
        except ValueError:  # includes bad UTF-8
            self._refuse(msg, None, peek_request_id(payload), "bad_json",
                         "the request is not valid JSON")
            return
        if not isinstance(document, dict):
            self._refuse(msg, None, None, "bad_json", "the request must be a JSON object")
            return
        request_id = _str_or_none(document.get("request_id"))
        reply_to = document.get("reply_to") if is_reply_topic(document.get("reply_to")) else None
        if request_id is not None and not self._recent.first_time(
            (_str_or_none(document.get("requestor_id")), request_id)
        ):
            log.info("bus duplicate request ignored",
                     extra={"event": "bus_duplicate", "request_id": request_id})
            return
        try:
            request = VerificationRequest.model_validate(document)
        except ValidationError as exc:
            code, message = _describe(exc)
            self._refuse(msg, reply_to, request_id, code, message)
            return
        del document  # the base64 text; the decoded bytes are all we still need
        try:
            result = self.service.verify(
                (request.file1.name, request.file1.data),
                (request.file2.name, request.file2.data),
                request.options(),
            )
        except AnalyticError as exc:
            self._refuse(msg, reply_to, request_id, exc.code, exc.message)
            return
        except Exception:
            log.exception("bus request failed",
                          extra={"event": "bus_internal_error", "request_id": request_id})
            self._refuse(msg, reply_to, request_id, "internal_error",
                         "the analytic failed to process the request")
            return
        # The result topic got it from the result listener; here only the requester's own.
        self._reply(_route(msg, reply_to), result, skip=self.topics.result)
        log.info(
            "bus request served",
            extra={"event": "bus_served", "request_id": request_id,
                   "analysis_id": result.analysis_id,
                   "seconds": round(time.perf_counter() - started, 3)},
        )

    def _refuse(
        self, msg: mqtt.MQTTMessage, reply_to: str | None, request_id: str | None, code: str,
        message: str,
    ) -> None:
        log.info("bus request refused",
                 extra={"event": "bus_refused_request", "request_id": request_id, "code": code})
        self._reply_error(_route(msg, reply_to), BusError(request_id=request_id, code=code,
                                                          message=message))

    # ----- publishing -----

    def _on_result(self, result: VerificationResult) -> None:
        """Every decision, from any door, goes to the result topic (and SIFIS-Home's)."""
        if self._stopped:
            return
        self._publish(self.topics.result, result.model_dump_json(), json_payload=True)
        if self.topics.sifis:
            self._publish(self.topics.sifis, SifisResult.wrap(result).model_dump_json(),
                          json_payload=True)

    def _reply_error(self, route: ReplyRoute, error: BusError) -> None:
        self._publish(self.topics.error, error.model_dump_json(), json_payload=True)
        self._reply(route, error, skip=self.topics.error)

    def _reply(self, route: ReplyRoute, body: BaseModel, skip: str) -> None:
        payload = body.model_dump_json()
        if route.reply_to and route.reply_to != skip:
            self._publish(route.reply_to, payload, json_payload=True)
        if route.response_topic:
            self._publish(route.response_topic, payload, json_payload=True,
                          correlation_data=route.correlation_data)

    def _publish_discovery(self) -> None:
        for topic, payload in discovery_messages(self.topics):
            self._publish(topic, payload, retain=True)

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


def apply_broker_settings(client: mqtt.Client, settings: Settings) -> None:
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


def _route(msg: mqtt.MQTTMessage, reply_to: str | None) -> ReplyRoute:
    properties = getattr(msg, "properties", None)
    response_topic = getattr(properties, "ResponseTopic", None)
    correlation = getattr(properties, "CorrelationData", None)
    return ReplyRoute(
        response_topic=response_topic if is_reply_topic(response_topic) else None,
        correlation_data=bytes(correlation) if correlation is not None else None,
        reply_to=reply_to,
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _describe(exc: ValidationError) -> tuple[str, str]:
    """Error code and message for an invalid request, as HTTP words it (never the input)."""
    errors = exc.errors(include_input=False, include_url=False)
    first = next((e for e in errors if e["type"] == BAD_BASE64), errors[0])
    where = ".".join(str(part) for part in first["loc"]) or "request"
    code = BAD_BASE64 if first["type"] == BAD_BASE64 else "bad_field"
    return code, f"{where}: {first['msg']}"
