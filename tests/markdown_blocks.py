"""The code blocks of a Markdown manual, as a reader sees them.

The README's shell examples are indented code blocks (four spaces), its sample payloads fenced
blocks. ``tests/test_readme.py`` runs the former and needs every one of them, in order, with the
line it starts on, so that an example added to the manual without a test fails the suite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(```|~~~)\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    """One code block: where it starts, its info string (fenced only) and its text."""

    path: Path
    line: int
    language: str
    text: str
    fenced: bool

    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """Indented and fenced code blocks, in document order.

    An indented block starts after a blank line with a line indented by four spaces and runs
    over indented and blank lines; its text is dedented by four. Lines inside a fenced block
    never start an indented one.
    """
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence:
            end = i + 1
            while end < len(lines) and not lines[end].startswith(fence.group(1)):
                end += 1
            blocks.append(Block(path, i + 1, fence.group(2), "\n".join(lines[i + 1:end]), True))
            i = end + 1
            continue
        starts_block = i == 0 or not lines[i - 1].strip()
        if lines[i].startswith("    ") and lines[i].strip() and starts_block:
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            while not lines[end - 1].strip():
                end -= 1
            text = "\n".join(line[4:] for line in lines[i:end])
            blocks.append(Block(path, i + 1, "", text, False))
            i = end
            continue
        i += 1
    return blocks
