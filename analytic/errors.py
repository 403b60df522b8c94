"""Errors a client can cause, each with a stable code and the HTTP status it maps to.

Both doors turn an ``AnalyticError`` into their own error message, so a client sees the same
``code`` over HTTP and over the bus.
"""

from __future__ import annotations


class AnalyticError(Exception):
    """A request the analytic cannot serve, through no fault of its own."""

    code = "bad_request"
    status = 400
    # Extra HTTP response headers (Retry-After, WWW-Authenticate); the bus ignores them.
    headers: dict[str, str] | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        field: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field  # the request field at fault, when there is one
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class BadRequest(AnalyticError):
    code = "bad_request"
    status = 400


class UnsupportedAudio(AnalyticError):
    code = "unsupported_audio"
    status = 415


class NoSpeech(AnalyticError):
    code = "no_speech"
    status = 422


class TooShort(AnalyticError):
    code = "too_short"
    status = 422


class TooLong(AnalyticError):
    code = "too_long"
    status = 413


class TooLarge(AnalyticError):
    code = "too_large"
    status = 413


# --- household voiceprints (analytic/household.py, analytic/streams.py) ---


class NotFound(AnalyticError):
    """No such enrolled person or stream session (or the session expired)."""

    code = "not_found"
    status = 404


class Conflict(AnalyticError):
    """The request contradicts what is stored, e.g. a voiceprint made by another encoder."""

    code = "conflict"
    status = 409


class Forbidden(AnalyticError):
    """Switched off by configuration, e.g. exporting voiceprint vectors."""

    code = "forbidden"
    status = 403


class Busy(AnalyticError):
    """A bounded resource is full, e.g. the number of open stream sessions."""

    code = "busy"
    status = 503


# --- access control and back-pressure on HTTP (analytic/auth.py) ---


class Unauthorized(AnalyticError):
    """No bearer token, or a wrong one, while tokens are configured."""

    code = "unauthorized"
    status = 401


class RateLimited(AnalyticError):
    """The client made more requests this minute than ``rate_limit_per_min`` allows."""

    code = "rate_limited"
    status = 429


# --- gender and arousal analysis (analytic/analysis.py) ---


class BadOutputPeriod(AnalyticError):
    """``output_period`` is not a positive multiple of 64 ms (as in the Deeptone API)."""

    code = "bad_output_period"
    status = 422
