"""What the analytic says on the bus: results, errors, replies, speaker states, discovery.

Every decision from any door (HTTP, CLI, bus) goes to its kind's result topic through the
core's listeners (``result``, ``household_result``), so ``POST /identify`` updates the retained
``<prefix>/speaker/<site>`` state exactly as a bus request does. Answers nothing listens for
(analyses, challenges) and the requester's own reply routes are published by dispatch through
``answer`` and ``reply``. A decision made with a request's own threshold never updates a
retained speaker state, and at most ``mqtt_max_sites`` sites get one, so requests naming ever
new sites cannot grow the broker's retained store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel

from analytic.schemas import (
    EnrolmentResult,
    HouseholdVerification,
    Identification,
    SifisResult,
    VerificationResult,
)
from analytic.thresholds import DEFAULT as DEFAULT_THRESHOLD
from bus_adapter.discovery import discovery_messages, speaker_discovery
from bus_adapter.envelope import Outbound, ReplyRoute
from bus_adapter.messages import BusError, SpeakerState
from bus_adapter.settings import BusSettings
from bus_adapter.topics import ENROLMENT, IDENTIFY, MEMBER_VERIFICATION, Topics

log = logging.getLogger(__name__)

DEFAULT_SITE = "default"  # the speaker topic of an identification that names no site
UNKNOWN_SPEAKER = "unknown"


class Publisher:
    """Builds every outgoing message and hands it to ``send`` (the session's ``publish``)."""

    def __init__(self, settings: BusSettings, topics: Topics,
                 send: Callable[[Outbound], None]) -> None:
        self.topics = topics
        self._send = send
        self._max_sites = settings.mqtt_max_sites
        # Each site gets a retained state and discovery config (bounded, see the docstring).
        self._sites: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """From now on the core's listeners publish nothing (the analytic is going offline)."""
        self._closed = True

    def json(self, topic: str, payload: str, correlation_data: bytes | None = None) -> None:
        self._send(Outbound(topic, payload, json_payload=True, correlation_data=correlation_data))

    # ----- the core's listeners: decisions from any door -----

    def result(self, result: VerificationResult) -> None:
        """Every decision goes to the result topic (and SIFIS-Home's)."""
        if self._closed:
            return
        self.json(self.topics.result, result.model_dump_json())
        if self.topics.sifis:
            self.json(self.topics.sifis, SifisResult.from_result(result).model_dump_json())

    def household_result(self, result: BaseModel) -> None:
        """Household results go to their result topic, and an identification also updates the
        retained speaker state of its site."""
        if self._closed:
            return
        if isinstance(result, Identification):
            self.json(self.topics.result_of(IDENTIFY), result.model_dump_json())
            self._speaker(result)
        elif isinstance(result, EnrolmentResult):
            self.json(self.topics.result_of(ENROLMENT), result.model_dump_json())
        elif isinstance(result, HouseholdVerification):
            self.json(self.topics.result_of(MEMBER_VERIFICATION), result.model_dump_json())
        # Deletions are not announced: nothing listens for them yet.

    # ----- a requester's answers -----

    def reply(self, route: ReplyRoute, payload: str, skip: str) -> None:
        """``payload`` to the requester's own routes; ``skip`` already has it."""
        if route.reply_to and route.reply_to != skip:
            self.json(route.reply_to, payload)
        if route.response_topic:
            self.json(route.response_topic, payload, correlation_data=route.correlation_data)

    def error(self, route: ReplyRoute, error: BusError) -> None:
        payload = error.model_dump_json()
        self.json(self.topics.error, payload)
        self.reply(route, payload, skip=self.topics.error)

    # ----- retained state and discovery -----

    def announce(self) -> None:
        """The device's discovery configs, and a speaker sensor for every site seen so far;
        on every connect and whenever Home Assistant says it is back ``online``."""
        for topic, payload in discovery_messages(self.topics):
            self._send(Outbound(topic, payload, retain=True))
        with self._lock:
            sites = sorted(self._sites)
        for site in sites:
            self._speaker_discovery(site)

    def _speaker(self, result: Identification) -> None:
        """The retained state of the result's site, which automations act on."""
        site = result.site or DEFAULT_SITE
        if result.threshold_source != DEFAULT_THRESHOLD:
            log.info("bus speaker state kept: request threshold",
                     extra={"event": "bus_speaker_skipped", "site": site,
                            "analysis_id": result.analysis_id})
            return
        with self._lock:
            new = site not in self._sites
            if new and len(self._sites) >= self._max_sites:
                log.warning("bus speaker state not published: too many sites",
                            extra={"event": "bus_sites_full", "site": site,
                                   "max_sites": self._max_sites})
                return
            self._sites.add(site)
        state = SpeakerState(
            speaker=result.match or UNKNOWN_SPEAKER,
            score=result.score,
            threshold=result.threshold,
            time=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            analysis_id=result.analysis_id,
        )
        self._send(Outbound(self.topics.speaker(site), state.model_dump_json(), retain=True,
                            json_payload=True))
        if new:
            self._speaker_discovery(site)
        log.info("bus speaker state", extra={"event": "bus_speaker", "site": site,
                                             "speaker": state.speaker,
                                             "analysis_id": state.analysis_id})

    def _speaker_discovery(self, site: str) -> None:
        message = speaker_discovery(self.topics, site)
        if message is not None:
            self._send(Outbound(*message, retain=True))
