"""The open-set household figures (evaluate --household) score as the service scores."""

from __future__ import annotations

import numpy as np
import pytest

from analytic.lab.openset import simulate
from analytic.voiceprints.scoring import VoiceprintScorer
from tests.conftest import FEMALE_A, FEMALE_STRANGER, MALE_A, MALE_STRANGER


@pytest.fixture(scope="module")
def fixture_prints(service):
    files = [*MALE_A, *FEMALE_A, MALE_STRANGER, FEMALE_STRANGER]
    prints = {p.name: service.voiceprint(service.decode(p.read_bytes(), p.name)) for p in files}
    speakers: dict[str, list[str]] = {}
    for p in files:
        speakers.setdefault(p.name.split("-")[0], []).append(p.name)
    return speakers, prints


def by_hand(speakers, prints, scorer, limit, house, enroll):
    """One household, probe by probe, through ``score_members`` as HouseholdService does."""
    enrolled = [np.stack([prints[f] for f in speakers[s][:enroll]]) for s in house]
    named = strangers = 0
    for speaker, files in speakers.items():
        for probe in (files[enroll:] if speaker in house else files):
            scores, _ = scorer.score_members(enrolled, prints[probe])
            best = int(np.argmax(scores))
            if scores[best] >= limit:
                if speaker not in house:
                    strangers += 1
                elif house[best] == speaker:
                    named += 1
    return named, strangers


@pytest.mark.parametrize("limit", [0.3, 0.5, 0.7])
def test_the_matrix_path_counts_what_identify_would_answer(fixture_prints, limit):
    speakers, prints = fixture_prints
    scorer = VoiceprintScorer(None)
    figures = simulate(speakers, prints, scorer, lambda m: limit, members=1, enroll=1,
                       households=1, seed=3)
    house = [str(s) for s in np.random.default_rng(3).choice(["2609", "3331"], size=1,
                                                             replace=False)]
    named, strangers = by_hand(speakers, prints, scorer, limit, house, 1)
    assert (figures.named_right, figures.strangers_named) == (named, strangers)
    assert figures.member_probes == 2 and figures.stranger_probes == 5
    assert figures.named_right + figures.told_unknown + figures.confused == 2


def test_a_threshold_nobody_reaches_names_nobody_and_one_everybody_reaches_names_all(
        fixture_prints):
    speakers, prints = fixture_prints
    scorer = VoiceprintScorer(None)
    shut = simulate(speakers, prints, scorer, lambda m: 2.0, members=2, enroll=1, households=3)
    assert shut.named_right == shut.strangers_named == shut.confused == 0
    assert shut.told_unknown == shut.member_probes == 3 * 4
    open_ = simulate(speakers, prints, scorer, lambda m: -2.0, members=2, enroll=1, households=3)
    assert open_.strangers_named == open_.stranger_probes == 3 * 2
    # Too few speakers with more than K clips for the household asked for: no figures.
    assert simulate(speakers, prints, scorer, lambda m: 0.5, members=3, enroll=1) is None
    assert simulate(speakers, prints, scorer, lambda m: 0.5, members=1, enroll=3) is None


def test_refused_clips_are_members_told_unknown_and_strangers_not_named(fixture_prints):
    speakers, prints = fixture_prints
    refused = dict(prints, **{"2609-156975-0009.flac": None, "367-130732-0001.flac": None})
    figures = simulate(speakers, refused, VoiceprintScorer(None), lambda m: -2.0, members=2,
                       enroll=1, households=1)
    assert figures.refused == 1 and figures.told_unknown == 1
    assert figures.strangers_named == 1 and figures.stranger_probes == 2


def test_the_household_held_in_memory_scores_as_score_members(fixture_prints, service):
    """Identify scores against one stacked matrix with cached AS-norm statistics
    (``voiceprints/cache.py``); it must agree with ``score_members`` (and so with the figures
    above) to the last digit the service reports, with members of different sample counts."""
    from analytic.voiceprints.cache import Household
    from analytic.voiceprints.model import Voiceprint
    from analytic.voiceprints.store import Snapshot

    speakers, prints = fixture_prints
    enrolled = {s: np.stack([prints[f] for f in files[:n]])
                for (s, files), n in zip(sorted(speakers.items()), (1, 2, 3, 1), strict=False)}
    household = Household.of(Snapshot(7, [Voiceprint(s, "campplus", v)
                                          for s, v in enrolled.items()], frozenset()))
    assert household.members == len(enrolled) and household.version == 7
    scorer = service.policy.scorer
    assert scorer.name == "asnorm"
    for probe in prints.values():
        for _ in range(2):  # computed, then from the held statistics
            scores, raws = household.scores(scorer, probe)
            expected, expected_raw = scorer.score_members(list(enrolled.values()), probe)
            np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-9)
            np.testing.assert_allclose(raws, expected_raw, rtol=0, atol=1e-9)


def test_a_reload_normalises_only_the_members_written_since(fixture_prints, service,
                                                             monkeypatch):
    """After a change, members whose stored row is unchanged keep their AS-norm statistics;
    only new rows are normalised, and the scores still agree with ``score_members``."""
    from analytic.voiceprints.cache import Household
    from analytic.voiceprints.model import Voiceprint
    from analytic.voiceprints.store import Snapshot

    _, prints = fixture_prints
    files = sorted(prints)
    vectors = {name: prints[name][None, :] for name in files}
    scorer = service.policy.scorer
    before = Household.of(Snapshot(1, [Voiceprint("a", "campplus", vectors[files[0]]),
                                       Voiceprint("b", "campplus", vectors[files[1]])],
                                   frozenset(), (b"row-a", b"row-b")))
    before.scores(scorer, prints[files[-1]])
    normalised = []
    stats = scorer.stats
    monkeypatch.setattr(scorer, "stats", lambda rows: normalised.append(len(rows)) or stats(rows))
    enrolled = {"a": vectors[files[0]], "b": np.vstack([vectors[files[2]], vectors[files[3]]]),
                "c": vectors[files[4]]}
    after = Household.of(Snapshot(2, [Voiceprint(k, "campplus", v) for k, v in enrolled.items()],
                                  frozenset(), (b"row-a", b"row-b2", b"row-c")), before)
    assert normalised == [3]  # b's two new samples and c's one; a's carried over
    for probe in prints.values():
        scores, _ = after.scores(scorer, probe)
        expected, _ = scorer.score_members(list(enrolled.values()), probe)
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert normalised == [3]
