"""``BusAdapter``: one analytic instance on the bus, composed of its four parts.

* ``session.py``: the paho session (connect, subscribe, reconnect, last will, acknowledgements);
* ``decoding.py``: a request's payload to one pydantic model, or a refusal naming a code;
* ``dispatch.py`` with ``kinds.py``: topics to workers to the core's services;
* ``publishing.py``: results, errors, replies, retained speaker states, discovery.

Only the session knows paho; the others exchange ``envelope.Inbound`` / ``Outbound``. This is
what ``python -m analytic serve`` wires to the core.
"""

from __future__ import annotations

import logging

from analytic.household import HouseholdService
from analytic.service import VerificationService
from bus_adapter.dispatch import Dispatcher
from bus_adapter.envelope import Inbound
from bus_adapter.kinds import CoreCalls
from bus_adapter.publishing import Publisher
from bus_adapter.session import ONLINE, BusSession
from bus_adapter.settings import BusSettings
from bus_adapter.topics import Topics

log = logging.getLogger(__name__)


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
        self.settings = settings or BusSettings.of(service.settings)
        self.topics = Topics.from_settings(self.settings)
        self.household = household
        calls = CoreCalls(service, self.topics, household, self.settings.mqtt_max_payload_bytes)
        # The session's callbacks fire only after start(), when every part below exists.
        self._session = BusSession(self.settings, self.topics, on_message=self._on_message,
                                   on_ready=self._on_ready)
        self._publisher = Publisher(self.settings, self.topics, self._session.publish)
        self._dispatcher = Dispatcher(self.settings, self.topics, calls, self._publisher)
        service.add_result_listener(self._publisher.result)
        if household is not None:
            household.add_listener(self._publisher.household_result)

    def start(self) -> None:
        """Begin connecting in the background; never raises for a missing broker."""
        self._dispatcher.start()
        self._session.start(self._dispatcher.filters)

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Finish queued requests (bounded), say ``offline``, and disconnect.

        Requests still queued after ``drain_timeout`` are left unacknowledged, so the broker
        hands them to this session again on the next start.
        """
        if not self._session.begin_closing():
            return
        dropped = self._dispatcher.stop(drain_timeout)
        self._session.say_offline()
        self._publisher.close()
        self._session.disconnect()
        log.info("bus stopped", extra={"event": "bus_stopped", "left_for_redelivery": dropped})

    def status(self) -> str:
        """``connected`` / ``disconnected``, for ``/health``."""
        return self._session.status()

    def wait_connected(self, timeout: float) -> bool:
        return self._session.wait_connected(timeout)

    def _on_ready(self) -> None:
        self._publisher.announce()

    def _on_message(self, message: Inbound) -> None:
        """Network thread: requests to dispatch; Home Assistant back online gets the
        discovery configs again (it may have lost non-retained state)."""
        if self._dispatcher.accept(message):
            return
        if message.topic == self.topics.ha_status and message.payload.strip() == ONLINE:
            self._publisher.announce()
        message.delivery.ack()
