"""How the command line shows results: JSON by default, a readable table with ``--pretty``.

JSON stays the default so scripts and the docs can rely on the CLI printing exactly what HTTP
answers; ``--pretty`` is for a person at a terminal and makes no promise about its layout.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel


def emit(body: BaseModel | dict[str, Any], pretty: bool) -> str:
    """The text to print for one answer (or ``{"error": ...}``): JSON, or a table."""
    if not pretty:
        if isinstance(body, BaseModel):
            return body.model_dump_json(indent=2)
        return json.dumps(body, indent=2)
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return render_pretty(data)


def emit_error(code: str, message: str, pretty: bool) -> str:
    """The text to print for a refusal: HTTP's error body, ``{"error": {code, message}}``."""
    return emit({"error": {"code": code, "message": message}}, pretty)


def render_pretty(data: dict[str, Any]) -> str:
    """Scalars (nested objects flattened to ``a.b``) as aligned ``key  value`` lines, then each
    list of objects (``files``, ``candidates``, ``time_series``, ...) as a table of its own."""
    scalars: dict[str, str] = {}
    tables: dict[str, list[dict[str, str]]] = {}
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables[key] = [_flatten(row) for row in value]
        else:
            scalars.update(_flatten({key: value}))
    lines = []
    width = max((len(k) for k in scalars), default=0)
    lines += [f"{key.ljust(width)}  {value}" for key, value in scalars.items()]
    for name, rows in tables.items():
        lines += ["", f"{name}:", *_table(rows)]
    return "\n".join(lines)


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            flat.update(_flatten(item, f"{name}."))
        else:
            flat[name] = _text(item)
    return flat


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return ", ".join(_text(v) for v in value)
        return json.dumps(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def _table(rows: list[dict[str, str]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    widths = {c: max(len(c), *(len(row.get(c, "")) for row in rows)) for c in columns}
    header = "  ".join(c.ljust(widths[c]) for c in columns)
    rule = "  ".join("-" * widths[c] for c in columns)
    body = ["  ".join(row.get(c, "").ljust(widths[c]) for c in columns).rstrip() for row in rows]
    return [header.rstrip(), rule, *body]
