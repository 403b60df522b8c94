"""Every verification result also goes to the SIFIS-Home DHT, as the original analytic does.

sifis-home/flask_speaker_verification sends each result to the DHT's websocket
(``ws://localhost:3000/ws``) as one text frame: the ``RequestPostTopicUUID`` JSON, which the
DHT stores under its topic name and uuid and announces to its other clients. This sends the
same message (``SifisResult``, the SIFIS URL's 200 body), but never on the request's path:
``submit`` only appends to a bounded queue, and one thread owns the websocket, sends in
order, and reconnects with a doubling delay. So a DHT that is down, slow or gone never delays
or fails an answer: messages wait (the oldest dropped when the queue is full; the DHT keeps
only a topic's latest value anyway) and go out, in order, once it is back. Delivery is best
effort: a message written just before the link breaks may be lost with it.

The DHT also sends every client each change it sees; those frames are read and dropped so a
busy DHT cannot stall the link. No audio, vector or message content is ever logged.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import websocket

from analytic.schemas import SifisResult, VerificationResult
from analytic.settings import CoreSettings

log = logging.getLogger(__name__)

CONNECTED = "connected"
DISCONNECTED = "disconnected"
POLL_S = 0.25  # an idle link reads what the DHT sent (and so notices a close) this often
PING_S = 20.0  # an idle link pings this often, so a DHT gone without a word is noticed
MAX_READS = 64  # frames read from the DHT per pass, so a chatty DHT cannot starve sending

Connect = Callable[..., websocket.WebSocket]


def _safe_url(url: str) -> str:
    """The URL without credentials or query, fit for a log line."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


class DhtForwarder:
    """One background link to the DHT; ``listener`` is a ``VerificationService`` listener."""

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = 100,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        timeout_s: float = 10.0,
        connect: Connect = websocket.create_connection,
    ) -> None:
        self.url = url
        self._queue: deque[str] = deque()
        self._queue_size = queue_size
        self._reconnect = (reconnect_min_s, max(reconnect_min_s, reconnect_max_s))
        self._timeout_s = timeout_s
        self._connect_with = connect
        self._cond = threading.Condition()
        self._stopping = False
        self._drain_until = 0.0
        self._ws: websocket.WebSocket | None = None
        self._state = DISCONNECTED
        self._warned = False  # one warning per outage, not one per retry or per dropped message
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="voicegate-dht", daemon=True)

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> DhtForwarder | None:
        """The forwarder ``VOICEGATE_SIFIS_DHT_URL`` asks for, or None when it is unset."""
        if not settings.sifis_dht_url:
            return None
        return cls(settings.sifis_dht_url, queue_size=settings.sifis_dht_queue_size,
                   reconnect_min_s=settings.sifis_dht_reconnect_min_s,
                   reconnect_max_s=settings.sifis_dht_reconnect_max_s,
                   timeout_s=settings.sifis_dht_timeout_s)

    # ----- the request side: never blocks on the network -----

    def status(self) -> str:
        """``connected`` or ``disconnected``, for ``/health``."""
        return self._state

    def listener(self, result: VerificationResult) -> None:
        self.submit(SifisResult.from_result(result))

    def submit(self, message: SifisResult) -> None:
        text = message.model_dump_json()
        with self._cond:
            dropped = len(self._queue) >= self._queue_size
            if dropped:
                self._queue.popleft()
                self._dropped += 1
            self._queue.append(text)
            self._cond.notify()
        if dropped and self._dropped == 1:
            log.warning("dht queue full: dropping the oldest messages",
                        extra={"event": "dht_dropped", "queue_size": self._queue_size})

    def start(self) -> None:
        self._thread.start()
        log.info("dht forwarding on", extra={"event": "dht_start", "url": _safe_url(self.url)})

    def stop(self, drain_timeout: float = 2.0) -> None:
        """Send what is queued while connected (up to ``drain_timeout``), then close."""
        with self._cond:
            self._stopping = True
            self._drain_until = time.monotonic() + drain_timeout
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(drain_timeout + self._timeout_s + 1.0)

    # ----- the link thread -----

    def _run(self) -> None:
        delay = self._reconnect[0]
        idle_since = time.monotonic()
        while not self._finished():
            if self._ws is None:
                if self._open():
                    delay, idle_since = self._reconnect[0], time.monotonic()
                else:
                    self._sleep(delay)
                    delay = min(delay * 2, self._reconnect[1])
                continue
            try:
                text = self._head(POLL_S)
                if text is not None:
                    self._ws.send(text)
                    self._sent(text)
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > PING_S:
                    self._ws.ping()
                    idle_since = time.monotonic()
                self._read_incoming()
            except (websocket.WebSocketException, OSError) as exc:
                self._lost(exc)
            except Exception as exc:  # a bug here must not end forwarding for good
                log.exception("dht link failed", extra={"event": "dht_internal_error"})
                self._lost(exc)
                self._sleep(self._reconnect[1])
        self._close()

    def _finished(self) -> bool:
        with self._cond:
            if not self._stopping:
                return False
            return (not self._queue or self._ws is None
                    or time.monotonic() >= self._drain_until)

    def _open(self) -> bool:
        try:
            ws = self._connect_with(self.url, timeout=self._timeout_s)
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            if not self._warned:
                self._warned = True
                log.warning("dht unreachable; retrying", extra={
                    "event": "dht_unreachable", "url": _safe_url(self.url),
                    "reason": type(exc).__name__})
            return False
        self._ws, self._state, self._warned = ws, CONNECTED, False
        with self._cond:
            waiting, self._dropped = len(self._queue), 0
        log.info("dht connected", extra={"event": "dht_connected", "url": _safe_url(self.url),
                                         "queued": waiting})
        return True

    def _lost(self, exc: BaseException) -> None:
        log.warning("dht link lost; reconnecting", extra={
            "event": "dht_disconnected", "reason": type(exc).__name__})
        self._warned = True  # the warning for this outage is this one
        self._close()

    def _close(self) -> None:
        ws, self._ws, self._state = self._ws, None, DISCONNECTED
        if ws is not None:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.close(timeout=1)

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._stopping, timeout=seconds)

    def _head(self, timeout: float) -> str | None:
        """The oldest queued message, left queued until it is sent (order is kept across a
        lost link: it goes first on the next one)."""
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._stopping, timeout=timeout)
            return self._queue[0] if self._queue else None

    def _sent(self, text: str) -> None:
        with self._cond:
            if self._queue and self._queue[0] is text:  # not already dropped as the oldest
                self._queue.popleft()

    def _read_incoming(self) -> None:
        ws = self._ws
        for _ in range(MAX_READS):
            if ws is None or not _readable(ws):
                return
            opcode, _frame = ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise websocket.WebSocketConnectionClosedException("closed by the DHT")


def _readable(ws: websocket.WebSocket) -> bool:
    sock = ws.sock
    if sock is None:
        raise websocket.WebSocketConnectionClosedException("no socket")
    pending = getattr(sock, "pending", None)  # TLS may hold decrypted bytes select cannot see
    if pending is not None and pending():
        return True
    return bool(select.select([sock], [], [], 0)[0])
