"""Split a corpus's trial list by speaker into development and test lists (``bench/splits``).

Thresholds are chosen on the development speakers only; the test speakers are for reporting.
A trial is kept in a half when both its speakers belong to that half. Run from the repository
root, once per corpus:

    D=../shared/data
    python bench/split_trials.py librispeech $D/librispeech/trials_test-other.csv bench/trials
    python bench/split_trials.py wuw_telephone $D/wuw_telephone/trials.csv bench/trials
    python bench/split_trials.py speech_commands $D/speech_commands/trials.csv bench/trials
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytic.lab.corpora import read_split


def split(corpus: str, trials: Path, out_dir: Path) -> None:
    halves = read_split(corpus)
    with trials.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        fields = reader.fieldnames or []
    out_dir.mkdir(parents=True, exist_ok=True)
    for half in ("dev", "test"):
        kept = [r for r in rows
                if halves.get(r["enroll_speaker"]) == half == halves.get(r["test_speaker"])]
        with (out_dir / f"{corpus}_{half}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
        targets = sum(r["target"] == "1" for r in kept)
        print(f"{corpus} {half}: {len(kept)} trials ({targets} target, "
              f"{len(kept) - targets} non-target)")


if __name__ == "__main__":
    split(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
