"""Multi-sample enrolment trials, generated from a pairwise trial list.

A pairwise list (``enroll,test,target``) enrols each speaker from one utterance. To measure
enrolment from ``n`` utterances without guessing a new list, each trial keeps its test file and
its first enrolment file and adds the next ``n - 1`` files of the enrolment speaker, in sorted
order and wrapping around, skipping the test file. Rules that keep the figures honest:

- The pool of a speaker's files is the files of that speaker *in the same list*, so the
  development and test halves (split by speaker in ``bench/split_trials.py``) stay disjoint.
- The test utterance is never one of the enrolment utterances.
- It is deterministic: the same list and ``n`` always give the same trials.
- ``n = 1`` gives the original trials back.

A file's speaker comes from the list's ``enroll_speaker``/``test_speaker`` columns when present,
else from the LibriSpeech file name (``<speaker>-<chapter>-<utterance>.flac``).

    python -m analytic.lab.enrol_trials bench/trials/librispeech_dev.csv --n 3   # prints the CSV
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

ENROL_SEPARATOR = ";"


@dataclass(frozen=True)
class EnrolTrial:
    enroll: tuple[str, ...]
    test: str
    target: bool


def speaker_of(path: str) -> str:
    return Path(path).name.split("-")[0]


def read_speakers(path: Path) -> dict[str, str]:
    """File -> speaker from a trial list's speaker columns, else from LibriSpeech names."""
    speakers: dict[str, str] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for side in ("enroll", "test"):
                speakers[row[side]] = row.get(f"{side}_speaker") or speaker_of(row[side])
    return speakers


def expand(
    trials: list[tuple[str, str, bool]], n: int, speakers: dict[str, str] | None = None
) -> list[EnrolTrial]:
    """``(enroll, test, target)`` pairs to trials enrolled from ``n`` utterances each."""
    if n < 1:
        raise ValueError("n must be at least 1")
    speakers = dict(speakers or {})
    for enroll, test, _ in trials:
        speakers.setdefault(enroll, speaker_of(enroll))
        speakers.setdefault(test, speaker_of(test))
    pools: dict[str, list[str]] = {}
    for name in sorted(speakers):
        pools.setdefault(speakers[name], []).append(name)
    expanded = []
    for enroll, test, target in trials:
        pool = pools[speakers[enroll]]
        start = pool.index(enroll)
        chosen = [enroll]
        for step in range(1, len(pool)):
            if len(chosen) == n:
                break
            candidate = pool[(start + step) % len(pool)]
            if candidate != test:
                chosen.append(candidate)
        if len(chosen) < n:
            raise ValueError(
                f"speaker {speakers[enroll]} has {len(pool)} files in the list; {n} enrolment "
                "files plus a different test file are needed"
            )
        expanded.append(EnrolTrial(tuple(chosen), test, target))
    return expanded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytic.lab.enrol_trials",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trials", type=Path, help="CSV: enroll,test,target[,enroll_speaker,...]")
    parser.add_argument("--n", type=int, default=3, help="enrolment utterances per trial")
    args = parser.parse_args(argv)
    with args.trials.open(newline="") as handle:
        pairs = [(r["enroll"], r["test"], r["target"].strip() in {"1", "true", "True"})
                 for r in csv.DictReader(handle)]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["enroll", "test", "target"])
    for trial in expand(pairs, args.n, read_speakers(args.trials)):
        writer.writerow([ENROL_SEPARATOR.join(trial.enroll), trial.test, int(trial.target)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
