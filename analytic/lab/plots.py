"""``evaluate --plots DIR``: a DET curve and a score histogram beside the printed figures.

The numbers (EER, error rates at one threshold, minDCF) say how good a threshold is; the DET
curve shows the whole trade-off a household can pick from (raise the threshold for a door
lock), and the histogram shows how far apart the target and non-target scores lie, which is
what makes a threshold robust or fragile. matplotlib runs headless (Agg): no display is needed
and nothing is shown, only PNG files written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from analytic.lab.evaluate import error_rates

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DET_FILE = "det.png"
HISTOGRAM_FILE = "scores.png"
# Probit-axis ticks, in percent, as DET curves are usually drawn.
TICKS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 40]
EDGE = 0.0005  # 0.05%: where rates of 0 (and 1) are drawn, just past the 0.1% tick


def write_plots(
    scores: np.ndarray,
    is_target: np.ndarray,
    threshold: float,
    eer_threshold: float,
    folder: Path,
    title: str,
) -> list[Path]:
    """Write ``det.png`` and ``scores.png`` into ``folder`` (created); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # headless: before pyplot is imported
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    det, histogram = folder / DET_FILE, folder / HISTOGRAM_FILE

    figure, axes = plt.subplots(figsize=(5.5, 5.5))
    _draw_det(axes, scores, is_target, threshold)
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(det, dpi=100)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7, 4))
    bins = np.linspace(float(scores.min()), float(scores.max()), 50).tolist()
    axes.hist(scores[~is_target], bins=bins, alpha=0.6, density=True,
              label=f"non-target ({int((~is_target).sum())})")
    axes.hist(scores[is_target], bins=bins, alpha=0.6, density=True,
              label=f"target ({int(is_target.sum())})")
    axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4f}")
    axes.axvline(eer_threshold, color="grey", linestyle=":",
                 label=f"EER threshold {eer_threshold:.4f}")
    axes.set_xlabel("score")
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(histogram, dpi=100)
    plt.close(figure)
    return [det, histogram]


def _draw_det(axes: Axes, scores: np.ndarray, is_target: np.ndarray, threshold: float) -> None:
    """False reject against false accept on normal-deviate axes, the operating point marked.

    Rates of exactly 0 or 1 have no place on a probit axis; they are drawn on the plot's
    border (``EDGE``), the usual way of saying "off the chart", so a perfectly separated list
    still shows its (corner) curve without pretending to a rate it did not measure.
    """
    from scipy.stats import norm

    candidates = np.concatenate([np.unique(scores), [np.inf]])
    false_accept, false_reject = error_rates(scores, is_target, candidates)
    def probit(rate: np.ndarray) -> np.ndarray:
        return norm.ppf(np.clip(rate, EDGE, 1 - EDGE))

    point_fa, point_fr = error_rates(scores, is_target, [threshold])
    axes.plot(probit(false_accept), probit(false_reject), label="DET")
    axes.plot(probit(point_fa), probit(point_fr), "o", label=f"threshold {threshold:.4f}")
    ticks = norm.ppf(np.array(TICKS) / 100)
    labels = [f"{t:g}" for t in TICKS]
    axes.set_xticks(ticks, labels)
    axes.set_yticks(ticks, labels)
    limit = (float(norm.ppf(EDGE)), float(norm.ppf(TICKS[-1] / 100)))
    axes.set_xlim(*limit)
    axes.set_ylim(*limit)
    axes.set_xlabel("false accept (%)")
    axes.set_ylabel("false reject (%)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
