"""HTTP's side of the error codes: the status each core error maps to, and HTTP-only errors.

The core raises errors with a stable ``code`` only (``analytic/errors.py``); this is the one
place that knows HTTP statuses, so the bus and the core never carry them.
"""

from __future__ import annotations

from analytic.errors import (
    AnalyticError,
    BadOutputPeriod,
    BadRequest,
    Busy,
    Conflict,
    Forbidden,
    NoSpeech,
    NotFound,
    TooLarge,
    TooLong,
    TooShort,
    UnsupportedAudio,
)


class Unauthorized(AnalyticError):
    """No bearer token, or a wrong one, while tokens are configured."""

    code = "unauthorized"

    def __init__(self, message: str, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge  # the WWW-Authenticate value


class RateLimited(AnalyticError):
    """The client made more requests this minute than ``rate_limit_per_min`` allows."""

    code = "rate_limited"


# By class, most specific first: a code given at raise time keeps its class's status.
STATUS_BY_CLASS: tuple[tuple[type[AnalyticError], int], ...] = (
    (Unauthorized, 401),
    (RateLimited, 429),
    (UnsupportedAudio, 415),
    (NoSpeech, 422),
    (TooShort, 422),
    (BadOutputPeriod, 422),
    (TooLong, 413),
    (TooLarge, 413),
    (NotFound, 404),
    (Conflict, 409),
    (Forbidden, 403),
    (Busy, 503),
    (BadRequest, 400),
)


def http_status(error: AnalyticError) -> int:
    """The HTTP status of a core (or HTTP) error; anything unlisted is the client's 400."""
    for kind, status in STATUS_BY_CLASS:
        if isinstance(error, kind):
            return status
    return 400


def http_headers(error: AnalyticError) -> dict[str, str]:
    """Retry-After for errors worth retrying; WWW-Authenticate for a missing token."""
    headers: dict[str, str] = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = error.challenge
    return headers
