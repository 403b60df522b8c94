"""bench/gender.py measures a CAM++ gender head on exactly what the verification computes.

The probe's figures (MODEL_CARD_gender.md) are only the figures of "gender from the
verification's own voiceprint, no second pass" if its features are that voiceprint, wideband
and 8 kHz alike; these checks hold it to that, on real LibriSpeech speech.
"""

from __future__ import annotations

import numpy as np
import pytest

from analytic.audio import read_mono, resample, trim_to_speech
from analytic.classifiers.features import compute_frames
from analytic.lab.conditions import narrowband
from bench.gender import labelled, vectorizer
from tests.conftest import FEMALE_A, MALE_A


@pytest.fixture(scope="module")
def campplus_features():
    return vectorizer("campplus")


@pytest.mark.parametrize("path", [MALE_A[0], FEMALE_A[0]])
def test_campplus_features_are_the_verification_voiceprint(service, campplus_features, path):
    data = path.read_bytes()
    clip = service.decode(data, path.name)
    samples, rate = read_mono(data, path.name, 60)
    x = resample(samples, rate)
    frames = compute_frames(trim_to_speech(x))
    wideband = campplus_features(x, frames)
    np.testing.assert_allclose(wideband, service.voiceprint(clip), atol=1e-5)
    band = campplus_features(narrowband(x), frames)
    assert float(band @ service.voiceprint(clip, 8000)) > 0.999
    assert float(band @ wideband) < 0.99  # the 8 kHz copy is a different input


def test_labels_use_the_services_unknown_floor():
    assert list(labelled(np.array([0.95, 0.05, 0.55, 0.45]))) == [
        "male", "female", "unknown", "unknown"]
