"""Run a manual's examples as written, in order, the way a reader types them.

The harness behind ``tests/test_readme.py`` and ``tests/test_docs_examples.py``. Every shell
block of a Markdown document is fed, in document order, to one bash kept open like the reader's
terminal (variables such as ``$A`` and the activated virtualenv carry from block to block);
"watch in another shell" subscribers run beside it; services start the way the document says
(``script/run``). Each block's answers are checked, on its own output and on the watchers',
against what the text says they will be.

Only the ports differ from what a reader types, because a test cannot count on 7070 and 1883
being free: ``127.0.0.1:7070`` in a URL becomes the test server's port, ``VOICEGATE_PORT`` and
``VOICEGATE_MQTT_PORT`` are set in the environment (settings the documents name, read by
``script/run`` and ``publish_pair``), and Mosquitto's clients read ``-p <port>`` from their
per-user options file (``$XDG_CONFIG_HOME/mosquitto_pub``, a documented Mosquitto feature), so
their command lines stay exactly as printed.

Every block must have an ``Example`` entry, matched by text only it holds, so an example added
to a document without a check fails the suite (``check_every_block_has_an_example``).

Scratch files belong in a scratch directory, never in the checkout: the reader's ``TMPDIR`` is
inside the test's ``tmp_path`` (so a document's ``cd "$(mktemp -d)"`` lands there), and a walk
that leaves a new untracked file in the repository fails (``litter``).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port, stop_process, write_fixture_trials
from tests.markdown_blocks import Block, code_blocks
from tests.test_bus_process import wait_for_bus

ROOT = Path(__file__).resolve().parents[1]
SHARED_LIBRISPEECH = "../shared/data/librispeech"
BLOCK_TIMEOUT_S = 300.0
ANSWER_TIMEOUT_S = 60.0
START_TIMEOUT_S = 300.0  # script/run's set-up (a pip install when pyproject changed) + model
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}


@dataclass(frozen=True)
class Example:
    """What one block of a document is and what the document says it prints.

    ``kind``: ``shell`` runs in the reader's terminal, ``python`` too (fed to ``python -``);
    ``watch`` is a subscriber "in another shell" that runs on in the background; ``service``
    starts the analytic; ``instances`` starts each line as a long-running service (a share
    group); ``figures`` is a shell block whose output is the document's measured figures;
    ``elsewhere`` is not run here, ``why`` says where it is checked instead.
    ``output`` are patterns the block's own output must match, ``watched`` patterns the latest
    watcher must print after it, ``status`` its exit status (``mosquitto_sub -W`` ends with 27
    when its wait is over, which is how those examples stop). ``budget_s`` is how long the block
    may run: long figures commands get budgets that fit a machine five times slower than the
    development one.
    """

    key: str
    kind: str
    output: tuple[str, ...] = ()
    watched: tuple[str, ...] = ()
    status: int = 0
    why: str = ""
    budget_s: float = BLOCK_TIMEOUT_S


def runnable_blocks(document: Path) -> list[Block]:
    """The blocks a reader could type or paste: indented ones, fenced shell and Python ones."""
    return [b for b in code_blocks(document)
            if not b.fenced or b.language in SHELL_LANGUAGES | {"python"}]


def paired(document: Path, examples: list[Example]) -> list[tuple[Block, Example]]:
    """Each runnable block of ``document`` with the one entry of ``examples`` whose key it holds."""
    pairs = []
    for block in runnable_blocks(document):
        matches = [e for e in examples if e.key in block.text + "\n"]
        assert len(matches) == 1, (
            f"{block.where()} is matched by {len(matches)} Example entries (needs exactly one; "
            f"add one to the test of {document.name}):\n{block.text}")
        pairs.append((block, matches[0]))
    return pairs


def check_every_block_has_an_example(document: Path, examples: list[Example]) -> None:
    used = [example.key for _, example in paired(document, examples)]
    assert used == [e.key for e in examples], (
        f"the Example entries must list each block of {document.name} once, in its order")
    for example in examples:
        assert example.kind != "elsewhere" or example.why, example.key


def reader_environment(tmp: Path, http_port: int, broker_port: int) -> dict[str, str]:
    """A reader's environment: no VOICEGATE_* of the test run, no virtualenv activated (the
    README's ``. .venv/bin/activate`` has to do that), the test's ports and data folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VOICEGATE_") and k not in {"VIRTUAL_ENV", "PYTHONHOME"}}
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and p != venv_bin)
    config = tmp / "xdg-config"
    config.mkdir()
    scratch = tmp / "tmp"
    scratch.mkdir()
    for client in ("mosquitto_pub", "mosquitto_sub", "mosquitto_rr"):
        (config / client).write_text(f"-p {broker_port}\n")
    env.update(XDG_CONFIG_HOME=str(config), VOICEGATE_PORT=str(http_port),
               VOICEGATE_MQTT_PORT=str(broker_port), VOICEGATE_DATA_DIR=str(tmp / "data"),
               VOICEGATE_LOG_LEVEL="WARNING", TMPDIR=str(scratch))
    return env


def as_run_here(text: str, http_port: int) -> str:
    return text.replace("127.0.0.1:7070", f"127.0.0.1:{http_port}")


@dataclass
class Output:
    """A background process's output, collected as it comes."""

    process: subprocess.Popen[str]
    text: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.lock:
                self.text += line

    def wait_for(self, patterns: tuple[str, ...], what: str,
                 timeout: float = ANSWER_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                missing = [p for p in patterns if not re.search(p, self.text)]
            if not missing:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: no line matching {missing[0]!r} within {timeout:.0f} s; "
                            f"it printed:\n{self.text[-4000:]}")
            time.sleep(0.1)


class ReaderShell:
    """One bash kept open for the whole walk-through, like the reader's terminal.

    Each block is sourced into it, so variables and the virtualenv carry over; its output goes
    to files, and ``wait`` lets a block's ``... &`` subscriber finish before it is read.
    """

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.count = 0
        self.process = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=ROOT, env=env,
                                        stdin=subprocess.PIPE, text=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run(self, text: str, where: str,
            budget_s: float = BLOCK_TIMEOUT_S) -> tuple[int, str]:
        self.count += 1
        script, out, status = (self.workdir / f"block{self.count}.{ext}"
                               for ext in ("sh", "out", "status"))
        script.write_text(text + "\n")
        assert self.process.stdin is not None
        self.process.stdin.write(f"{{ . {script}; }} >{out} 2>&1; echo $? >{status}.part; "
                                 f"wait; mv {status}.part {status}\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + budget_s
        while not status.exists():
            if time.monotonic() > deadline:
                printed = out.read_text() if out.exists() else ""
                pytest.fail(f"{where} still runs after {budget_s:.0f} s; "
                            f"it printed:\n{printed[-4000:]}")
            time.sleep(0.1)
        return int(status.read_text()), out.read_text()

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def start_service(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``command`` (a README line) in the background, its output in ``log``."""
    with log.open("wb") as handle:
        return subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env,
                                stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_on_the_bus(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """``wait_for_bus``, with what the service printed when it does not get there."""
    try:
        wait_for_bus(f"http://127.0.0.1:{port}", process, START_TIMEOUT_S)
    except AssertionError as failure:
        pytest.fail(f"the service did not come up on the bus ({failure}); its output:\n"
                    f"{log.read_text()[-4000:]}")


def figures_command(text: str, tmp: Path) -> tuple[str, bool]:
    """The figures come from ``../shared/data`` (not in the repository). Where it is missing,
    run the same commands on the fixture clips instead, so the commands still run."""
    if (ROOT / SHARED_LIBRISPEECH).is_dir():
        return text, True
    trials = write_fixture_trials(tmp / "fixture_trials.csv")
    text = re.sub(r"--trials \S+", f"--trials {trials}", text)
    return text.replace(SHARED_LIBRISPEECH, "tests/data/librispeech"), False


class Walk:
    """One reader at work: a terminal, the services and watchers it started, the test's ports."""

    def __init__(self, broker_port: int, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.http_port = free_port()
        self.env = reader_environment(tmp_path, self.http_port, broker_port)
        self.shell = ReaderShell(tmp_path, self.env)
        self.services: list[subprocess.Popen[bytes]] = []
        self.watchers: list[Output] = []

    def step(self, block: Block, example: Example) -> None:
        text = as_run_here(block.text, self.http_port)
        if example.kind == "service":
            self.start(text.splitlines()[0].split("#")[0].strip(), self.http_port)
        elif example.kind == "instances":
            self.share_group(text, block.where())
        elif example.kind == "watch":
            process = subprocess.Popen(["bash", "-c", f"exec {text}"], cwd=ROOT, env=self.env,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, start_new_session=True)
            self.watchers.append(Output(process))
            time.sleep(1.0)  # the reader starts watching before typing the next command
        elif example.kind != "elsewhere":
            self.run(text, block.where(), example)

    def start(self, command: str, port: int) -> None:
        log = self.tmp / f"service{len(self.services)}.log"
        self.services.append(start_service(command, {**self.env, "VOICEGATE_PORT": str(port)}, log))
        wait_until_on_the_bus(self.services[-1], port, log)

    def share_group(self, text: str, where: str) -> None:
        """Each line is an instance; with the first service stopped, only they can answer."""
        for service in self.services:
            stop_process(service)
        for line in text.splitlines():
            self.start(line, free_port())
        clips = ROOT / "tests" / "data" / "librispeech"
        for n in range(4):
            status, printed = self.shell.run(
                f"python -m bus_adapter.publish_pair {clips / '2609-156975-0000.flac'} "
                f"{clips / '2609-156975-0001.flac'} --request-id shared-{n}", where)
            assert status == 0 and re.search(r'"decision": ?true', printed), printed

    def run(self, text: str, where: str, example: Example) -> None:
        output = example.output
        if example.kind == "figures":
            text, real = figures_command(text, self.tmp)
            if not real:
                output = (r"EER: \d+\.\d+% at threshold",)
        if example.kind == "python":
            text = f"python - <<'VOICEGATE_EXAMPLE'\n{text}\nVOICEGATE_EXAMPLE"
        status, printed = self.shell.run(text, where, example.budget_s)
        assert status == example.status, (
            f"{where} ended with {status}, not {example.status}:\n{printed[-4000:]}")
        for pattern in output:
            assert re.search(pattern, printed), (
                f"{where}: no output matching {pattern!r}:\n{printed[-4000:]}")
        if example.watched:
            self.watchers[-1].wait_for(example.watched, f"after {where}")

    def close(self) -> None:
        self.shell.close()
        for process in [w.process for w in self.watchers] + self.services:
            stop_process(process)


def untracked() -> set[str] | None:
    """Files in the checkout that git neither tracks nor ignores; None outside a git checkout."""
    try:
        listed = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"],
                                cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return set(filter(None, listed.stdout.decode().split("\0")))


def litter(before: set[str] | None) -> list[str]:
    """What a walk added to the checkout, removed again so one failure does not stay behind."""
    after = untracked()
    if before is None or after is None:
        return []
    added = sorted(after - before)
    for name in added:
        (ROOT / name).unlink(missing_ok=True)
    return added


def walk(document: Path, examples: list[Example], broker_port: int, tmp_path: Path) -> None:
    """Run ``document``'s blocks in order as ``examples`` say, and check what they print, and
    that they left no scratch file in the checkout."""
    before = untracked()
    reader = Walk(broker_port, tmp_path)
    try:
        for block, example in paired(document, examples):
            reader.step(block, example)
    finally:
        reader.close()
        added = litter(before)
    assert not added, f"{document.name}'s examples left files in the checkout: {added}"
