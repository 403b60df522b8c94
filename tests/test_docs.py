"""The docs name every setting with its real default, so the README cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from analytic.cli.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def table_rows(variable: str) -> list[str]:
    """Rows of a configuration table whose first cell names ``variable``."""
    rows = []
    for doc in DOCS:
        for line in doc.read_text().splitlines():
            first_cell = line.split("|")[1] if line.startswith("|") else ""
            if f"`{variable}`" in first_cell:
                rows.append(line)
    return rows


def written(default: object) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return format(default, "g")
    return str(default)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(name):
    variable = f"VOICEGATE_{name.upper()}"
    rows = table_rows(variable)
    assert rows, f"{variable} has no row in a configuration table of README.md or docs/"
    default = Settings.model_fields[name].default
    if default is None or isinstance(default, SecretStr):
        return
    assert any(written(default) in row for row in rows), (
        f"{variable}: default {written(default)!r} not in {rows[0]!r}")
