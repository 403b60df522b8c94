"""Frame features and heads: the properties the time series and the stream rely on."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from analytic.classifiers import MODELS_DIR
from analytic.classifiers.features import (
    FRAME,
    HOP,
    Frames,
    compute_frames,
    prosody_vector,
    speech_in,
    window_rows,
)
from analytic.classifiers.head import LinearHead
from tests.conftest import FEMALE_A, MALE_A


def load(path) -> np.ndarray:
    samples, _ = sf.read(path, dtype="float32")
    return samples


def test_frames_do_not_depend_on_how_the_audio_was_cut():
    """A frame is a function of its own samples: the basis of stream == file."""
    samples = load(MALE_A[0])
    whole = compute_frames(samples)
    cut = 37 * HOP
    head = compute_frames(samples[: cut + FRAME - HOP])
    tail = compute_frames(samples[cut:], first=37)
    joined = Frames.concat([head.rows(0, 37), tail])
    assert joined.first == 0 and len(joined) == len(whole)
    np.testing.assert_allclose(joined.f0, whole.f0, rtol=1e-4)
    np.testing.assert_allclose(joined.energy_db, whole.energy_db, atol=1e-3)
    np.testing.assert_allclose(joined.mel, whole.mel, rtol=1e-3, atol=1e-9)
    assert (joined.voiced == whole.voiced).all()


def test_window_rows_are_the_frames_inside_the_window():
    first, stop = window_rows(1000, 16_000)
    assert first * HOP >= 1000 and (first - 1) * HOP < 1000
    assert (stop - 1) * HOP + FRAME <= 16_000 < stop * HOP + FRAME


def test_pitch_separates_the_fixture_speakers():
    male, female = (compute_frames(load(p[0])) for p in (MALE_A, FEMALE_A))
    f0 = [float(np.median(f.f0[speech_in(f).voiced])) for f in (male, female)]
    assert 70 < f0[0] < 160 < f0[1] < 300


def test_prosody_features_ignore_the_recording_level():
    frames = [compute_frames(load(FEMALE_A[0]) * gain) for gain in (1.0, 0.05)]
    vectors = [prosody_vector(f, speech_in(f)) for f in frames]
    np.testing.assert_allclose(vectors[0], vectors[1], rtol=1e-3, atol=1e-3)


def test_silence_has_no_speech():
    frames = compute_frames(np.zeros(16_000, np.float32))
    speech = speech_in(frames)
    assert speech.n_active == 0 and speech.n_voiced == 0


@pytest.mark.parametrize("name", ["gender", "arousal"])
def test_committed_heads_load_and_round_trip(tmp_path, name):
    head = LinearHead.load(MODELS_DIR / f"{name}.npz")
    assert head.meta["receptive_field_ms"] % 64 == 0
    assert 0 < head.meta["unknown_below"] < 1
    assert "licence" in head.meta
    x = np.random.default_rng(1).normal(size=(3, head.n_features))
    p = head.probabilities(x)
    assert p.shape == (3, len(head.classes)) and np.allclose(p.sum(axis=1), 1)
    head.save(tmp_path / "copy.npz")
    assert np.allclose(LinearHead.load(tmp_path / "copy.npz").probabilities(x), p)


def test_binary_head_from_sklearn_keeps_probabilities():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 4))
    y = np.where(x[:, 0] + 0.3 * rng.normal(size=200) > 0, "male", "female")
    scaler = StandardScaler().fit(x)
    model = LogisticRegression().fit(scaler.transform(x), y)
    head = LinearHead.from_sklearn(scaler, model, {})
    np.testing.assert_allclose(head.probabilities(x), model.predict_proba(scaler.transform(x)),
                               atol=1e-9)
