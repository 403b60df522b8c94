"""The layout's one rule, checked on the source: the core (``analytic/`` outside ``web``,
``cli`` and ``lab``) imports no door and no transport library; ``bus_adapter`` depends on the
core only, never on the HTTP door or the command line; the HTTP door never imports the bus.

Read with ``ast`` (every import, also the ones inside functions), so a lazy import cannot
slip past. ``test_a_planted_violation_is_caught`` shows the check can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRANSPORTS = ("flask", "werkzeug", "waitress", "paho")
DOORS = ("analytic.web", "analytic.cli", "analytic.lab", "bus_adapter")
RULES: dict[str, tuple[str, ...]] = {
    "core": (*TRANSPORTS, *DOORS),
    "bus_adapter": ("flask", "werkzeug", "waitress", "analytic.web", "analytic.cli",
                    "analytic.lab"),
    "analytic.web": ("paho", "bus_adapter", "analytic.cli", "analytic.lab"),
    "analytic.lab": (*TRANSPORTS, "analytic.web", "analytic.cli", "bus_adapter"),
}


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def layer_of(path: Path) -> str | None:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] == "bus_adapter":
        return "bus_adapter"
    if parts[0] != "analytic":
        return None
    if len(parts) > 2 and parts[1] in ("web", "cli", "lab"):
        return f"analytic.{parts[1]}"
    if parts[-1] == "__main__":
        return None  # ``python -m analytic`` is the command line's entry point
    return "core"


def violations(path: Path, source: str) -> list[str]:
    layer = layer_of(path)
    if layer is None or layer == "analytic.cli":  # the command line wires everything
        return []
    banned = RULES[layer]
    return sorted(f"{path.relative_to(ROOT)} ({layer}) imports {module}"
                  for module in imported_modules(source)
                  if any(module == b or module.startswith(b + ".") for b in banned))


def sources() -> list[Path]:
    return sorted([*(ROOT / "analytic").rglob("*.py"), *(ROOT / "bus_adapter").rglob("*.py")])


def test_every_layer_keeps_to_its_imports():
    found = [v for path in sources() for v in violations(path, path.read_text())]
    assert found == []


@pytest.mark.parametrize(("where", "line"), [
    ("analytic/service.py", "from flask import request"),
    ("analytic/household.py", "def f():\n    import bus_adapter.adapter\n"),
    ("analytic/voiceprints/store.py", "from analytic.web.errors import http_status"),
    ("bus_adapter/dispatch.py", "from analytic.web.auth import is_admin"),
    ("analytic/web/app.py", "import paho.mqtt.client"),
])
def test_a_planted_violation_is_caught(where, line):
    assert violations(ROOT / where, line), f"{line!r} in {where} passed the rule"


def test_the_doors_and_the_command_line_may_use_the_core():
    assert violations(ROOT / "analytic/web/app.py", "from analytic.service import X") == []
    assert violations(ROOT / "analytic/cli/serve.py", "import bus_adapter.adapter") == []
