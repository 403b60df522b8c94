"""What a score means: a calibrated confidence, and the threshold that keeps strangers out.

A raw score is only a number; a home needs two readings of it:

- ``confidence``: the probability that the two voices are the same person, from a logistic
  fit of the score on development trials (equal weight to same- and different-speaker trials,
  so 0.5 is "as likely as not" before any prior about who tends to ask).
- ``threshold_for(false_accept, members)``: the score a stranger reaches with probability
  ``false_accept`` per attempt. A stranger tries every enrolled member at once, so with N
  members each comparison may only let through ``1 - (1 - false_accept) ** (1 / N)`` of
  strangers; the per-comparison threshold comes from the development impostor scores, taken
  per corpus and the strictest kept, so it holds on the hardest development corpus (telephone
  calls, one-second commands), not just on the easiest.

Both are fitted by ``python -m analytic.lab.calibrate`` on the development halves of several
corpora (``bench/splits``) and shipped as ``analytic/models/calibration_<encoder>.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).parent / "models"
# Per-comparison false-accept rates the impostor quantiles are kept at (log-spaced).
FALSE_ACCEPT_GRID = tuple(float(f) for f in np.geomspace(1e-5, 0.5, 48))


def calibration_path(encoder: str, models_dir: Path = MODELS_DIR) -> Path:
    return models_dir / f"calibration_{encoder}.json"


@dataclass(frozen=True)
class ScoreScale:
    """Calibration of one score scale (raw cosine wide- or narrowband, or AS-norm)."""

    slope: float
    offset: float
    false_accept: tuple[float, ...]  # ascending per-comparison rates
    thresholds: tuple[float, ...]  # descending: the score impostors exceed at each rate

    def confidence(self, score: float) -> float:
        """Calibrated probability of the same speaker, 0..1."""
        z = self.slope * score + self.offset
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def threshold_at(self, per_comparison: float) -> float:
        """Score threshold at which impostors pass with ``per_comparison`` probability
        (log-interpolated in the rate; clamped to the fitted range)."""
        rates = np.log(np.asarray(self.false_accept))
        rate = math.log(min(max(per_comparison, self.false_accept[0]), self.false_accept[-1]))
        return float(np.interp(rate, rates, np.asarray(self.thresholds)))

    def threshold_for(self, false_accept: float, members: int = 1) -> float:
        """The threshold that names a stranger with probability ``false_accept`` per attempt
        when ``members`` voiceprints are compared and the best one is taken."""
        return self.threshold_at(per_comparison(false_accept, members))

    def to_json(self) -> dict:
        return {"slope": self.slope, "offset": self.offset,
                "false_accept": list(self.false_accept), "thresholds": list(self.thresholds)}

    @classmethod
    def from_json(cls, data: dict) -> ScoreScale:
        return cls(float(data["slope"]), float(data["offset"]),
                   tuple(float(f) for f in data["false_accept"]),
                   tuple(float(t) for t in data["thresholds"]))


def per_comparison(false_accept: float, members: int) -> float:
    """The per-comparison rate that gives ``false_accept`` over ``members`` comparisons."""
    members = max(1, members)
    return 1.0 - (1.0 - false_accept) ** (1.0 / members)


@dataclass(frozen=True)
class Calibration:
    """The shipped calibration of one encoder: a ``ScoreScale`` per scale name."""

    encoder: str
    scales: dict[str, ScoreScale]
    source: str = ""  # how it was made (the command and the data), for /models and the docs

    def scale(self, name: str) -> ScoreScale | None:
        return self.scales.get(name)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({
            "encoder": self.encoder, "source": self.source,
            "scales": {name: scale.to_json() for name, scale in self.scales.items()},
        }, indent=1) + "\n")


def load_calibration(encoder: str, models_dir: Path = MODELS_DIR) -> Calibration | None:
    """The calibration shipped for ``encoder``, or None (then scores carry no confidence)."""
    path = calibration_path(encoder, models_dir)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return Calibration(data["encoder"],
                       {name: ScoreScale.from_json(s) for name, s in data["scales"].items()},
                       data.get("source", ""))


def fit_scale(scores: np.ndarray, is_target: np.ndarray,
              impostor_sets: list[np.ndarray]) -> ScoreScale:
    """Logistic calibration on all trials (classes weighted equally) and, per grid rate, the
    strictest impostor quantile over ``impostor_sets`` (one array per development corpus)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(class_weight="balanced", C=1e4)
    model.fit(np.asarray(scores, dtype=np.float64).reshape(-1, 1), is_target)
    thresholds: list[float] = []
    for rate in FALSE_ACCEPT_GRID:
        thresholds.append(max(float(np.quantile(s, 1.0 - rate)) for s in impostor_sets))
    # Quantiles of different sets can cross; keep the table monotone (stricter at lower rates).
    monotone = np.maximum.accumulate(np.asarray(thresholds)[::-1])[::-1]
    return ScoreScale(float(model.coef_[0, 0]), float(model.intercept_[0]),
                      FALSE_ACCEPT_GRID, tuple(round(float(t), 6) for t in monotone))
