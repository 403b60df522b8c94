"""Load the model once and build the core service around it (every command that needs audio)."""

from __future__ import annotations

import logging
import time

from analytic.service import VerificationService
from analytic.settings import CoreSettings

log = logging.getLogger("analytic")


def build_service(settings: CoreSettings) -> VerificationService:
    """The service with its encoder loaded; logs how long the model took."""
    from analytic.encoders import load_encoder

    started = time.perf_counter()
    service = VerificationService(settings, load_encoder(settings))
    log.info("model loaded", extra={"event": "model_loaded", "model": service.encoder.name,
                                    "seconds": round(time.perf_counter() - started, 3)})
    return service
