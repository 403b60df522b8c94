"""A standardised linear (logistic) head stored as a small ``.npz``: the whole trained model.

Inference is plain numpy on read-only arrays, so one loaded head is shared by every thread
without a lock, and the service needs no scikit-learn at run time. ``train.py`` writes these
files from fitted scikit-learn models (``from_sklearn``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LinearHead:
    """``softmax(((x - mean) / scale) @ coef.T + intercept)`` over ``classes``."""

    classes: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (n_classes, n_features); a binary model is stored as two rows
    intercept: np.ndarray  # (n_classes,)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for one vector (n_features,) or a batch (n, n_features)."""
        x = np.asarray(x, dtype=np.float64)
        single = x.ndim == 1
        z = (np.atleast_2d(x) - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return p[0] if single else p

    def save(self, path: Path) -> None:
        np.savez(
            path,
            classes=np.array(self.classes),
            mean=self.mean,
            scale=self.scale,
            coef=self.coef,
            intercept=self.intercept,
            meta=np.array(json.dumps(self.meta, sort_keys=True)),
        )

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        for name in ("mean", "scale", "coef", "intercept"):
            arrays[name] = arrays[name].astype(np.float64)
            arrays[name].setflags(write=False)
        return cls(
            classes=tuple(str(c) for c in arrays["classes"]),
            mean=arrays["mean"],
            scale=arrays["scale"],
            coef=arrays["coef"],
            intercept=arrays["intercept"],
            meta=json.loads(str(arrays["meta"])),
        )

    @classmethod
    def from_sklearn(cls, scaler: Any, model: Any, meta: dict[str, Any]) -> LinearHead:
        """From a fitted ``StandardScaler`` and ``LogisticRegression``.

        A binary scikit-learn model holds one row ``w`` for ``classes[1]``; storing ``[-w/2,
        w/2]`` gives the same probabilities through the softmax used for every head.
        """
        coef = np.asarray(model.coef_, dtype=np.float64)
        intercept = np.asarray(model.intercept_, dtype=np.float64)
        if coef.shape[0] == 1:
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        scale = np.asarray(scaler.scale_, dtype=np.float64)
        return cls(
            classes=tuple(str(c) for c in model.classes_),
            mean=np.asarray(scaler.mean_, dtype=np.float64),
            scale=np.where(scale > 0, scale, 1.0),
            coef=coef,
            intercept=intercept,
            meta=meta,
        )
