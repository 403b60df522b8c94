"""One settings object, read from ``VOICEGATE_*`` environment variables.

Every default here is documented in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MEGABYTE = 1024 * 1024


class Settings(BaseSettings):
    """Runtime configuration. Field names map to ``VOICEGATE_<NAME>`` variables."""

    model_config = SettingsConfigDict(env_prefix="VOICEGATE_", env_file=None, extra="ignore")

    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(7070, ge=0, le=65535, description="HTTP port.")
    http_threads: int = Field(4, ge=1, description="waitress worker threads.")

    encoder: Literal["ge2e", "ecapa"] = Field("ge2e", description="Speaker encoder to load.")
    ecapa_source: str = Field(
        "speechbrain/spkrec-ecapa-voxceleb",
        description="Local folder or hub id for the ECAPA encoder (hub ids need internet).",
    )
    ecapa_savedir: str | None = Field(
        None, description="Where SpeechBrain keeps fetched ECAPA files (hub ids only)."
    )
    threshold: float | None = Field(
        None, ge=-1.0, le=1.0, description="Override the encoder's default decision threshold."
    )

    min_speech_s: float = Field(1.0, ge=0.0, description="Less speech than this is refused.")
    max_duration_s: float = Field(60.0, gt=0.0, description="Longer recordings are refused.")
    max_request_bytes: int = Field(20 * MEGABYTE, gt=0, description="Largest request body.")

    analyzer_id: str = Field("voicegate", description="Identifies this instance in results.")
    log_level: str = Field("INFO", description="Python logging level.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
