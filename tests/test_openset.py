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
