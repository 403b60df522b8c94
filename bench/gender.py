"""Gender per corpus, per gender, wideband and 8 kHz, on the test speakers of every corpus.

    python bench/gender.py --cache /tmp/gender                 # the committed head (GE2E)
    python bench/gender.py --cache /tmp/gender --campplus-probe # + a CAM++ (+pitch) probe

Speakers come from the committed split (``bench/splits/<corpus>.csv``): anything trained or
chosen here uses the ``dev`` speakers only, every figure is on the ``test`` speakers. Each
clip is judged as a verification result judges it (``AnalysisService.describe``: the speech
detector's output as one chunk), wideband and band-limited to 8 kHz
(``analytic.lab.conditions.narrowband``; corpora recorded at 8 kHz are reported as they are); an
``unknown`` or too-short clip counts as wrong. Wideband, the majority of the time series'
decided 3072 ms windows (untrimmed audio) is shown beside it, and the share of windows that
come out ``unknown``.

``--campplus-probe`` also trains, on the dev speakers of LibriSpeech, RAVDESS, EmoDB and wuw
(wideband and 8 kHz copies, every second one through the telephone channel), a logistic head
on the CAM++ embedding plus 10th/50th/90th-percentile pitch, C by speaker-grouped CV, and
reports it the same way: the measurement behind keeping GE2E for gender (issue 12).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytic.classifiers.head import LinearHead  # noqa: E402
from analytic.lab.train import (  # noqa: E402
    C_GRID,
    RECEPTIVE_FIELD_MS,
    Item,
    enough,
    fit,
    grouped_folds,
    manifest,
    pct,
)

REPORT_CORPORA = ("librispeech", "ravdess", "emodb", "wuw_telephone", "fsdd")
PROBE_CORPORA = ("librispeech", "ravdess", "emodb", "wuw_telephone")
CONDITIONS = ("wideband", "8k")
TRAIN_WINDOWS_PER_CLIP = 4
VERSION = 1  # bump when what is extracted changes
FLOOR = 0.6


def half_items(data: Path, corpus: str, half: str) -> list[Item]:
    with (ROOT / "bench/splits" / f"{corpus}.csv").open(newline="") as handle:
        which = {row["speaker"]: row["half"] for row in csv.DictReader(handle)}
    return [i for i in manifest(data, corpus)
            if which.get(i.speaker) == half and i.gender in ("male", "female")]


def vectorizer(kind: str) -> Callable[[np.ndarray, Any], np.ndarray]:
    """(16 kHz samples, their frames) -> the features: ``ge2e`` = the committed head's input
    (GE2E window embedding), ``campplus`` = CAM++ embedding + 3 pitch percentiles."""
    from analytic.classifiers.features import semitones, speech_in

    if kind == "ge2e":
        from analytic.classifiers.gender import gender_vector
        from analytic.encoders.ge2e import Ge2eEncoder

        partials = Ge2eEncoder().embed_partials
        return lambda samples, frames: gender_vector(partials, frames, speech_in(frames))
    from analytic.encoders.campplus import CamPlusPlusEncoder

    embed = CamPlusPlusEncoder().embed

    def campplus(samples: np.ndarray, frames: Any) -> np.ndarray:
        voiced = frames.f0[speech_in(frames).voiced]
        pitch = np.percentile(semitones(voiced), [10, 50, 90]) if len(voiced) else np.zeros(3)
        return np.concatenate([embed(samples), pitch])

    return campplus


def extract(items: list[Item], kind: str, condition: str, train: bool, cache: Path | None,
            key: str) -> dict[str, np.ndarray]:
    """Per clip (trimmed to speech, as ``describe``) and per 3072 ms window of the untrimmed
    audio: feature vectors, cached under ``cache``."""
    from analytic.audio import read_mono, resample, trim_to_speech
    from analytic.classifiers.features import compute_frames, window_rows
    from analytic.lab.conditions import narrowband, telephone

    path = cache / f"{key}_{kind}_v{VERSION}.npz" if cache else None
    if path and path.exists():
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    vector = vectorizer(kind)
    started = time.perf_counter()
    clips, keep, wins, owner = [], [], [], []
    length = RECEPTIVE_FIELD_MS * 16
    for index, item in enumerate(items):
        samples, rate = read_mono(item.path.read_bytes(), item.path.name, max_duration_s=3600)
        if condition == "wideband" and rate <= 8000:
            continue  # recorded at 8 kHz: reported under 8 kHz only
        x = resample(samples, rate)
        if condition == "8k" and rate > 8000:
            x = telephone(x) if train and index % 2 else narrowband(x)
        speech = trim_to_speech(x)
        frames = compute_frames(speech)
        if enough(frames):
            clips.append(vector(speech, frames))
            keep.append(index)
        spans = [(end - length, end) for end in range(length, len(x) + 1, length)]
        spans = spans or [(0, len(x))]
        if train:
            picks = np.linspace(0, len(spans) - 1, min(len(spans), TRAIN_WINDOWS_PER_CLIP))
            spans = [spans[int(k)] for k in picks.round()]
            spans = spans[(index + CONDITIONS.index(condition)) % 2 :: 2]
        elif condition != "wideband" and rate > 8000:
            spans = []
        full = compute_frames(x)
        for lo, hi in spans:
            window = full.rows(*window_rows(lo, hi))
            if enough(window):
                wins.append(vector(x[lo:hi], window))
                owner.append(index)
    out = {"clips": np.array(clips), "keep": np.array(keep, dtype=int),
           "windows": np.array(wins), "owner": np.array(owner, dtype=int)}
    print(f"  {key} ({kind}): {len(keep)}/{len(items)} clips, {len(owner)} windows "
          f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)
    return out


Proba = Callable[[np.ndarray], np.ndarray]  # (n, d) -> P(male) per row


def report(title: str, data: Path, kind: str, p_male: Proba, cache: Path | None) -> None:
    print(f"\n{title}: test speakers (bench/splits), one answer per clip as `describe` gives "
          "it; unknown and too-short clips count wrong")
    print("| corpus | audio | clips | overall | female | male | unknown | "
          "time-series majority (windows unknown) |")
    print("|---|---|---|---|---|---|---|---|")
    pooled: list[tuple[np.ndarray, np.ndarray]] = []
    for corpus in REPORT_CORPORA:
        items = half_items(data, corpus, "test")
        truth = np.array([i.gender for i in items])
        for condition in CONDITIONS:
            feats = extract(items, kind, condition, False, cache,
                            f"gender_test_{corpus}_{condition}")
            if condition == "wideband" and not len(feats["keep"]) and not len(feats["owner"]):
                continue
            answer = np.full(len(items), "unknown", dtype=object)
            if len(feats["keep"]):
                p = p_male(feats["clips"])
                label = np.where(p >= 0.5, "male", "female")
                answer[feats["keep"]] = np.where(np.maximum(p, 1 - p) >= FLOOR, label,
                                                 "unknown")
            right = answer == truth
            cells = [corpus, "8 kHz" if condition == "8k" else "wideband", str(len(items)),
                     pct(right.mean())]
            cells += [pct(right[truth == g].mean()) if (truth == g).any() else "-"
                      for g in ("female", "male")]
            cells.append(pct(np.mean(answer == "unknown")))
            if len(feats["owner"]):
                pw = p_male(feats["windows"])
                wl = np.where(np.maximum(pw, 1 - pw) >= FLOOR,
                              np.where(pw >= 0.5, "male", "female"), "unknown")
                vote = np.full(len(items), "unknown", dtype=object)
                for i in np.unique(feats["owner"]):
                    mine = wl[feats["owner"] == i]
                    m, f = int(np.sum(mine == "male")), int(np.sum(mine == "female"))
                    vote[i] = "male" if m > f else "female" if f > m else "unknown"
                cells.append(f"{pct(np.mean(vote == truth))} ({pct(np.mean(wl == 'unknown'))})")
            else:
                cells.append("-")
            print("| " + " | ".join(cells) + " |", flush=True)
            if corpus != "fsdd":
                pooled.append((right, truth))
    right = np.concatenate([r for r, _ in pooled])
    truth = np.concatenate([t for _, t in pooled])
    print(f"pooled (all but fsdd, both conditions): {pct(right.mean())}; female "
          f"{pct(right[truth == 'female'].mean())}, male {pct(right[truth == 'male'].mean())}")


def probe(data: Path, cache: Path | None, kind: str = "campplus",
          write: Path | None = None) -> Proba:
    """Logistic head on ``kind``'s features of the dev speakers of ``PROBE_CORPORA``
    (wideband and 8 kHz copies); C by speaker-grouped 5-fold CV. ``write``: save it as a
    ``LinearHead`` the service can load (GE2E only: the service's gender head reads GE2E)."""
    xs, ys, spk = [], [], []
    for corpus in PROBE_CORPORA:
        items = half_items(data, corpus, "dev")
        for condition in CONDITIONS:
            feats = extract(items, kind, condition, True, cache,
                            f"gender_dev_{corpus}_{condition}")
            for vectors, owner in ((feats["clips"], feats["keep"]),
                                   (feats["windows"], feats["owner"])):
                if len(owner):
                    xs.append(vectors)
                    ys += [items[i].gender for i in owner]
                    spk += [items[i].speaker for i in owner]
    x, y, groups = np.vstack(xs), np.array(ys), np.array(spk)
    scores = {}
    for c in C_GRID:
        predicted = np.empty(len(y), dtype=object)
        for train, test in grouped_folds(groups, 5):
            predicted[test] = fit(x[train], y[train], c).predict(x[test])
        scores[c] = float(np.mean(predicted == y))
        print(f"  {kind} probe C={c}: speaker-grouped CV accuracy {pct(scores[c])}")
    c = max(scores, key=lambda k: scores[k])
    model = fit(x, y, c)
    male = list(model.classes_).index("male")
    print(f"  chosen C={c} on {len(y)} dev vectors of {len(set(spk))} speakers")
    if write is not None and kind == "ge2e":
        from analytic.lab.train import to_head

        committed = LinearHead.load(ROOT / "analytic/models/gender.npz").meta
        to_head(model, {**committed, "C": c, "cv_window_accuracy": round(scores[c], 4),
                        "training_data": f"dev speakers (bench/splits) of "
                                         f"{', '.join(PROBE_CORPORA)}, wideband and 8 kHz, "
                                         f"{len(y)} vectors"}).save(write)
        print(f"  wrote {write} (its licence follows the training corpora: RAVDESS makes it "
              "CC BY-NC-SA 4.0)")
    return lambda v: model.predict_proba(v)[:, male]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--cache", type=Path, help="keep extracted features here")
    parser.add_argument("--campplus-probe", action="store_true",
                        help="also train and report a CAM++ + pitch probe (dev speakers)")
    parser.add_argument("--ge2e-probe", action="store_true",
                        help="also train and report a GE2E head on the four corpora's dev "
                             "speakers, wideband and 8 kHz")
    parser.add_argument("--write", type=Path, help="save the GE2E probe as a head here")
    parser.add_argument("--skip-committed", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    import torch

    torch.set_num_threads(1)
    if not args.skip_committed:
        head = LinearHead.load(ROOT / "analytic/models/gender.npz")
        male = head.classes.index("male")
        report(f"committed gender head (GE2E, C={head.meta['C']})", args.data, "ge2e",
               lambda v: head.probabilities(v)[:, male], args.cache)
    if args.ge2e_probe:
        report("GE2E probe (dev speakers of the four corpora, wideband and 8 kHz)", args.data,
               "ge2e", probe(args.data, args.cache, "ge2e", args.write), args.cache)
    if args.campplus_probe:
        report("CAM++ + pitch probe (dev speakers of the four corpora)", args.data,
               "campplus", probe(args.data, args.cache, "campplus"), args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
