"""The paho session: one persistent MQTT 5 session with the broker, kept up in the background.

Delivery, and why:

* QoS 1 both ways, MQTT 5, a fixed client id, ``clean_start=False`` and a session expiry: the
  broker keeps our subscription and queues requests while the analytic is down.
* Manual acknowledgements: a request is acknowledged only once it is answered (or refused), so
  a request that was queued here when the process died or the connection dropped is delivered
  again by the broker, not lost. Packet ids belong to one connection, so each message carries
  its connection's generation (``Inbound.delivery``): an old connection's message is never
  acknowledged on a new one, and is skipped when the resumed session delivers it again.
* ``connect_async`` + ``loop_start``: a missing broker never stops HTTP; paho retries with
  exponential backoff (``reconnect_delay_set``) and results published meanwhile wait in paho's
  queue (at most ``MAX_QUEUED_PUBLISHES``).
* ``<prefix>/status`` says ``online`` (retained) once the request subscriptions are
  acknowledged, and the last will says ``offline`` when the connection dies.

The client is built apart from the session (``build_client``), as ``publish_pair`` builds its
own from the same settings; the session only sees ``Inbound`` / ``Outbound`` on its far side.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from bus_adapter.envelope import Inbound, Outbound
from bus_adapter.settings import BusSettings
from bus_adapter.topics import Topics

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
# Results published while the broker is away wait in paho's memory; past this many they are
# dropped (and logged) rather than growing without bound during a long outage.
MAX_QUEUED_PUBLISHES = 10_000


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


def build_client(settings: BusSettings, topics: Topics) -> mqtt.Client:
    """The analytic's client, configured but neither connected nor given callbacks."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=settings.mqtt_client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )
    apply_broker_settings(client, settings)
    client.will_set(topics.status, OFFLINE, qos=1, retain=True)
    client.reconnect_delay_set(settings.mqtt_reconnect_min_s, settings.mqtt_reconnect_max_s)
    client.max_queued_messages_set(MAX_QUEUED_PUBLISHES)
    return client


def subscriptions(topics: Topics, filters: list[str]) -> list[tuple[str, SubscribeOptions]]:
    """What to subscribe to on each connect: the request ``filters`` (as the share group's when
    there is one), the stream filters unless in a share group, and Home Assistant's status."""
    # A request someone published retained is not a new request: never replay it.
    fresh_only = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
    requests = [t for t in filters if t.endswith("/request")]
    streams = [t for t in filters if not t.endswith("/request")]
    chosen = [(topics.shared(topic), fresh_only) for topic in requests]
    if streams and not topics.share_group:
        chosen += [(topic, fresh_only) for topic in streams]
    elif streams:
        # A session's chunks must all reach one instance; a share group splits them.
        log.warning("bus streams are off in a share group",
                    extra={"event": "bus_streams_off", "group": topics.share_group})
    if topics.ha_status:
        chosen.append((topics.ha_status, SubscribeOptions(qos=1)))
    return chosen


@dataclass(frozen=True)
class _SessionDelivery:
    """Settles one paho message on the connection (generation) it came on."""

    session: BusSession
    message: mqtt.MQTTMessage
    generation: int

    def ack(self) -> None:
        self.session.ack(self.message, self.generation)

    def superseded(self) -> bool:
        return self.session.superseded(self.generation)


class BusSession:
    """Connects in the background, subscribes on every connect, hands each message on.

    ``on_message`` runs on paho's network thread and must return quickly; ``on_ready`` runs
    there too, once per connection, after ``online`` is queued.
    """

    def __init__(
        self,
        settings: BusSettings,
        topics: Topics,
        on_message: Callable[[Inbound], None],
        on_ready: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.topics = topics
        self._filters: list[str] = []
        self._on_message_cb = on_message
        self._on_ready = on_ready
        self._connected = threading.Event()
        self._subscribe_mid: int | None = None
        self._lock = threading.Lock()
        # Connection generations tell a worker whether the message it holds can still be
        # acknowledged (packet ids belong to one connection) or will be re-delivered anyway.
        self._generation = 0
        self._redelivered_below = 0
        self._closing = False
        client = build_client(settings, topics)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client

    # ----- lifecycle -----

    def start(self, filters: list[str]) -> None:
        """Begin connecting in the background, to subscribe to the request and stream
        ``filters`` on every connect; never raises for a missing broker."""
        self._filters = filters
        s = self.settings
        connect_properties = Properties(PacketTypes.CONNECT)
        connect_properties.SessionExpiryInterval = s.mqtt_session_expiry_s
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

    def begin_closing(self) -> bool:
        """Mark the session as closing (a disconnect is no longer news); ``False`` if it
        already was."""
        with self._lock:
            if self._closing:
                return False
            self._closing = True
            return True

    def say_offline(self) -> None:
        """``offline`` on the status topic, waited for briefly; the will covers a failure."""
        if self._connected.is_set():
            info = self._client.publish(self.topics.status, OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # gone again: the will says it
                info.wait_for_publish(timeout=2.0)

    def disconnect(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def status(self) -> str:
        """``connected`` / ``disconnected``, for ``/health``."""
        return "connected" if self._connected.is_set() else "disconnected"

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # ----- publishing and settling -----

    def publish(self, message: Outbound) -> None:
        """QoS 1 publish that never raises; while disconnected paho keeps it for later."""
        properties = None
        if message.json_payload or message.correlation_data is not None:
            properties = Properties(PacketTypes.PUBLISH)
            if message.json_payload:
                properties.PayloadFormatIndicator = 1
                properties.ContentType = "application/json"
            if message.correlation_data is not None:
                properties.CorrelationData = message.correlation_data
        try:
            info = self._client.publish(message.topic, message.payload, qos=1,
                                        retain=message.retain, properties=properties)
        except ValueError:  # e.g. an invalid response topic from a requester
            log.warning("bus publish refused", extra={"event": "bus_publish_invalid",
                                                      "topic": message.topic})
            return
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("bus publish failed",
                        extra={"event": "bus_publish_failed", "topic": message.topic,
                               "rc": mqtt.error_string(info.rc)})

    def ack(self, message: mqtt.MQTTMessage, generation: int) -> None:
        """Acknowledge on the connection the message came on; on a newer connection its packet
        id may already name another message, and the broker re-delivers it anyway."""
        if message.qos == 0:
            return
        with self._lock:
            current = generation == self._generation
        if current:
            self._client.ack(message.mid, message.qos)

    def superseded(self, generation: int) -> bool:
        with self._lock:
            return generation < self._redelivered_below

    # ----- paho callbacks (network thread; an exception would kill it) -----

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
            _, self._subscribe_mid = client.subscribe(subscriptions(self.topics, self._filters))
            if self.topics.share_group:
                # A persistent session may still hold plain subscriptions from a run without
                # a share group; they would hand this instance every request a second time.
                client.unsubscribe(self._filters)
            log.info(
                "bus connected",
                extra={"event": "bus_connected", "session_present": flags.session_present,
                       "generation": self._generation},
            )
        except Exception:
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
            self.publish(Outbound(self.topics.status, ONLINE, retain=True))
            self._on_ready()
            self._connected.set()
        except Exception:
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
        try:
            self._on_message_cb(self._inbound(msg))
        except Exception:
            log.exception("bus on_message failed", extra={"event": "bus_callback_failed"})

    def _inbound(self, msg: mqtt.MQTTMessage) -> Inbound:
        """paho's message as plain data, settled on this connection."""
        properties = getattr(msg, "properties", None)
        correlation = getattr(properties, "CorrelationData", None)
        return Inbound(
            topic=msg.topic,
            payload=bytes(msg.payload),
            response_topic=_str_or_none(getattr(properties, "ResponseTopic", None)),
            correlation_data=bytes(correlation) if correlation is not None else None,
            content_type=_str_or_none(getattr(properties, "ContentType", None)),
            delivery=_SessionDelivery(self, msg, self._generation),
        )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
