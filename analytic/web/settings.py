"""The HTTP door's settings (``VOICEGATE_*``): bind address, waitress, tokens, back-pressure."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from analytic.settings import MEGABYTE, VoicegateSettings


class HttpSettings(VoicegateSettings):
    """Read by ``analytic.web`` only; the core never sees them."""

    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(7070, ge=0, le=65535, description="HTTP port.")
    http_threads: int | None = Field(
        None, ge=1,
        description="waitress worker threads; unset = max_concurrent + max_waiting + 1, so "
        "/health always has a thread.",
    )
    http_connection_limit: int = Field(
        512, ge=8,
        description="Open HTTP connections waitress accepts at once (idle ones included); past "
        "it new connections wait. Keep it below the process's file descriptor limit.",
    )
    http_channel_timeout_s: int = Field(
        30, ge=1,
        description="An HTTP connection idle this long is closed, so idle sockets cannot hold "
        "every connection slot.",
    )
    max_request_bytes: int = Field(20 * MEGABYTE, gt=0, description="Largest request body.")
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token every HTTP route but /health requires; unset = no token, and "
        "then HTTP binds to loopback only unless allow_unauthenticated_remote (never logged).",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token for enrolment management (POST/DELETE /enrollments*, "
        "voiceprint export); unset = api_token serves for those too (never logged).",
    )
    allow_unauthenticated_remote: bool = Field(
        False,
        description="Let `serve` bind to a non-loopback address with no token (trusted "
        "networks only, e.g. a container behind a port published on 127.0.0.1).",
    )
    max_concurrent: int | None = Field(
        None, ge=1,
        description="Audio requests decoded and scored at once over HTTP; unset = cores. "
        "Keep it below http_threads so /health always has a thread.",
    )
    max_waiting: int = Field(
        1, ge=0,
        description="Audio requests waiting for one of max_concurrent; beyond it HTTP 503 busy.",
    )
    max_wait_s: float = Field(
        30.0, gt=0.0,
        description="A waiting audio request gives up after this long with HTTP 503 busy.",
    )
    rate_limit_per_min: int = Field(
        0, ge=0,
        description="Requests per minute one client (its token, else its address) may make; "
        "0 = no limit. Beyond it HTTP 429 rate_limited.",
    )


    @model_validator(mode="after")
    def _size_the_http_workers(self) -> HttpSettings:
        """Unset sizes follow ``cores`` (counted by the shared base first)."""
        if self.max_concurrent is None:
            self.max_concurrent = self.cores
        if self.http_threads is None:
            self.http_threads = (self.max_concurrent or 1) + self.max_waiting + 1
        return self
