"""Open-set identification on LibriSpeech test-other: households of 3 out of 5 speakers.

The household story in figures: for every 3-speaker household drawn from one half's 5 speakers
(10 households), each member is enrolled from their first ``--enroll`` utterances; the
members' other utterances (from the 4th on) must be named correctly, and all utterances of the
2 speakers outside the household must come out unknown. Scored exactly as the service scores
(``VoiceprintScorer.score_members``, the service's default thresholds). Run from the repo root:

    python bench/identify_openset.py --root ../shared/data/librispeech --half dev
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytic.encoders import load_encoder
from analytic.enrol_trials import read_speakers
from analytic.evaluate import embed_files
from analytic.scorenorm import ASNORM_THRESHOLDS, load_cohort
from analytic.service import VerificationService
from analytic.settings import Settings
from analytic.voiceprints.scoring import VoiceprintScorer

HOUSEHOLD = 3
FIRST_PROBE = 3  # members' probes start after the largest enrolment tried


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--half", choices=("dev", "test"), default="dev")
    args = parser.parse_args()
    trials = Path(__file__).parent / "trials" / f"librispeech_{args.half}.csv"
    speakers = read_speakers(trials)
    files: dict[str, list[str]] = {}
    for name in sorted(speakers):
        files.setdefault(speakers[name], []).append(name)
    settings = Settings()
    service = VerificationService(settings, load_encoder(settings))
    prints = embed_files(service, speakers, args.root)
    encoder = service.encoder
    for label, norm, threshold in (
        ("raw cosine", None, service.default_threshold),
        ("AS-norm", load_cohort(encoder.name, encoder.embedding_size),
         ASNORM_THRESHOLDS.get(encoder.name)),
    ):
        scorer = VoiceprintScorer(norm)
        for enrol in (1, FIRST_PROBE):
            named = unknown = wrong = members = strangers_named = strangers = 0
            for house in itertools.combinations(sorted(files), HOUSEHOLD):
                enrolled = [np.stack([prints[f] for f in files[s][:enrol]]) for s in house]
                for speaker, utterances in files.items():
                    probes = utterances[FIRST_PROBE:] if speaker in house else utterances
                    for probe in probes:
                        scores, _ = scorer.score_members(enrolled, prints[probe])
                        best = int(np.argmax(scores))
                        accepted = scores[best] >= threshold
                        if speaker not in house:
                            strangers += 1
                            strangers_named += int(accepted)
                        elif not accepted:
                            unknown += 1
                        elif house[best] == speaker:
                            named += 1
                        else:
                            wrong += 1
                        members += int(speaker in house)
            print(f"{args.half} {label} (threshold {threshold}), enrolled from {enrol}: members "
                  f"named right {100 * named / members:.1f}%, unknown "
                  f"{100 * unknown / members:.1f}%, named as another member "
                  f"{100 * wrong / members:.1f}% (of {members}); strangers named "
                  f"{100 * strangers_named / strangers:.1f}% (of {strangers})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
