"""Calibration: confidences, and thresholds that keep strangers out whatever the household size."""

from __future__ import annotations

import numpy as np
import pytest

from analytic.calibration import (
    FALSE_ACCEPT_GRID,
    ScoreScale,
    fit_scale,
    load_calibration,
    per_comparison,
)


def test_per_comparison_rate_shrinks_with_the_household():
    assert per_comparison(0.01, 1) == pytest.approx(0.01)
    # Ten members tried at once: each may let through about a tenth as many strangers.
    assert per_comparison(0.01, 10) == pytest.approx(0.001005, rel=1e-3)
    assert 1 - (1 - per_comparison(0.02, 7)) ** 7 == pytest.approx(0.02)


def test_a_fitted_scale_keeps_its_promise_on_the_impostors_it_saw():
    rng = np.random.default_rng(0)
    impostors = [rng.normal(0, 1, 40_000), rng.normal(0.5, 1.2, 40_000)]  # two "corpora"
    targets = rng.normal(6, 1.5, 2_000)
    scores = np.concatenate([*impostors, targets])
    labels = np.concatenate([np.zeros(80_000, bool), np.ones(2_000, bool)])
    scale = fit_scale(scores, labels, impostors)
    for rate, members in ((0.01, 1), (0.01, 10), (0.001, 1)):
        limit = scale.threshold_for(rate, members)
        # The strictest corpus holds the promise (strangers pass at most that often)...
        worst = max(float(np.mean(s >= limit)) for s in impostors)
        assert worst == pytest.approx(per_comparison(rate, members), rel=0.25)
    # ...and a bigger household needs a higher score.
    assert scale.threshold_for(0.01, 20) > scale.threshold_for(0.01, 3) > scale.threshold_for(
        0.01, 1)
    assert scale.confidence(6.0) > 0.99 and scale.confidence(0.0) < 0.01
    assert 0.3 < scale.confidence(3.0) < 0.9


def test_thresholds_stay_in_the_fitted_range():
    grid = np.linspace(9, 1, len(FALSE_ACCEPT_GRID))
    scale = ScoreScale(1.0, 0.0, FALSE_ACCEPT_GRID, tuple(grid))
    assert scale.threshold_at(1e-9) == pytest.approx(9.0)
    assert scale.threshold_at(0.9) == pytest.approx(1.0)


def test_the_shipped_campplus_calibration_covers_every_scale_and_band():
    calibration = load_calibration("campplus")
    assert calibration is not None and "bench/splits" in calibration.source
    for name in ("asnorm_wideband", "asnorm_narrowband", "none_wideband", "none_narrowband"):
        scale = calibration.scale(name)
        assert scale is not None, name
        assert list(scale.thresholds) == sorted(scale.thresholds, reverse=True)
        assert scale.confidence(scale.threshold_at(0.01)) > 0.5 > scale.confidence(
            scale.threshold_at(0.4))
    assert load_calibration("no-such-encoder") is None
