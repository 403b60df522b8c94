"""Per-request thresholds: a caller may make a decision stricter, never looser, on its own.

A threshold sent with a request replaces the configured one for that decision. Raising it only
makes "Same Speaker" (or a household match) harder to get; lowering it forges acceptances, down
to "everyone is dad" at -1000. So a lower threshold needs the admin (the admin token over HTTP,
the admin topics on the bus) or ``VOICEGATE_ALLOW_THRESHOLD_OVERRIDE``. Every result says which
threshold it used (``threshold_source``), and the bus never lets a ``request`` threshold update a
shared, retained state.
"""

from __future__ import annotations

from typing import Literal

from analytic.errors import Forbidden

ThresholdSource = Literal["default", "request"]
DEFAULT: ThresholdSource = "default"
REQUEST: ThresholdSource = "request"


class ThresholdNotAllowed(Forbidden):
    code = "threshold_not_allowed"


def choose_threshold(
    requested: float | None, default: float, may_lower: bool
) -> tuple[float, ThresholdSource]:
    """The threshold to decide with and where it came from; refuses a looser one unless
    ``may_lower``. Equal to the default counts as the default (nothing was changed)."""
    if requested is None or requested == default:
        return default, DEFAULT
    if requested < default and not may_lower:
        raise ThresholdNotAllowed(
            f"threshold {requested:g} is below the default {default:g}: only the admin may "
            "lower it (or set VOICEGATE_ALLOW_THRESHOLD_OVERRIDE)"
        )
    return requested, REQUEST
