"""Progress of long offline runs (evaluate, calibrate, train): tqdm bars on stderr.

Progress goes to stderr so that stdout stays clean for pipes, and only when stderr is a
terminal (a log file or CI full of carriage returns helps no one).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, TextIO, TypeVar

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
