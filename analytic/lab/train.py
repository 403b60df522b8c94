"""Train and evaluate the gender and arousal heads; every model-card figure comes from here.

    python -m analytic.lab.train gender  --data ../shared/data --out analytic/models
    python -m analytic.lab.train arousal --data ../shared/data --out analytic/models
    python -m analytic.lab.train gender  --data ../shared/data --evaluate-only   # committed weights

Training is deterministic (lbfgs logistic regression, fixed folds). Model choices (the
regularisation ``C``) are made by speaker-grouped cross-validation on the training corpus
only; the test corpora are read once, after the weights are fixed. Every clip is brought to the
same speech level first (RAVDESS holds takes 25 dB quieter than others, EmoDB is peak-
normalised per file), and every feature goes through the same code the service runs.

``--cache DIR`` keeps extracted features between runs (keyed by corpus and feature version);
extraction is the slow part (~6 min on two busy cores), fitting takes seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analytic.audio import read_mono, resample
from analytic.classifiers import MIN_ACTIVE_FRAMES, MIN_VOICED_FRAMES, MODELS_DIR
from analytic.classifiers.features import (
    Frames,
    compute_frames,
    prosody_vector,
    speech_in,
    window_rows,
)
from analytic.classifiers.head import LinearHead

FEATURES_VERSION = 3  # bump when features.py changes what it computes
LEVEL_DBFS = -26.0
RECEPTIVE_FIELD_MS = 3072  # both models: ~one sentence, the length of a RAVDESS/EmoDB clip
TRAIN_HOP_MS = 1536  # gender training windows overlap by half
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
# Below these top-class probabilities a frame is ``unknown``. Gender: 0.6 keeps ~99 % of
# cross-validated windows and the decided ones are more accurate; arousal has three classes,
# so a top probability under 0.45 means two classes are nearly tied.
UNKNOWN_BELOW = {"gender": 0.6, "arousal": 0.45}
LICENCES = {
    "gender": "CC-BY-4.0: derived from LibriSpeech (c) 2014 Vassil Panayotov et al.",
    "arousal": "CC-BY-NC-SA-4.0: derived from RAVDESS (Livingstone & Russo 2018); "
    "non-commercial use only",
}


# ---------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class Item:
    path: Path
    speaker: str
    gender: str
    label: str
    row: dict[str, str]


def manifest(data: Path, corpus: str) -> list[Item]:
    with open(data / corpus / "manifest.csv", newline="") as handle:
        return [
            Item(data / corpus / r["path"], r["speaker"], r["gender"], r["label"], r)
            for r in csv.DictReader(handle)
        ]


def normalise_level(samples: np.ndarray) -> np.ndarray:
    """Bring the speech (frames within 35 dB of the loud ones) to ``LEVEL_DBFS``."""
    frames = compute_frames(samples)
    speech = speech_in(frames)
    if speech.n_active == 0:
        return samples
    power = 10 ** (frames.energy_db[speech.active].astype(np.float64) / 10)
    gain_db = LEVEL_DBFS - 10 * np.log10(power.mean())
    return (samples * 10 ** (gain_db / 20)).astype(np.float32)


def load_frames(item: Item) -> tuple[Frames, int]:
    samples, rate = read_mono(item.path.read_bytes(), item.path.name, max_duration_s=3600)
    samples = normalise_level(resample(samples, rate))
    return compute_frames(samples), len(samples)


def windows(n_samples: int) -> list[tuple[int, int]]:
    """Training windows of one receptive field, hopping by half (or the whole clip)."""
    length, hop = RECEPTIVE_FIELD_MS * 16, TRAIN_HOP_MS * 16
    ends = list(range(length, n_samples + 1, hop)) or [n_samples]
    return [window_rows(max(end - length, 0), end) for end in ends]


def enough(frames: Frames) -> bool:
    speech = speech_in(frames)
    return speech.n_active >= MIN_ACTIVE_FRAMES and speech.n_voiced >= MIN_VOICED_FRAMES


def extract(
    items: list[Item],
    vector: Callable[[Frames], np.ndarray],
    cache: Path | None,
    key: str,
    with_windows: bool = False,
) -> dict[str, np.ndarray]:
    """Feature vectors per clip (and per training window), cached under ``cache/key``."""
    path = cache / f"{key}_v{FEATURES_VERSION}.npz" if cache else None
    if path and path.exists():
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    started = time.perf_counter()
    clips, keep, wins, owner = [], [], [], []
    for index, item in enumerate(items):
        frames, n_samples = load_frames(item)
        if not enough(frames):
            continue
        clips.append(vector(frames))
        keep.append(index)
        if with_windows:
            for rows in windows(n_samples):
                window = frames.rows(*rows)
                if enough(window):
                    wins.append(vector(window))
                    owner.append(index)
    out = {"clips": np.array(clips), "keep": np.array(keep, dtype=int)}
    if with_windows:
        out |= {"windows": np.array(wins), "owner": np.array(owner, dtype=int)}
    print(f"  {key}: {len(keep)}/{len(items)} clips with enough speech"
          f" ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
    return out


# ---------------------------------------------------------------------------------------------
# models


def fit(x: np.ndarray, y: np.ndarray, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, max_iter=10_000, class_weight="balanced"),
    )
    return model.fit(x, y)


def to_head(model: Any, meta: dict[str, Any]) -> LinearHead:
    scaler, logistic = model.steps[0][1], model.steps[1][1]
    return LinearHead.from_sklearn(scaler, logistic, meta)


def grouped_folds(groups: np.ndarray, n_splits: int) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold

    return GroupKFold(n_splits).split(np.zeros(len(groups)), groups=groups)


def uar(truth: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import recall_score

    return float(recall_score(truth, predicted, average="macro"))


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


# ---------------------------------------------------------------------------------------------
# gender


def gender_vectorizer() -> Callable[[Frames], np.ndarray]:
    from analytic.classifiers.gender import gender_vector
    from analytic.encoders.ge2e import Ge2eEncoder

    embedder = Ge2eEncoder().embed_partials
    return lambda frames: gender_vector(embedder, frames, speech_in(frames))


def train_gender(data: Path, out: Path, cache: Path | None) -> LinearHead:
    items = [i for i in manifest(data, "librispeech") if i.label == "train-clean-100"]
    feats = extract(items, gender_vectorizer(), cache, "gender_train-clean-100", with_windows=True)
    x, owner = feats["windows"], feats["owner"]
    y = np.array([items[i].gender for i in owner])
    speakers = np.array([items[i].speaker for i in owner])
    print(f"gender: {len(x)} windows of {RECEPTIVE_FIELD_MS} ms from {len(set(speakers))} "
          f"train-clean-100 speakers ({np.sum(y == 'male')} male / {np.sum(y == 'female')} "
          "female windows)")
    # One-standard-error rule: the most regularised C whose CV accuracy is within one standard
    # error (over folds) of the best. In-domain CV on read speech cannot tell these C apart,
    # and the head has to carry over to other speaking styles, where weaker regularisation
    # fits LibriSpeech's recording conditions instead of the voice.
    truth = y == "male"
    runs = {}
    for c in C_GRID:
        proba = np.zeros(len(y))
        fold_accuracy = []
        for train, test in grouped_folds(speakers, 5):
            model = fit(x[train], y[train], c)
            proba[test] = model.predict_proba(x[test])[:, list(model.classes_).index("male")]
            fold_accuracy.append(np.mean((proba[test] >= 0.5) == truth[test]))
        loss = -np.mean(np.log(np.clip(np.where(truth, proba, 1 - proba), 1e-9, 1)))
        runs[c] = (np.mean(fold_accuracy), np.std(fold_accuracy) / np.sqrt(5), proba)
        print(f"  C={c:<6} speaker-grouped 5-fold CV: window accuracy {pct(runs[c][0])} "
              f"(SE {pct(runs[c][1])}), log-loss {loss:.4f}")
    top = max(runs, key=lambda c: runs[c][0])
    best_c = min(c for c in C_GRID if runs[c][0] >= runs[top][0] - runs[top][1])
    best_proba = runs[best_c][2]
    decided = np.maximum(best_proba, 1 - best_proba) >= UNKNOWN_BELOW["gender"]
    cv_acc = np.mean((best_proba >= 0.5) == (y == "male"))
    print(f"chosen C={best_c}: CV window accuracy {pct(cv_acc)}; at the unknown floor "
          f"{UNKNOWN_BELOW['gender']}: {pct(decided.mean())} of windows decided, "
          f"{pct(np.mean(((best_proba >= 0.5) == (y == 'male'))[decided]))} of those right")
    model = fit(x, y, best_c)
    head = to_head(model, {
        "model": "gender",
        "features": "GE2E window embedding (256: unit mean of 1.6 s partials over the "
                    "window's speech, brought to -30 dBFS)",
        "receptive_field_ms": RECEPTIVE_FIELD_MS,
        "unknown_below": UNKNOWN_BELOW["gender"],
        "C": best_c,
        "training_data": "LibriSpeech train-clean-100, 251 speakers, 1 utterance each, "
                         f"{len(x)} windows",
        "cv_window_accuracy": round(float(cv_acc), 4),
        "features_version": FEATURES_VERSION,
        "licence": LICENCES["gender"],
    })
    out.mkdir(parents=True, exist_ok=True)
    head.save(out / "gender.npz")
    print(f"wrote {out / 'gender.npz'}")
    return head


def evaluate_gender(data: Path, head: LinearHead, cache: Path | None) -> dict[str, float]:
    """Accuracy on speakers the head never saw: one decision per whole clip (the chunk API),
    plus test-other per 3 s window (what a time-series entry sees)."""
    vectorize = gender_vectorizer()
    floor = float(head.meta["unknown_below"])
    results: dict[str, float] = {}
    sets = [
        ("librispeech", "LibriSpeech test-other",
         lambda i: i.label == "test-other"),
        ("ravdess", "RAVDESS (all 1440 clips)", lambda i: True),
        ("emodb", "EmoDB (all 535 clips)", lambda i: True),
    ]
    print(f"gender, committed weights (C={head.meta['C']}), speakers never seen in training:")
    for corpus, title, keep in sets:
        items = [i for i in manifest(data, corpus) if keep(i)]
        feats = extract(items, vectorize, cache, f"gender_eval_{corpus}", corpus == "librispeech")
        p = head.probabilities(feats["clips"])
        truth = np.array([items[i].gender for i in feats["keep"]])
        predicted = np.array(head.classes)[p.argmax(axis=1)]
        right = predicted == truth
        skipped = len(items) - len(feats["keep"])
        accuracy = float(right.sum() / len(items))  # a skipped clip counts as an error
        results[corpus] = accuracy
        decided = p.max(axis=1) >= floor
        print(f"  {title}: {pct(accuracy)} ({int(right.sum())}/{len(items)}; "
              f"{skipped} clips too short to decide, counted wrong); unknown floor: "
              f"{pct(decided.mean())} decided, {pct(right[decided].mean())} of those right")
        speakers = np.array([items[i].speaker for i in feats["keep"]])
        wrong = {str(s): int((~right[speakers == s]).sum()) for s in np.unique(speakers)}
        wrong = {s: n for s, n in wrong.items() if n}
        if wrong:
            print(f"    errors by speaker: {wrong}")
        if "windows" in feats:
            pw = head.probabilities(feats["windows"])
            wtruth = np.array([items[i].gender for i in feats["owner"]])
            wright = np.array(head.classes)[pw.argmax(axis=1)] == wtruth
            print(f"    per {RECEPTIVE_FIELD_MS} ms window: {pct(wright.mean())} of "
                  f"{len(wright)} windows")
    return results


# ---------------------------------------------------------------------------------------------
# arousal

THREE = ("high", "neutral", "low")


def arousal_vectorizer() -> Callable[[Frames], np.ndarray]:
    return lambda frames: prosody_vector(frames, speech_in(frames))


def _choose_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """C maximising mean(3-class UAR, binary UAR) over actor-grouped 5-fold CV."""
    scores = {}
    for c in C_GRID:
        predicted = np.empty(len(y), dtype=object)
        for train, test in grouped_folds(groups, 5):
            predicted[test] = fit(x[train], y[train], c).predict(x[test])
        scores[c] = (uar(y, predicted) + uar(y == "high", predicted == "high")) / 2
    return max(scores, key=lambda c: scores[c])


def train_arousal(data: Path, out: Path, cache: Path | None) -> LinearHead:
    items = manifest(data, "ravdess")
    feats = extract(items, arousal_vectorizer(), cache, "arousal_ravdess")
    x = feats["clips"]
    kept = [items[i] for i in feats["keep"]]
    label = np.array([i.label for i in kept])
    binary = np.array([i.row["arousal_binary"] for i in kept])
    actors = np.array([i.speaker for i in kept])
    mapped = label != "unmapped"
    print(f"arousal: RAVDESS {len(kept)} clips, 24 actors; {mapped.sum()} with a 3-class label "
          "(disgust is unmapped and left out of training)")
    # Nested, actor-disjoint: outer 6 folds of 4 actors report; C is chosen inside each.
    predicted = np.empty(len(kept), dtype=object)
    proba = np.zeros((len(kept), 3))
    chosen = []
    for train, test in grouped_folds(actors, 6):
        train = train[mapped[train]]
        c = _choose_c(x[train], label[train], actors[train])
        chosen.append(c)
        model = fit(x[train], label[train], c)
        predicted[test] = model.predict(x[test])
        order = [list(model.classes_).index(k) for k in THREE]
        proba[test] = model.predict_proba(x[test])[:, order]
    high = predicted == "high"
    three = uar(label[mapped], predicted[mapped])
    binary_mapped = uar(label[mapped] == "high", high[mapped])
    binary_all = uar(binary == "high", high)
    decided = proba.max(axis=1) >= UNKNOWN_BELOW["arousal"]
    print(f"  C chosen per outer fold: {chosen}")
    print("RAVDESS, actor-disjoint nested 6-fold CV (loudness-normalised):")
    print(f"  3-class UAR (high/neutral/low, {mapped.sum()} clips): {pct(three)}")
    print(f"  binary UAR high vs not-high, same clips: {pct(binary_mapped)}")
    print(f"  binary UAR high vs not-high, all {len(kept)} clips (disgust = not-high, the "
          f"corpus's arousal_binary): {pct(binary_all)}")
    print(f"  unknown floor {UNKNOWN_BELOW['arousal']}: {pct(decided[mapped].mean())} decided, "
          f"3-class UAR of those {pct(uar(label[mapped & decided], predicted[mapped & decided]))}")
    _confusion(label[mapped], predicted[mapped])
    c = _choose_c(x[mapped], label[mapped], actors[mapped])
    model = fit(x[mapped], label[mapped], c)
    head = to_head(model, {
        "model": "arousal",
        "features": "prosody_vector: pitch level/range/movement (semitones), energy dynamics "
                    "relative to the window, voicing, voiced onsets per second, alpha ratio, "
                    "Hammarberg index, spectral slope and centroid, aperiodicity, spectral "
                    "flux, MFCC 1-12 mean and spread (52)",
        "receptive_field_ms": RECEPTIVE_FIELD_MS,
        "unknown_below": UNKNOWN_BELOW["arousal"],
        "C": c,
        "training_data": f"RAVDESS speech, 24 actors, {mapped.sum()} clips (disgust left out)",
        "cv_uar_3class": round(three, 4),
        "cv_uar_binary": round(binary_mapped, 4),
        "cv_uar_binary_all_clips": round(binary_all, 4),
        "features_version": FEATURES_VERSION,
        "licence": LICENCES["arousal"],
    })
    out.mkdir(parents=True, exist_ok=True)
    head.save(out / "arousal.npz")
    print(f"final model: C={c} on all {mapped.sum()} clips; wrote {out / 'arousal.npz'}")
    return head


def _confusion(truth: np.ndarray, predicted: np.ndarray) -> None:
    print("  confusion, rows truth, columns predicted:")
    print("  " + " " * 9 + "".join(f"{k:>9}" for k in THREE))
    for k in THREE:
        counts = [int(np.sum((truth == k) & (predicted == j))) for j in THREE]
        print(f"  {k:>9}" + "".join(f"{n:9d}" for n in counts))


def evaluate_arousal(data: Path, head: LinearHead, cache: Path | None) -> dict[str, float]:
    """Cross-corpus: the committed RAVDESS weights on EmoDB (German, 2 s clips)."""
    items = manifest(data, "emodb")
    feats = extract(items, arousal_vectorizer(), cache, "arousal_emodb")
    kept = [items[i] for i in feats["keep"]]
    p = head.probabilities(feats["clips"])
    predicted = np.array(head.classes)[p.argmax(axis=1)]
    label = np.array([i.label for i in kept])
    binary = np.array([i.row["arousal_binary"] for i in kept])
    mapped = label != "unmapped"
    three = uar(label[mapped], predicted[mapped])
    binary_all = uar(binary == "high", predicted == "high")
    binary_mapped = uar(label[mapped] == "high", predicted[mapped] == "high")
    print(f"arousal, committed weights (C={head.meta['C']}), cross-corpus on EmoDB "
          f"({len(kept)}/{len(items)} clips with enough speech):")
    print(f"  3-class UAR (high/neutral/low, {mapped.sum()} clips): {pct(three)}")
    print(f"  binary UAR high vs not-high, same clips: {pct(binary_mapped)}")
    print(f"  binary UAR, all clips, Schuller et al. 2009 convention (disgust, neutral = "
          f"low): {pct(binary_all)}")
    _confusion(label[mapped], predicted[mapped])
    return {"three": three, "binary": binary_mapped, "binary_all": binary_all}


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analytic.lab.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=("gender", "arousal"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="folder holding librispeech/, ravdess/, emodb/")
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="where weights go")
    parser.add_argument("--cache", type=Path, help="keep extracted features here (e.g. /tmp)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="recompute the test figures from the weights in --out")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # webrtcvad's pkg_resources
    import torch

    torch.set_num_threads(1)  # the machine is shared; the LSTM is small
    weights = args.out / f"{args.model}.npz"
    if args.model == "gender":
        head = LinearHead.load(weights) if args.evaluate_only else train_gender(
            args.data, args.out, args.cache)
        evaluate_gender(args.data, head, args.cache)
    else:
        head = LinearHead.load(weights) if args.evaluate_only else train_arousal(
            args.data, args.out, args.cache)
        if args.evaluate_only:
            print(f"actor-disjoint CV figures stored with the weights (rerun training to "
                  f"recompute): {json.dumps({k: v for k, v in head.meta.items() if 'cv' in k})}")
        evaluate_arousal(args.data, head, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
