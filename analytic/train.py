"""Train and evaluate the gender and arousal heads; every model-card figure comes from here.

    python -m analytic.train gender  --data ../shared/data --out analytic/models
    python -m analytic.train arousal --data ../shared/data --out analytic/models
    python -m analytic.train gender  --data ../shared/data --evaluate-only   # committed weights

Gender trains on the development speakers and reports on the test speakers of the committed
split (``bench/splits/``), per corpus, per gender, wideband and 8 kHz.

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
        np.savez(path, **out)
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
#
# Trained on the development speakers of four corpora (read, acted, German, real telephone),
# every wideband clip a second time band-limited to 8 kHz (alternately plain 8 kHz and a
# telephone channel, ``conditions.telephone``), and reported on the test speakers of each
# corpus, wideband and 8 kHz. The split is the committed one in ``bench/splits/``.

GENDER_CORPORA = ("librispeech", "ravdess", "emodb", "wuw_telephone")
REPORT_CORPORA = (*GENDER_CORPORA, "fsdd")  # fsdd: 8 kHz digits, six men; reported only
CONDITIONS = ("wideband", "8k")
GENDER_FEATURES_VERSION = 1  # bump when the gender inputs change
TRAIN_WINDOWS_PER_CLIP = 4
GENDER_INPUTS = ("campplus", "campplus+pitch")
SPLITS_DIR = Path(__file__).resolve().parent.parent / "bench" / "splits"
# What each training corpus makes of the weights' licence (the strictest one wins).
CORPUS_LICENCES = {
    "librispeech": "LibriSpeech (c) 2014 Vassil Panayotov et al., CC BY 4.0",
    "ravdess": "RAVDESS (Livingstone & Russo 2018), CC BY-NC-SA 4.0: non-commercial use only",
    "emodb": "EmoDB (Burkhardt et al. 2005), research use (no licence text found)",
    "wuw_telephone": "WUW Corpus II (V. Kepuska, Florida Institute of Technology), CC BY-SA 4.0",
}


NAMES = {"librispeech": "LibriSpeech", "ravdess": "RAVDESS", "emodb": "EmoDB",
         "wuw_telephone": "WUW Corpus II"}


def gender_licence(corpora: Iterable[str]) -> str:
    """The weights' licence as /analyze reports it: the strictest of the training corpora's."""
    corpora = list(corpora)
    spdx = ("CC-BY-NC-SA-4.0" if "ravdess" in corpora else
            "CC-BY-SA-4.0" if "wuw_telephone" in corpora else "CC-BY-4.0")
    note = ": non-commercial use only" if "ravdess" in corpora else ""
    note += "; EmoDB: research use" if "emodb" in corpora else ""
    return f"{spdx} (trained on {', '.join(NAMES[c] for c in corpora)}){note}"


def halves(corpus: str, splits: Path = SPLITS_DIR) -> dict[str, str]:
    """speaker -> ``dev`` / ``test`` from the committed split."""
    with open(splits / f"{corpus}.csv", newline="") as handle:
        return {row["speaker"]: row["half"] for row in csv.DictReader(handle)}


def half_items(data: Path, corpus: str, half: str) -> list[Item]:
    which = halves(corpus)
    return [i for i in manifest(data, corpus) if which.get(i.speaker) == half
            and i.gender in ("male", "female")]


def spread(spans: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """At most ``most`` of ``spans``, evenly spaced (training needs variety, not all of them)."""
    if len(spans) <= most:
        return spans
    return [spans[int(k)] for k in np.linspace(0, len(spans) - 1, most).round()]


def gender_extract(items: list[Item], condition: str, train: bool, cache: Path | None,
                   key: str) -> dict[str, np.ndarray]:
    """CAM++ embeddings and pitch of every clip as verification describes it (trimmed to
    speech) and of 3072 ms windows of the untrimmed audio (what a time-series entry sees).

    ``condition`` ``8k``: a wideband clip is band-limited to 8 kHz first (for training, every
    second clip through the telephone channel instead); a clip recorded at 8 kHz is left as
    it is. ``wideband`` skips clips recorded at 8 kHz. Training keeps a few windows per clip,
    half of them in each condition; the report takes every window.
    """
    from analytic.audio import trim_to_speech
    from analytic.classifiers.gender import pitch_stats
    from analytic.conditions import narrowband, telephone
    from analytic.encoders.campplus import CamPlusPlusEncoder

    path = cache / f"{key}_g{GENDER_FEATURES_VERSION}.npz" if cache else None
    if path and path.exists():
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    embed = CamPlusPlusEncoder().embed
    started = time.perf_counter()
    out: dict[str, list[Any]] = {k: [] for k in ("emb", "pitch", "keep", "wemb", "wpitch",
                                                  "owner")}
    length = RECEPTIVE_FIELD_MS * 16
    for index, item in enumerate(items):
        samples, rate = read_mono(item.path.read_bytes(), item.path.name, max_duration_s=3600)
        if condition == "wideband" and rate <= 8000:
            continue
        x = resample(samples, rate)
        if condition == "8k" and rate > 8000:
            x = telephone(x) if train and index % 2 else narrowband(x)
        speech = trim_to_speech(x)
        frames = compute_frames(speech)
        if enough(frames):
            out["emb"].append(embed(speech))
            out["pitch"].append(pitch_stats(frames, speech_in(frames)))
            out["keep"].append(index)
        spans = [(max(end - length, 0), end)
                 for end in range(length, len(x) + 1, length)] or [(0, len(x))]
        if train:
            spans = spread(spans, TRAIN_WINDOWS_PER_CLIP)
            spans = spans[(index + CONDITIONS.index(condition)) % 2 :: 2]
        elif condition != "wideband" and rate > 8000:
            spans = []  # the report's time series is taken on the audio as recorded
        full = compute_frames(x)
        for lo, hi in spans:
            window = full.rows(*window_rows(lo, hi))
            if enough(window):
                out["wemb"].append(embed(x[lo:hi]))
                out["wpitch"].append(pitch_stats(window, speech_in(window)))
                out["owner"].append(index)
    result = {
        "emb": np.array(out["emb"]).reshape(-1, 192),
        "pitch": np.array(out["pitch"]).reshape(-1, 3),
        "keep": np.array(out["keep"], dtype=int),
        "wemb": np.array(out["wemb"]).reshape(-1, 192),
        "wpitch": np.array(out["wpitch"]).reshape(-1, 3),
        "owner": np.array(out["owner"], dtype=int),
    }
    print(f"  {key}: {len(result['keep'])}/{len(items)} clips, {len(result['owner'])} windows "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **result)
    return result


def gender_inputs(feats: dict[str, np.ndarray], inputs: str, windows: bool = False
                  ) -> np.ndarray:
    emb, pitch = (feats["wemb"], feats["wpitch"]) if windows else (feats["emb"], feats["pitch"])
    return np.hstack([emb, pitch]) if inputs == "campplus+pitch" else emb


def _gender_table(data: Path, half: str, cache: Path | None, corpora: Iterable[str],
                  train: bool) -> dict[tuple[str, str], tuple[list[Item], dict[str, np.ndarray]]]:
    table = {}
    for corpus in corpora:
        items = half_items(data, corpus, half)
        for condition in CONDITIONS:
            kind = "train" if train else "report"
            table[corpus, condition] = (items, gender_extract(
                items, condition, train, cache, f"gender_{kind}_{corpus}_{half}_{condition}"))
    return table


def train_gender(data: Path, out: Path, cache: Path | None,
                 corpora: tuple[str, ...] = GENDER_CORPORA) -> LinearHead:
    table = _gender_table(data, "dev", cache, corpora, train=True)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("y", "spk", "group", "clip")}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in GENDER_INPUTS}
    for (corpus, condition), (items, feats) in table.items():
        for windows, owner in ((False, feats["keep"]), (True, feats["owner"])):
            if not len(owner):
                continue
            for inputs in GENDER_INPUTS:
                parts[inputs].append(gender_inputs(feats, inputs, windows))
            rows["y"].append(np.array([items[i].gender for i in owner]))
            rows["spk"].append(np.array([items[i].speaker for i in owner]))
            rows["group"].append(np.array([f"{corpus}/{condition}/{items[i].gender}"
                                           for i in owner]))
            rows["clip"].append(np.full(len(owner), not windows))
    y, speakers, group, is_clip = (np.concatenate(rows[k]) for k in ("y", "spk", "group", "clip"))
    print(f"gender: {len(y)} vectors ({is_clip.sum()} whole clips, {(~is_clip).sum()} "
          f"{RECEPTIVE_FIELD_MS} ms windows) from {len(set(speakers))} development speakers of "
          f"{', '.join(corpora)}; wideband and 8 kHz")
    # Inputs and C by speaker-grouped 5-fold CV on the development speakers only, scored by
    # the mean over (corpus, condition, gender) of whole-clip accuracy, so that no corpus or
    # gender is traded away for a bigger one; ties go to the more regularised model.
    runs = {}
    for inputs in GENDER_INPUTS:
        x = np.vstack(parts[inputs])
        for c in C_GRID:
            predicted = np.empty(len(y), dtype=object)
            for train, test in grouped_folds(speakers, 5):
                predicted[test] = fit(x[train], y[train], c).predict(x[test])
            right = predicted == y
            per_group = {g: float(right[is_clip & (group == g)].mean())
                         for g in np.unique(group[is_clip])}
            score = float(np.mean(list(per_group.values())))
            worst = min(per_group, key=lambda g: per_group[g])
            runs[inputs, c] = score
            print(f"  {inputs:<15} C={c:<6} CV clip accuracy, mean over groups {pct(score)}; "
                  f"worst {worst} {pct(per_group[worst])}; windows {pct(right[~is_clip].mean())}")
    best = max(runs.values())
    inputs, c = next(k for k in runs if runs[k] == best)
    x = np.vstack(parts[inputs])
    model = fit(x, y, c)
    head = to_head(model, {
        "model": "gender",
        "inputs": inputs,
        "features": "CAM++ embedding (192, unit) of the window's audio"
                    + (" + 10th/50th/90th percentile pitch, semitones" if inputs != "campplus"
                       else ""),
        "receptive_field_ms": RECEPTIVE_FIELD_MS,
        "unknown_below": UNKNOWN_BELOW["gender"],
        "C": c,
        "training_data": f"development speakers of {', '.join(corpora)} "
                         f"(bench/splits), wideband and 8 kHz, {len(y)} vectors",
        "cv_clip_accuracy_mean_over_groups": round(best, 4),
        "gender_features_version": GENDER_FEATURES_VERSION,
        "licence": gender_licence(corpora),
        "licence_sources": "; ".join(CORPUS_LICENCES[c] for c in corpora),
    })
    out.mkdir(parents=True, exist_ok=True)
    head.save(out / "gender.npz")
    print(f"chosen: {inputs}, C={c}; wrote {out / 'gender.npz'}")
    return head


def evaluate_gender(data: Path, head: LinearHead, cache: Path | None) -> dict[str, float]:
    """Test speakers of every corpus, wideband and 8 kHz: one answer per whole clip as a
    verification result gives it (``AnalysisService.describe`` on the trimmed speech), a clip
    too short to decide or ``unknown`` counted wrong; and, wideband, the majority of the
    time series' decided windows, for comparison."""
    inputs = str(head.meta.get("inputs", "campplus"))
    floor = float(head.meta["unknown_below"])
    table = _gender_table(data, "test", cache, REPORT_CORPORA, train=False)
    print(f"gender, committed weights ({inputs}, C={head.meta['C']}), test speakers "
          f"(bench/splits), one answer per clip; unknown and too-short clips count wrong:")
    print("| corpus | audio | clips | overall | female | male | unknown | time-series majority |")
    print("|---|---|---|---|---|---|---|---|")
    results: dict[str, float] = {}
    pooled: dict[str, list[np.ndarray]] = {"right": [], "truth": []}
    for (corpus, condition), (items, feats) in table.items():
        owners = feats["keep"]
        truth = np.array([i.gender for i in items])
        rate_ok = np.zeros(len(items), dtype=bool)
        rate_ok[owners] = True
        if condition == "wideband" and not len(owners):
            continue  # recorded at 8 kHz: reported under 8k only
        answer = np.full(len(items), "unknown", dtype=object)
        if len(owners):
            p = head.probabilities(gender_inputs(feats, inputs))
            label = np.array(head.classes)[p.argmax(axis=1)]
            answer[owners] = np.where(p.max(axis=1) >= floor, label, "unknown")
        right = answer == truth
        line = [corpus, "8 kHz" if condition == "8k" else "wideband", str(len(items)),
                pct(right.mean())]
        for g in ("female", "male"):
            line.append(pct(right[truth == g].mean()) if (truth == g).any() else "-")
        line.append(pct(np.mean(answer == "unknown")))
        majority = "-"
        if len(feats["owner"]):
            pw = head.probabilities(gender_inputs(feats, inputs, windows=True))
            wl = np.where(pw.max(axis=1) >= floor, np.array(head.classes)[pw.argmax(axis=1)],
                          "unknown")
            vote = np.full(len(items), "unknown", dtype=object)
            for i in np.unique(feats["owner"]):
                mine = wl[feats["owner"] == i]
                m, f = np.sum(mine == "male"), np.sum(mine == "female")
                vote[i] = "male" if m > f else "female" if f > m else "unknown"
            majority = (f"{pct(np.mean(vote == truth))} (windows unknown "
                        f"{pct(np.mean(wl == 'unknown'))})")
        line.append(majority)
        print("| " + " | ".join(line) + " |")
        results[f"{corpus}/{condition}"] = float(right.mean())
        if corpus in GENDER_CORPORA:
            pooled["right"].append(right)
            pooled["truth"].append(truth)
    right, truth = np.concatenate(pooled["right"]), np.concatenate(pooled["truth"])
    print(f"pooled over {', '.join(GENDER_CORPORA)} and both conditions: {pct(right.mean())} "
          f"(female {pct(right[truth == 'female'].mean())}, male "
          f"{pct(right[truth == 'male'].mean())}) of {len(right)} clip answers")
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
    parser = argparse.ArgumentParser(prog="python -m analytic.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=("gender", "arousal"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="folder holding librispeech/, ravdess/, emodb/")
    parser.add_argument("--out", type=Path, default=MODELS_DIR, help="where weights go")
    parser.add_argument("--cache", type=Path, help="keep extracted features here (e.g. /tmp)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="recompute the test figures from the weights in --out")
    parser.add_argument("--corpora", default=",".join(GENDER_CORPORA),
                        help="gender: training corpora (their licences decide the weights')")
    parser.add_argument("--extract-only", choices=("dev", "test"),
                        help="gender: only fill --cache with one half's features (run the "
                             "two halves as two processes, then train from the cache)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # webrtcvad's pkg_resources
    import torch

    torch.set_num_threads(1)  # the machine is shared; the LSTM is small
    weights = args.out / f"{args.model}.npz"
    if args.model == "gender" and args.extract_only:
        corpora = GENDER_CORPORA if args.extract_only == "dev" else REPORT_CORPORA
        _gender_table(args.data, args.extract_only, args.cache, corpora,
                      train=args.extract_only == "dev")
        return 0
    if args.model == "gender":
        corpora = tuple(c for c in args.corpora.split(",") if c)
        unknown = set(corpora) - set(GENDER_CORPORA)
        if unknown:
            parser.error(f"--corpora: not a gender training corpus: {sorted(unknown)}")
        head = LinearHead.load(weights) if args.evaluate_only else train_gender(
            args.data, args.out, args.cache, corpora)
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
