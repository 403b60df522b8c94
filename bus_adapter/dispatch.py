"""Dispatch: from a received message to a served, answered and acknowledged request.

Trust comes from the topic (``topics.py``): the device is the topic's second level, bound to
the client's user name by the broker's ACL; a reserved device name gets only ``forbidden``.
Every request kind takes the same path: decode (``decoding.py``), drop a duplicate (per device,
kind and ``request_id``: ``RecentRequests``), serve (``kinds.py``), publish on the kind's result
topic and to the requester's own ``reply_to`` / response topic, or an error on
``<prefix>/error``; then acknowledge, so a request not yet answered when the process died is
delivered again. Requests run on a bounded ``WorkerPool``: when it is full the requester gets
``busy`` at once. Stream chunks are decoded on one chunk worker of their own, never on the
network thread (a FLAC chunk costs real CPU), in arrival order; a stream's ``end`` passes
through that same worker before it reaches the pool, so it sees every chunk sent before it.
"""

from __future__ import annotations

import logging
import time

from analytic.errors import AnalyticError
from bus_adapter.decoding import Refusal, parse, read_header, reply_route
from bus_adapter.dedup import RecentRequests
from bus_adapter.envelope import Inbound
from bus_adapter.kinds import STREAM_END_KIND, Answer, CoreCalls, Kind
from bus_adapter.messages import BusError, peek_request_id
from bus_adapter.publishing import Publisher
from bus_adapter.settings import BusSettings
from bus_adapter.streams import session_key
from bus_adapter.topics import CHUNK, RESERVED_DEVICES, Incoming, Topics
from bus_adapter.workers import WorkerPool

log = logging.getLogger(__name__)

# Chunks waiting for the chunk worker; beyond it a chunk is refused as ``busy``.
CHUNK_QUEUE_FACTOR = 4


def request_filters(topics: Topics, kinds: list[str], streams: bool, shared: bool) -> list[str]:
    """Per-device request (and stream) filters, and the shared topics when they are on."""
    filters = [topics.device_request_of(name) for name in kinds]
    if streams:
        filters += topics.device_stream_filters
    if shared:
        filters += [topics.request_of(name) for name in kinds]
        if streams:
            filters += [topics.stream_chunk_filter, topics.stream_end_filter]
    return filters


class Dispatcher:
    """Routes messages to the workers and answers them; ``accept`` runs on the network thread."""

    def __init__(self, settings: BusSettings, topics: Topics, calls: CoreCalls,
                 publisher: Publisher) -> None:
        self.settings = settings
        self.topics = topics
        self.publisher = publisher
        self._kinds = calls.kinds()
        self._stream_end = calls.stream_end()
        self._streams = calls.streams
        self._pool = WorkerPool(settings.mqtt_workers or 1, settings.mqtt_queue_size)
        # One thread, so chunks keep their order; off the network thread, so decoding a chunk
        # never stalls pings, acknowledgements and every other device's requests.
        self._chunk_pool = WorkerPool(
            1, settings.mqtt_queue_size * CHUNK_QUEUE_FACTOR, name="bus-chunks")
        self._recent = RecentRequests(settings.mqtt_dedup_window_s)
        self._closing = False

    @property
    def filters(self) -> list[str]:
        """What the session subscribes to for the kinds served here."""
        return request_filters(self.topics, list(self._kinds), self._streams is not None,
                               self.settings.mqtt_shared_topics)

    def start(self) -> None:
        self._pool.start()
        self._chunk_pool.start()

    def stop(self, drain_timeout: float) -> int:
        """Finish queued work (bounded); returns how many messages are left unacknowledged,
        which the broker hands to this session again on the next start."""
        self._closing = True
        dropped = self._chunk_pool.stop(drain_timeout / 2)
        return dropped + self._pool.stop(drain_timeout / 2)

    # ----- network thread: route and queue; nothing slow happens here -----

    def accept(self, message: Inbound) -> bool:
        """Take a request or stream message; ``False`` when the topic is neither (the caller
        settles it)."""
        incoming = self.topics.parse(message.topic)
        if incoming is None:
            return False
        if incoming.session is None:
            kind = self._kinds.get(incoming.kind)
        else:
            kind = self._stream_end if self._streams is not None else None
        if kind is None:
            return False
        if incoming.device in RESERVED_DEVICES:
            self._refuse(message, incoming, Refusal(
                "forbidden", f"{incoming.device!r} is a reserved name, not a device",
                peek_request_id(message.payload)))
            message.delivery.ack()
        elif incoming.kind == CHUNK:
            self._accept_chunk(message, incoming)
        elif incoming.session is not None:  # an end: after the chunks before it
            self._accept_end(message, incoming)
        else:
            self._accept_request(message, incoming, kind)
        return True

    def _accept_request(self, message: Inbound, incoming: Incoming, kind: Kind) -> None:
        if self._closing:
            return  # not acknowledged: the broker re-delivers it after our restart
        if not self._pool.submit(lambda: self.serve(message, incoming, kind)):
            self._busy(message, incoming, kind.name)

    def _accept_end(self, message: Inbound, incoming: Incoming) -> None:
        """Queue the ``end`` behind the chunks already queued; the chunk worker then hands it
        to the pool, where the model runs."""
        if self._closing:
            return
        forward = lambda: self._accept_request(message, incoming, self._stream_end)  # noqa: E731
        if not self._chunk_pool.submit(forward):
            self._busy(message, incoming, STREAM_END_KIND)

    def _accept_chunk(self, message: Inbound, incoming: Incoming) -> None:
        """Queue one stream chunk for the chunk worker (in order)."""
        if self._closing or self._streams is None:
            return
        if not self._chunk_pool.submit(lambda: self._append_chunk(message, incoming)):
            self._busy(message, incoming, CHUNK)

    def _busy(self, message: Inbound, incoming: Incoming, kind: str) -> None:
        request_id = peek_request_id(message.payload)
        log.warning("bus busy", extra={"event": "bus_busy", "request_id": request_id,
                                       "kind": kind})
        self._refuse(message, incoming,
                     Refusal("busy", "the analytic is busy; retry later", request_id))
        message.delivery.ack()

    # ----- workers -----

    def _append_chunk(self, message: Inbound, incoming: Incoming) -> None:
        """Chunk worker: decode and append one chunk (bounded by the stream limits)."""
        assert self._streams is not None and incoming.session is not None
        session = incoming.session
        try:
            info = self._streams.append(session_key(incoming.device, session), message.payload,
                                        message.content_type)
            log.debug("bus stream chunk", extra={"event": "bus_chunk", "session": session,
                                                 "chunks": info.chunks,
                                                 "duration_s": info.duration_s})
        except AnalyticError as exc:
            log.info("bus stream chunk refused",
                     extra={"event": "bus_chunk_refused", "session": session, "code": exc.code})
            self._refuse(message, incoming,
                         Refusal(exc.code, f"stream {session}: {exc.message}"))
        except Exception:
            log.exception("bus stream chunk failed", extra={"event": "bus_internal_error"})
            self._refuse(message, incoming, Refusal(
                "internal_error", f"stream {session}: the analytic failed to process the chunk"))
        finally:
            message.delivery.ack()

    def serve(self, message: Inbound, incoming: Incoming, kind: Kind) -> None:
        """Worker thread: answer one request, then acknowledge it."""
        if message.delivery.superseded():
            log.info("bus request left for re-delivery", extra={"event": "bus_redelivery"})
            return
        try:
            self._answer(message, incoming, kind)
        finally:
            message.delivery.ack()

    def _answer(self, message: Inbound, incoming: Incoming, kind: Kind) -> None:
        started = time.perf_counter()
        try:
            header = read_header(message, incoming, self.topics,
                                 self.settings.mqtt_max_payload_bytes)
            request_id, reply_to = header.request_id, header.reply_to
            # Per device: a device sending another's next request_id first squats only its own.
            if request_id is not None and not self._recent.first_time(
                (incoming.device, kind.name, request_id)
            ):
                log.info("bus duplicate request ignored",
                         extra={"event": "bus_duplicate", "request_id": request_id,
                                "kind": kind.name})
                return
            request = parse(header, kind.parse)
            del header  # the base64 text; the decoded bytes are all we still need
            answer = self._serve_kind(kind, request, incoming, request_id, reply_to)
        except Refusal as refusal:
            self._refuse(message, incoming, refusal)
            return
        if not answer.published:
            self.publisher.json(answer.result_topic, answer.payload)
        # The result topic has it (from a listener, or just above); now the requester's own.
        self.publisher.reply(reply_route(message, incoming, self.topics, reply_to),
                             answer.payload, skip=answer.result_topic)
        log.info(
            "bus request served",
            extra={"event": "bus_served", "request_id": request_id, "kind": kind.name,
                   "analysis_id": answer.analysis_id,
                   "seconds": round(time.perf_counter() - started, 3)},
        )

    @staticmethod
    def _serve_kind(kind: Kind, request: object, incoming: Incoming, request_id: str | None,
                    reply_to: str | None) -> Answer:
        """The core's answer; its refusals, and any failure, as a ``Refusal``."""
        try:
            return kind.serve(request, incoming)
        except AnalyticError as exc:
            raise Refusal(exc.code, exc.message, request_id, reply_to) from None
        except Exception:
            log.exception("bus request failed",
                          extra={"event": "bus_internal_error", "request_id": request_id,
                                 "kind": kind.name})
            raise Refusal("internal_error", "the analytic failed to process the request",
                          request_id, reply_to) from None

    def _refuse(self, message: Inbound, incoming: Incoming, refusal: Refusal) -> None:
        log.info("bus request refused",
                 extra={"event": "bus_refused_request", "request_id": refusal.request_id,
                        "code": refusal.code, "device": incoming.device})
        self.publisher.error(
            reply_route(message, incoming, self.topics, refusal.reply_to),
            BusError(request_id=refusal.request_id, code=refusal.code, message=refusal.message))
