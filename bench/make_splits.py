"""Split every corpus in ``../shared/data`` by speaker into a development and a test half.

Every threshold, calibration and cohort is chosen on the development halves only; the test
halves are for reporting. Run from the repository root (the lists are committed, so this only
needs running again when a corpus changes):

    python bench/make_splits.py ../shared/data bench/splits

The rule is fixed and blind to any score: speakers are ordered by the SHA-1 of their id and,
within each gender, alternate between the halves, so both halves hold as many women as men.
LibriSpeech test-other keeps the split the project has used from the start
(``bench/split_trials.py``).
"""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

CORPORA = ("librispeech", "wuw_telephone", "speech_commands", "ravdess", "emodb", "fsdd")
TEST_OTHER_DEV = {"libri_1688", "libri_2033", "libri_2414", "libri_1998", "libri_3080"}


def speakers_of(manifest: Path) -> dict[str, tuple[str, str]]:
    """speaker -> (gender, subset label) from a corpus manifest."""
    with manifest.open(newline="") as handle:
        return {row["speaker"]: (row["gender"] or "unknown", row["label"])
                for row in csv.DictReader(handle)}


def split(corpus: str, speakers: dict[str, tuple[str, str]]) -> dict[str, str]:
    halves: dict[str, str] = {}
    if corpus == "librispeech":
        for speaker, (_, subset) in speakers.items():
            if subset == "test-other":
                halves[speaker] = "dev" if speaker in TEST_OTHER_DEV else "test"
        speakers = {s: v for s, v in speakers.items() if s not in halves}
    by_gender: dict[str, list[str]] = {}
    for speaker, (gender, _) in speakers.items():
        by_gender.setdefault(gender, []).append(speaker)
    for group in by_gender.values():
        group.sort(key=lambda s: hashlib.sha1(s.encode()).hexdigest())
        for i, speaker in enumerate(group):
            halves[speaker] = "dev" if i % 2 == 0 else "test"
    return halves


def main(data: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for corpus in CORPORA:
        manifest = data / corpus / "manifest.csv"
        if not manifest.is_file():
            print(f"{corpus}: no manifest, skipped")
            continue
        speakers = speakers_of(manifest)
        halves = split(corpus, speakers)
        with (out / f"{corpus}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["speaker", "gender", "half"])
            for speaker in sorted(halves):
                writer.writerow([speaker, speakers[speaker][0], halves[speaker]])
        dev = sum(h == "dev" for h in halves.values())
        print(f"{corpus}: {dev} development, {len(halves) - dev} test speakers")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
