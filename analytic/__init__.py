"""Voicegate analytic: offline speaker verification for the smart home.

The core never talks HTTP or MQTT itself; doors (``analytic.http``, ``bus_adapter``) call
``analytic.service.VerificationService``.
"""

__version__ = "0.1.0"
