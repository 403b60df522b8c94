"""Who may use the HTTP door, and how much: bearer tokens, a rate limit, bounded concurrency.

One ``before_request`` hook (registered by ``install``) runs, in order:

1. authentication: with ``api_token`` or ``admin_token`` set, every route but ``/health`` needs
   ``Authorization: Bearer <token>`` (401 ``unauthorized``), and enrolment management (POST and
   DELETE on ``/enrollments*``, voiceprint export) needs the admin token (403 ``forbidden``);
   whoever passes as the admin (``is_admin``) may also send a per-request threshold below the
   default (``analytic.thresholds``);
2. a per-client rate limit (``rate_limit_per_min``; 429 ``rate_limited`` with Retry-After);
3. a gate on the routes that decode and score audio: ``max_concurrent`` at once, ``max_waiting``
   more waiting; beyond that, or after ``max_wait_s``, 503 ``busy`` with Retry-After. Without it
   a burst of uploads would queue in waitress unseen while memory and latency grow, and
   ``/health`` would wait behind them.

With no token configured, ``bind_refusal`` keeps ``serve`` on the loopback interface unless the
operator opts in. Tokens are compared in constant time and never logged; the rate limiter keys
clients by a hash of their token, never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, current_app, g, request

from analytic.errors import Busy, Forbidden
from analytic.web.errors import RateLimited, Unauthorized
from analytic.web.settings import HttpSettings

log = logging.getLogger(__name__)

AUTH_KEY = "voicegate.auth"
OPEN_ENDPOINTS = {"api.health"}  # a load balancer or Docker's healthcheck has no token
# Endpoints that decode audio and run a model: the ones the concurrency gate bounds.
ANALYSIS_ENDPOINTS = {
    "api.speaker_verification",
    "api.speaker_verification_sifis",
    "analysis.analyze",
    "household.enrol",
    "household.enrol_digits",
    "household.verify",
    "household.identify",
    "household.append_chunk",
}
CHALLENGE = 'Bearer realm="voicegate"'
MAX_TRACKED_CLIENTS = 4096  # rate-limit buckets kept; idle (full) ones are dropped beyond it


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name, "" or "*": it may resolve to a public interface


def bind_refusal(settings: HttpSettings) -> str | None:
    """Why ``serve`` must not start with these settings, or None when it may.

    Without a token anyone who can reach the port can enrol, delete and identify household
    members, so an open port is allowed only on loopback or when explicitly asked for.
    """
    if settings.api_token or settings.admin_token or is_loopback(settings.host):
        return None
    if settings.allow_unauthenticated_remote:
        return None
    return (
        f"refusing to serve on {settings.host!r} without a token: set VOICEGATE_API_TOKEN "
        "(and VOICEGATE_ADMIN_TOKEN), bind to 127.0.0.1, or set "
        "VOICEGATE_ALLOW_UNAUTHENTICATED_REMOTE=true on a trusted network"
    )


def log_access_mode(settings: HttpSettings) -> None:
    """One start-up line saying whether HTTP is protected (never the tokens themselves)."""
    protected = bool(settings.api_token or settings.admin_token)
    loopback = is_loopback(settings.host)
    if protected:
        message = "http access: bearer token required on every route but /health"
    elif loopback:
        message = ("http access: no token, so loopback only (set VOICEGATE_API_TOKEN to serve "
                   "other machines)")
    else:
        message = "http access: no token and a non-loopback address: open to the network"
    log.log(
        logging.INFO if protected or loopback else logging.WARNING,
        message,
        extra={"event": "http_access", "auth": "bearer" if protected else "none",
               "admin_token": bool(settings.admin_token), "host": settings.host,
               "loopback_only": loopback,
               "rate_limit_per_min": settings.rate_limit_per_min,
               "max_concurrent": settings.max_concurrent, "max_waiting": settings.max_waiting},
    )


class Gate:
    """At most ``limit`` holders, at most ``waiting`` more queued; the rest are refused."""

    def __init__(self, limit: int, waiting: int, max_wait_s: float) -> None:
        self.limit, self.waiting, self.max_wait_s = limit, waiting, max_wait_s
        self._active = 0
        self._queued = 0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        """Take a slot, waiting in line when there is room in it; ``Busy`` otherwise."""
        with self._cond:
            if self._active < self.limit:
                self._active += 1
                return
            if self._queued >= self.waiting:
                raise self._busy()
            self._queued += 1
            try:
                if not self._cond.wait_for(lambda: self._active < self.limit, self.max_wait_s):
                    raise self._busy()
                self._active += 1
            finally:
                self._queued -= 1

    def release(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify()

    def _busy(self) -> Busy:
        error = Busy(f"{self.limit} analyses running and {self.waiting} waiting; retry shortly")
        error.retry_after_s = 1
        return error


@dataclass
class _Bucket:
    tokens: float
    updated: float = field(default_factory=time.monotonic)


class RateLimiter:
    """A token bucket per client: ``per_min`` requests a minute, bursts of up to ``per_min``."""

    def __init__(self, per_min: int) -> None:
        self.per_min = per_min
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Spend one request of ``client``'s allowance, or raise ``RateLimited``."""
        rate = self.per_min / 60.0
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= MAX_TRACKED_CLIENTS:
                    self._forget_idle(now, rate)
                bucket = self._buckets[client] = _Bucket(float(self.per_min), now)
            bucket.tokens = min(self.per_min, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = math.ceil((1.0 - bucket.tokens) / rate)
        error = RateLimited(f"more than {self.per_min} requests a minute; retry in {wait} s")
        error.retry_after_s = wait
        raise error

    def _forget_idle(self, now: float, rate: float) -> None:
        """Drop buckets that have refilled (their clients are idle), so memory stays bounded."""
        for key in [k for k, b in self._buckets.items()
                    if b.tokens + (now - b.updated) * rate >= self.per_min]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_TRACKED_CLIENTS:  # all busy: forget the oldest
            del self._buckets[min(self._buckets, key=lambda k: self._buckets[k].updated)]


@dataclass
class Guard:
    """The per-app state of the hook: secrets as bytes, the limiter and the gate."""

    api_token: bytes | None
    admin_token: bytes | None
    limiter: RateLimiter | None
    gate: Gate

    @property
    def required(self) -> bool:
        return self.api_token is not None or self.admin_token is not None


def _secret(value: object) -> bytes | None:
    raw = value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]
    return raw.encode() if raw else None


def install(app: Flask, settings: HttpSettings) -> None:
    """Register the access hooks on ``app`` (called by ``create_app``)."""
    app.extensions[AUTH_KEY] = Guard(
        api_token=_secret(settings.api_token),
        admin_token=_secret(settings.admin_token),
        limiter=RateLimiter(settings.rate_limit_per_min) if settings.rate_limit_per_min else None,
        gate=Gate(settings.max_concurrent or 1, settings.max_waiting, settings.max_wait_s),
    )
    app.before_request(_before)
    app.teardown_request(_teardown)


def _matches(given: bytes, expected: bytes | None) -> bool:
    return expected is not None and hmac.compare_digest(given, expected)


def _is_admin_request() -> bool:
    """Enrolment management: changing or exporting voiceprints."""
    if request.endpoint in {"household.enrol", "household.enrol_digits",
                            "household.delete_enrolment",
                            "household.delete_all_enrolments"}:
        return True
    if request.endpoint == "household.get_enrolment":
        # Read as the route reads it (analytic.web.household._flag): a form field, else the query.
        export = (request.form.get("export") or request.args.get("export") or "").strip().lower()
        return export not in {"", "false", "0", "no", "off"}
    return False


def _authenticate(guard: Guard) -> str | None:
    """The client's identity for the rate limiter when a token was checked, else None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip().encode()
    if scheme.lower() != "bearer" or not given:
        raise _unauthorized("an 'Authorization: Bearer <token>' header is required")
    is_admin = _matches(given, guard.admin_token)
    is_user = is_admin or _matches(given, guard.api_token)
    if not is_user:
        raise _unauthorized("the bearer token is not valid")
    # Without an admin token the API token manages enrolments, so it is the admin too.
    g.voicegate_admin = is_admin or guard.admin_token is None
    if _is_admin_request() and not is_admin and guard.admin_token is not None:
        log.info("forbidden", extra={"event": "forbidden", "endpoint": request.endpoint})
        raise Forbidden("this operation needs the admin token")
    return "token:" + hashlib.sha256(given).hexdigest()[:16]


def is_admin() -> bool:
    """Whether this request passed as the admin: the admin token, the API token when no admin
    token is configured, or anyone when no token is configured at all (loopback by default)."""
    guard: Guard = current_app.extensions[AUTH_KEY]
    if not guard.required:
        return True
    return bool(g.get("voicegate_admin", False))


def _unauthorized(message: str) -> Unauthorized:
    return Unauthorized(message, CHALLENGE)


def _before() -> None:
    guard: Guard = current_app.extensions[AUTH_KEY]
    if request.endpoint in OPEN_ENDPOINTS:
        return
    client = _authenticate(guard) if guard.required else None
    if guard.limiter is not None:
        guard.limiter.check(client or f"addr:{request.remote_addr}")
    if request.endpoint in ANALYSIS_ENDPOINTS:
        guard.gate.acquire()
        g.voicegate_gate = guard.gate


def _teardown(exc: BaseException | None) -> None:
    gate: Gate | None = g.pop("voicegate_gate", None)
    if gate is not None:
        gate.release()
