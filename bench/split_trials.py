"""Split LibriSpeech test-other trials by speaker into a development and a test list.

Thresholds are chosen on the development speakers only; the test speakers are for reporting.
Run from the repository root:

    python bench/split_trials.py ../shared/data/librispeech/trials_test-other.csv bench/trials
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

# 10 speakers (5 F, 5 M). Development: 3 M + 2 F; test: 2 M + 3 F. Speaker 1688 (a man who
# speaks at 160-220 Hz) sits in development so the test half stays a plain held-out set.
DEV_SPEAKERS = {"libri_1688", "libri_2033", "libri_2414", "libri_1998", "libri_3080"}
TEST_SPEAKERS = {"libri_2609", "libri_3005", "libri_3331", "libri_367", "libri_533"}


def split(trials: Path, out_dir: Path) -> None:
    with trials.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        fields = reader.fieldnames or []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, speakers in (("dev", DEV_SPEAKERS), ("test", TEST_SPEAKERS)):
        kept = [r for r in rows if {r["enroll_speaker"], r["test_speaker"]} <= speakers]
        with (out_dir / f"librispeech_{name}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
        targets = sum(r["target"] == "1" for r in kept)
        print(f"{name}: {len(kept)} trials ({targets} target, {len(kept) - targets} non-target)")


if __name__ == "__main__":
    split(Path(sys.argv[1]), Path(sys.argv[2]))
