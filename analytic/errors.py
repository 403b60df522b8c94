"""Errors a client can cause, each with a stable code and nothing of any transport.

Both doors turn an ``AnalyticError`` into their own error message, so a client sees the same
``code`` over HTTP and over the bus; each door maps codes to its own statuses (HTTP's are in
``analytic/web/errors.py``; the bus has none, only the code).
"""

from __future__ import annotations


class AnalyticError(Exception):
    """A request the analytic cannot serve, through no fault of its own."""

    code = "bad_request"
    # When trying again makes sense, after about this many seconds (HTTP: Retry-After).
    retry_after_s: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field  # the request field at fault, when there is one
        if code is not None:
            self.code = code


class BadRequest(AnalyticError):
    code = "bad_request"


class UnsupportedAudio(AnalyticError):
    code = "unsupported_audio"


class NoSpeech(AnalyticError):
    code = "no_speech"


class TooShort(AnalyticError):
    code = "too_short"


class TooLong(AnalyticError):
    code = "too_long"


class TooLarge(AnalyticError):
    code = "too_large"


# --- household voiceprints (analytic/household.py, analytic/streams.py) ---


class NotFound(AnalyticError):
    """No such enrolled person or stream session (or the session expired)."""

    code = "not_found"


class Conflict(AnalyticError):
    """The request contradicts what is stored, e.g. a voiceprint made by another encoder."""

    code = "conflict"


class Forbidden(AnalyticError):
    """Switched off by configuration, e.g. exporting voiceprint vectors."""

    code = "forbidden"


class Busy(AnalyticError):
    """A bounded resource is full, e.g. the number of open stream sessions."""

    code = "busy"


# --- gender and arousal analysis (analytic/analysis.py) ---


class BadOutputPeriod(AnalyticError):
    """``output_period`` is not a positive multiple of 64 ms (as in the Deeptone API)."""

    code = "bad_output_period"
