"""The household in figures: M members enrolled from K clips each, then members and strangers.

For each (M, K) a number of households are drawn at random (seeded) from the speakers of one
half of a corpus who have more than K clips. Each member is enrolled from their first K clips;
their other clips must be named as them; every clip of every speaker outside the household (a
stranger) must come out unknown. Scored exactly as ``HouseholdService.identify`` scores
(``VoiceprintScorer.score_members`` and the threshold the service would use for M members), so
the figures describe the product's defaults.

Clips the intake refuses (too short, no speech) count as what the service would answer: a
member's refused probe is "told unknown" (and counted apart as refused), a stranger's is not
named. A speaker whose enrolment clips are refused is not drawn as a member.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analytic.voiceprints.scoring import VoiceprintScorer, member_means

Threshold = Callable[[int], float]  # members enrolled -> decision threshold


@dataclass(frozen=True)
class HouseholdFigures:
    members: int  # M
    enroll: int  # K
    households: int
    member_probes: int
    named_right: int
    told_unknown: int
    confused: int  # named as another member
    refused: int  # member probes the intake refused (inside told_unknown)
    stranger_probes: int
    strangers_named: int
    threshold: float

    def row(self) -> str:
        def pct(n: int, d: int) -> str:
            return f"{100 * n / d:.1f}%" if d else "-"

        return (f"| {self.members} | {self.enroll} | {self.households} | "
                f"{pct(self.named_right, self.member_probes)} | "
                f"{pct(self.told_unknown, self.member_probes)} | "
                f"{pct(self.confused, self.member_probes)} | "
                f"{pct(self.strangers_named, self.stranger_probes)} | "
                f"{self.member_probes} / {self.stranger_probes} | {self.threshold:.3f} |")


HEADER = ("| M | K | households | members named right | members told unknown | "
          "members confused | strangers named | probes (members / strangers) | threshold |\n"
          "|---|---|---|---|---|---|---|---|---|")


def simulate(
    files_by_speaker: Mapping[str, Sequence[str]],
    prints: dict[str, np.ndarray | None],
    scorer: VoiceprintScorer,
    threshold: Threshold,
    members: int,
    enroll: int,
    households: int = 20,
    seed: int = 0,
) -> HouseholdFigures | None:
    """One (M, K) cell; None when fewer than M speakers have more than K usable clips.

    ``prints`` maps each file to its embedding, or None where the intake refused it.
    """
    eligible = sorted(
        s for s, files in files_by_speaker.items()
        if len(files) > enroll and all(prints[f] is not None for f in files[:enroll])
    )
    if len(eligible) < members:
        return None
    rng = np.random.default_rng(seed)
    limit = threshold(members)
    embedded = {f: v for f, v in prints.items() if v is not None}
    usable = sorted(embedded)
    column = {name: i for i, name in enumerate(usable)}
    # Every usable file against every other, once, as the service would score each pair:
    # households then differ only in which columns are enrolled.
    matrix = np.stack([embedded[f] for f in usable])
    scores = scorer.sample_scores(matrix, matrix)[0]
    counts = dict(member_probes=0, named_right=0, told_unknown=0, confused=0, refused=0,
                  stranger_probes=0, strangers_named=0)
    for _ in range(households):
        house = list(rng.choice(eligible, size=members, replace=False))
        columns = [column[f] for s in house for f in files_by_speaker[s][:enroll]]
        owner = np.repeat(np.arange(members), enroll)
        for speaker, files in files_by_speaker.items():
            is_member = speaker in house
            probes = files[enroll:] if is_member else files
            counts["member_probes" if is_member else "stranger_probes"] += len(probes)
            kept = [column[f] for f in probes if f in column]
            refused = len(probes) - len(kept)
            if is_member:
                counts["told_unknown"] += refused
                counts["refused"] += refused
            if not kept:
                continue
            member_scores = np.stack([member_means(row, owner, members)
                                      for row in scores[np.ix_(kept, columns)]])
            best = member_scores.argmax(axis=1)
            accepted = member_scores[np.arange(len(kept)), best] >= limit
            if not is_member:
                counts["strangers_named"] += int(accepted.sum())
                continue
            right = np.array([house[b] == speaker for b in best])
            counts["named_right"] += int((accepted & right).sum())
            counts["confused"] += int((accepted & ~right).sum())
            counts["told_unknown"] += int((~accepted).sum())
    return HouseholdFigures(members=members, enroll=enroll, households=households,
                            threshold=limit, **counts)
