"""The whole process's settings: the core's, the HTTP door's and the bus's, read at once.

Only the command line (which wires the doors to the core) builds this union; each door and the
core type their own part (``HttpSettings``, ``BusSettings``, ``CoreSettings``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from analytic.settings import CoreSettings, settings_error_line
from analytic.web.settings import HttpSettings
from bus_adapter.settings import BusSettings


class Settings(CoreSettings, HttpSettings, BusSettings):
    """Every ``VOICEGATE_*`` variable."""


class SettingsError(ValueError):
    """A ``VOICEGATE_*`` variable holds a value that is not allowed (one line, for people)."""


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (command-line overrides win), or raise ``SettingsError``."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(settings_error_line(exc)) from None
