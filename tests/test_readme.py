"""The README is a walk-through that works: every example in it runs, as written, in order.

A new user clones the repository, runs ``script/run`` and types the README's commands into a
terminal. ``walk`` (``tests/walkthrough.py``) does the same: it starts the service with the
README's own ``script/run`` (so that set-up is exercised too) beside a Mosquitto of its own,
feeds every shell block to one bash in document order, and checks each block's answers against
what the README says they will be. Only the ports differ from what a reader types. The
reference manuals in ``docs/`` are walked the same way by ``tests/test_docs_examples.py``.

Every indented block of the README needs an entry in ``EXAMPLES``, matched by text only it holds,
so an example added without a check fails ``test_every_readme_example_has_a_check``. The few
that are not commands to run here (an install line, a directory listing) say where they are
checked instead.
"""

from __future__ import annotations

import pytest

from tests.walkthrough import (
    ROOT,
    Example,
    check_every_block_has_an_example,
    paired,
    walk,
)

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

README = ROOT / "README.md"

EXAMPLES = [
    # Its first line starts the service; its second, script/test, is what CI runs (.ci/run),
    # and so what runs this test.
    Example("script/run      #", "service"),
    Example("-F file1=@tests/data/librispeech/2609-156975-0000.flac", "shell",
            output=(r'"decision": ?true', r'"result": ?"Same Speaker"',
                    r'"bandwidth": ?"wideband"')),
    Example("apt-get install mosquitto mosquitto-clients", "elsewhere",
            why="script/test (which CI runs) installs both with this apt-get line when missing; "
                "this test starts its own Mosquitto"),
    Example(". .venv/bin/activate", "shell"),
    Example("--request-id door-1", "shell",
            output=(r'"request_id": ?"door-1"', r'"decision": ?true',
                    r'"result": ?"Same Speaker"')),
    Example("bus_adapter/     the MQTT door", "elsewhere",
            why="a directory listing: test_the_layout_lists_what_is_there checks it"),
]


def test_every_readme_example_has_a_check():
    check_every_block_has_an_example(README, EXAMPLES)


def test_the_layout_lists_what_is_there():
    (block,) = [b for b, e in paired(README, EXAMPLES) if e.key.startswith("bus_adapter/")]
    for line in block.text.splitlines():
        name = line.split()[0]
        assert (ROOT / name).exists(), f"README layout names {name}, which is not in the repo"


def test_the_readme_is_short_and_links_every_manual():
    """The README is the front door (about 250 lines); the reference lives in docs/, and each
    manual there is listed in its "Where the rest is" table."""
    text = README.read_text()
    assert len(text.splitlines()) <= 260
    for manual in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{manual.name})" in text, f"the README does not link docs/{manual.name}"


def test_the_readme_walk_through(mqtt_broker, tmp_path):
    walk(README, EXAMPLES, mqtt_broker.port, tmp_path)
