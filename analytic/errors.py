"""Errors a client can cause, each with a stable code and the HTTP status it maps to.

Both doors turn an ``AnalyticError`` into their own error message, so a client sees the same
``code`` over HTTP and over the bus.
"""

from __future__ import annotations


class AnalyticError(Exception):
    """A request the analytic cannot serve, through no fault of its own."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
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
