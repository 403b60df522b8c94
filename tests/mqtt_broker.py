"""A real Mosquitto for the tests (and the bus benchmark), plus a recording MQTT 5 client.

The broker runs from a generated config on a free port with persistence on, so a test can stop
it (SIGTERM makes Mosquitto save its sessions and queued messages) and start it again.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MAX_PACKET_BYTES = 64 * 1024 * 1024  # above the analytic's 20 MB so it, not the broker, refuses


class MosquittoBroker:
    """``mosquitto -c <tmp conf>`` on 127.0.0.1:``port``; ``stop``/``start`` keep its data."""

    def __init__(self, workdir: Path, port: int, listener_conf: str = "") -> None:
        """``listener_conf`` replaces ``allow_anonymous true`` (TLS, password file, ...)."""
        self.host = "127.0.0.1"
        self.port = port
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        user = pwd.getpwuid(os.getuid()).pw_name  # as root Mosquitto would switch to 'mosquitto'
        self.conf.write_text(
            f"listener {port} 127.0.0.1\n"
            f"{listener_conf or 'allow_anonymous true'}\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            f"max_packet_size {MAX_PACKET_BYTES}\n"
            "max_queued_messages 10000\n"
            f"user {user}\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Mosquitto disconnects everyone and writes its persistence file."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout)
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        self.stop()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    correlation_data: bytes | None
    content_type: str | None


class BusProbe:
    """A test-side MQTT 5 client that records everything it receives and can wait for it."""

    def __init__(
        self,
        port: int,
        subscribe: Iterable[str] = (),
        *,
        client_id: str | None = None,
        persistent: bool = False,
        host: str = "127.0.0.1",
        configure: Callable[[mqtt.Client], None] | None = None,
    ) -> None:
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.reconnect_delay_set(1, 2)
        if configure is not None:  # credentials, TLS
            configure(self.client)
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self._topics = list(subscribe)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self._connected.clear()
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600 if persistent else 0
        self.client.connect(host, port, keepalive=30, clean_start=not persistent,
                            properties=properties)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("probe could not connect")
        if self._topics and not self._subscribed.wait(10):
            raise RuntimeError("probe could not subscribe")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._topics:
            client.subscribe([(topic, 1) for topic in self._topics])
        self._connected.set()

    def _on_message(self, client, userdata, msg) -> None:
        properties = getattr(msg, "properties", None)
        received = Received(
            topic=msg.topic,
            payload=bytes(msg.payload),
            retain=bool(msg.retain),
            correlation_data=getattr(properties, "CorrelationData", None),
            content_type=getattr(properties, "ContentType", None),
        )
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_until(self, check: Callable[[list[Received]], bool], timeout: float) -> None:
        """Block until ``check(all messages so far)`` holds; ``TimeoutError`` after ``timeout``
        (naming the last messages that did arrive, to make failures readable)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:120]) for m in self.messages[-10:]]
                    raise TimeoutError(f"not within {timeout} s; last messages: {seen}")
                self._cond.wait(left)

    def wait_for(
        self, predicate: Callable[[Received], bool], timeout: float = 30.0, count: int = 1
    ) -> list[Received]:
        """The first ``count`` messages matching ``predicate``, waiting up to ``timeout``."""
        self.wait_until(lambda messages: sum(map(predicate, messages)) >= count, timeout)
        return self.matching(predicate)[:count]

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if predicate(m)]

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> mqtt.MQTTMessageInfo:
        properties = None
        if response_topic or correlation_data:
            properties = Properties(PacketTypes.PUBLISH)
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation_data:
                properties.CorrelationData = correlation_data
        return self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
