"""``ServiceScorer``, the scorer of ``evaluate --conditions``: its scores are the service's own
(wideband and mixed pairs), and the common-band experiment touches mixed pairs only."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from analytic.audio import TARGET_RATE, band_limit
from analytic.lab import conditions as c
from analytic.lab.robustness import ServiceScorer, Sound, load_sound
from tests.conftest import MALE_A, MALE_STRANGER

pytestmark = pytest.mark.slow  # the real encoder


def wav(sound: Sound) -> bytes:
    import io

    import soundfile as sf
    import soxr

    buffer = io.BytesIO()
    samples = sound.samples if sound.rate == c.RATE else soxr.resample(
        sound.samples, c.RATE, sound.rate, quality="HQ")
    sf.write(buffer, samples, sound.rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def test_the_low_cut_removes_the_band_below_it_and_nothing_else_changes():
    x = c.read_audio(MALE_A[0])
    assert band_limit(x, TARGET_RATE) is x  # wideband, no cut: untouched
    cut = band_limit(x, 8000, 300.0)
    f, p = signal.welch(cut, TARGET_RATE, nperseg=2048)
    assert p[f < 200].sum() / p.sum() < 0.01 and p[f > 4100].sum() / p.sum() < 0.01
    f, p = signal.welch(band_limit(x, 8000), TARGET_RATE, nperseg=2048)
    assert p[f < 200].sum() / p.sum() > 0.02  # without the cut the low band is there


def test_the_table_scores_pairs_as_the_service_verifies_them(service):
    enrol = load_sound(MALE_A[0])
    same, stranger = load_sound(MALE_A[1]), load_sound(MALE_STRANGER)
    call = Sound(c.telephone(same.samples), c.TELEPHONE_RATE)
    scorer = ServiceScorer(service)
    scores = scorer([enrol, enrol, enrol], [same, stranger, call])
    for test, score in zip((same, stranger, call), scores, strict=True):
        result = service.verify(("enrol.wav", wav(enrol)), ("test.wav", wav(test)))
        assert result.score == pytest.approx(score, abs=1e-5)
    assert scores[0] > service.threshold_for(TARGET_RATE) > scores[1]


def test_the_common_band_experiment_changes_mixed_pairs_only(service):
    enrol, same = load_sound(MALE_A[0]), load_sound(MALE_A[2])
    call = Sound(c.telephone(same.samples), c.TELEPHONE_RATE)
    two_calls = Sound(c.telephone(enrol.samples), c.TELEPHONE_RATE)
    plain = ServiceScorer(service)([enrol, two_calls, enrol], [same, call, call])
    cut = ServiceScorer(service, mixed_low_cut_hz=300.0)([enrol, two_calls, enrol],
                                                        [same, call, call])
    np.testing.assert_array_equal(cut[:2], plain[:2])  # wideband pair, two calls: as they are
    assert cut[2] > plain[2] + 0.1  # the genuine caller scores higher in the common band
