"""How the command line shows things: JSON by default, a readable table with ``--pretty``, and
progress bars on stderr.

JSON stays the default so scripts and the docs can rely on the CLI printing exactly what HTTP
answers; ``--pretty`` is for a person at a terminal and makes no promise about its layout.
Progress goes to stderr so that stdout stays clean for pipes, and only when stderr is a
terminal (a log file or CI full of carriage returns helps no one).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, TextIO, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Progress(Protocol):
    """Wraps a sequence to report progress while it is iterated (``tqdm``-like)."""

    def __call__(self, items: Sequence[T], desc: str) -> Iterable[T]: ...


def no_progress(items: Sequence[T], desc: str) -> Iterable[T]:
    """The default: iterate silently (library callers, tests, the service)."""
    return items


def progress_bars(enabled: bool, file: TextIO | None = None) -> Progress:
    """A ``Progress`` drawing tqdm bars on ``file`` (stderr) when ``enabled``."""
    from tqdm import tqdm

    def bar(items: Sequence[T], desc: str) -> Iterator[T]:
        yield from tqdm(items, desc=desc, total=len(items), unit="file",
                        file=file or sys.stderr, disable=not enabled, leave=False)

    return bar


def wants_progress(no_progress_flag: bool, stream: TextIO | None = None) -> bool:
    """Bars only for a person watching: stderr is a terminal and ``--no-progress`` is absent."""
    stream = stream or sys.stderr
    return not no_progress_flag and stream.isatty()


def emit(body: BaseModel | dict[str, Any], pretty: bool) -> str:
    """The text to print for one answer (or ``{"error": ...}``): JSON, or a table."""
    if not pretty:
        if isinstance(body, BaseModel):
            return body.model_dump_json(indent=2)
        return json.dumps(body, indent=2)
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return render_pretty(data)


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
