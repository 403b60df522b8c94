"""``serve``: the one place the doors meet the core. HTTP and, when ``mqtt_enabled``, the bus
adapter, in one process sharing one model.

Both doors share one household service too: one store connection, one set of stream sessions,
and one listener list, so an identification over HTTP reaches the bus's speaker topic. The
adapter connects in the background, so HTTP serves whether or not a broker is there
(``/health`` says ``bus: disconnected`` meanwhile). With ``sifis_dht_url`` every verification
result is also forwarded to the SIFIS-Home DHT, from its own thread, so a missing DHT never
holds up an answer either (``dht: disconnected``). SIGTERM and SIGINT stop all of it cleanly:
queued bus requests are finished, ``offline`` is published, the session is left for the next
start, and the voiceprint store is closed last.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import TYPE_CHECKING

from analytic.cli.settings import Settings

if TYPE_CHECKING:
    from analytic.household import HouseholdService
    from analytic.service import VerificationService

log = logging.getLogger("analytic")


def serve(settings: Settings) -> int:
    """Check what can be checked before the model loads, then load it and serve."""
    from analytic.web.auth import bind_refusal, log_access_mode
    from analytic.web.server import port_refusal

    # A wrong bind or a busy port is answered before the model costs seconds to load.
    if refusal := bind_refusal(settings) or port_refusal(settings):
        log.error(refusal, extra={"event": "refused_to_start", "host": settings.host})
        print(f"voicegate: {refusal}", file=sys.stderr)
        return 2
    from analytic.cli.build import build_service
    from analytic.household import build_household
    from analytic.voiceprints.crypto import VoiceprintKeyError
    from analytic.voiceprints.store import StoreError

    service = build_service(settings)
    log_access_mode(settings)
    try:
        household = build_household(service)  # opens the store: a bad store stops start-up
    except (StoreError, VoiceprintKeyError) as exc:
        log.error("voiceprint store unusable", extra={"event": "refused_to_start",
                                                      "reason": str(exc)})
        print(f"voicegate: {exc}", file=sys.stderr)
        return 2
    try:
        return _serve(service, household, settings)
    finally:
        household.close()


def _serve(service: VerificationService, household: HouseholdService,
           settings: Settings) -> int:
    from analytic.dht import DhtForwarder
    from analytic.web.app import create_app
    from analytic.web.server import make_server

    adapter = None
    dht = DhtForwarder.from_settings(settings)
    if settings.mqtt_enabled:
        from bus_adapter.adapter import BusAdapter

        adapter = BusAdapter(service, household=household, settings=settings)
    if dht is not None:
        service.add_result_listener(dht.listener)
    app = create_app(service, bus_status=adapter.status if adapter else None,
                     household=household, dht_status=dht.status if dht else None,
                     settings=settings)
    server = make_server(app, settings)  # binds first: a busy port fails before the bus
    signal.signal(signal.SIGTERM, _stop_on_signal)
    if adapter is not None:
        adapter.start()
    if dht is not None:
        dht.start()
    log.info("serving http", extra={"event": "http_ready", "host": settings.host,
                                    "port": settings.port})
    try:
        server.run()  # waitress returns (swallowing KeyboardInterrupt) on Ctrl-C, SIGTERM
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping", extra={"event": "stopping"})
        server.close()
        if adapter is not None:
            adapter.stop()
        if dht is not None:
            dht.stop()
    return 0


def _stop_on_signal(signum: int, frame: object) -> None:
    """SIGTERM (docker stop, systemd) takes the same clean path as Ctrl-C."""
    raise KeyboardInterrupt
