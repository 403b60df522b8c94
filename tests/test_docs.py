"""docs/configuration.md names every setting with its real default, so the docs cannot drift
from the code: each setting has its row there, no configuration table anywhere names a variable
the code does not read, and every row that names one carries its default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from analytic.cli.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VARIABLES = {f"VOICEGATE_{name.upper()}": name for name in Settings.model_fields}


def first_cells(doc: Path) -> list[tuple[str, str]]:
    """(first cell, whole row) of every table row of ``doc``."""
    return [(line.split("|")[1], line) for line in doc.read_text().splitlines()
            if line.startswith("|") and line.count("|") > 2]


def table_rows(variable: str, docs: list[Path]) -> list[str]:
    """Rows of the tables of ``docs`` whose first cell names ``variable``."""
    return [row for doc in docs for cell, row in first_cells(doc) if f"`{variable}`" in cell]


def written(default: object) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return format(default, "g")
    return str(default)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(name):
    variable = f"VOICEGATE_{name.upper()}"
    assert table_rows(variable, [CONFIGURATION]), f"{variable} has no row in docs/configuration.md"
    default = Settings.model_fields[name].default
    if default is None or isinstance(default, SecretStr):
        return
    for row in table_rows(variable, DOCS):
        assert written(default) in row, f"{variable}: default {written(default)!r} not in {row!r}"


def test_every_documented_variable_is_a_setting():
    for doc in DOCS:
        for cell, row in first_cells(doc):
            for word in cell.replace("/", " ").split():
                name = word.strip("`")
                if name.startswith("VOICEGATE_"):
                    assert name in VARIABLES, f"{doc.name}: {name} is not a setting: {row!r}"


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors of ``doc``'s headings: lower case, punctuation dropped, spaces to -."""
    found = set()
    for line in doc.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_links_between_the_manuals_lead_somewhere(doc):
    """The reference moved out of the README into docs/: a link to a file or a section that is
    not there any more fails here rather than in a reader's browser."""
    for target, anchor in re.findall(r"\]\(([^)#\s]*\.md)?(?:#([^)\s]+))?\)", doc.read_text()):
        if not target and not anchor:
            continue
        path = (doc.parent / target).resolve() if target else doc
        assert path.is_file(), f"{doc.name} links {target}, which does not exist"
        if anchor:
            assert anchor in anchors(path), f"{doc.name} links {target}#{anchor}: no such section"
