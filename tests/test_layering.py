"""The layout's one rule, checked on the source: the core (``analytic/`` outside ``web``,
``cli`` and ``lab``) imports no door and no transport library; ``bus_adapter`` depends on the
core only, never on the HTTP door or the command line; the HTTP door never imports the bus.

Read with ``ast`` (every import, also the ones inside functions), so a lazy import cannot
slip past. ``test_a_planted_violation_is_caught`` shows the check can fail. The sources are
parsed in a fresh interpreter: CPython 3.11.7's ``ast.parse`` can raise "AST constructor
recursion depth mismatch" once another test in the same process has moved the recursion limit.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
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


def checked(cases: list[tuple[str, str | None]]) -> list[list[str]]:
    """``violations`` of each (path under the root, source or None for the file's own), in a
    fresh interpreter (see the module's docstring)."""
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys; from tests.test_layering import _child; "
         "print(json.dumps(_child(json.load(sys.stdin))))"],
        input=json.dumps(cases), capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _child(cases: list[tuple[str, str | None]]) -> list[list[str]]:
    return [violations(ROOT / where, (ROOT / where).read_text() if source is None else source)
            for where, source in cases]


def test_every_layer_keeps_to_its_imports():
    found = checked([(str(path.relative_to(ROOT)), None) for path in sources()])
    assert [v for file in found for v in file] == []


@pytest.mark.parametrize(("where", "line"), [
    ("analytic/service.py", "from flask import request"),
    ("analytic/household.py", "def f():\n    import bus_adapter.adapter\n"),
    ("analytic/voiceprints/store.py", "from analytic.web.errors import http_status"),
    ("bus_adapter/dispatch.py", "from analytic.web.auth import is_admin"),
    ("analytic/web/app.py", "import paho.mqtt.client"),
])
def test_a_planted_violation_is_caught(where, line):
    assert checked([(where, line)])[0], f"{line!r} in {where} passed the rule"


def test_the_doors_and_the_command_line_may_use_the_core():
    assert checked([("analytic/web/app.py", "from analytic.service import X"),
                    ("analytic/cli/serve.py", "import bus_adapter.adapter")]) == [[], []]
