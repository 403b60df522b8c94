"""Gender per corpus, per gender, wideband and 8 kHz, on the test speakers of every corpus.

    python bench/gender.py --cache /tmp/gender                    # the committed (GE2E) head
    python bench/gender.py --cache /tmp/gender --probe campplus   # + a CAM++ head, same files
    python bench/gender.py --cache /tmp/gender --heads none --probe campplus  # the probe only

Speakers come from the committed split (``bench/splits/<corpus>.csv``): anything trained or
chosen here uses the ``dev`` speakers only, every figure is on the ``test`` speakers. Each
clip is judged as a verification result judges it: the speech detector's output must hold
enough speech (``AnalysisService.describe``), and the head reads what the service gives it
for that encoder: the GE2E head its own partial embeddings of the trimmed speech, a CAM++
head the verification voiceprint itself (the whole recording, ``VerificationService.
voiceprint``: what it would read with no second encoder pass). Clips are scored wideband and
band-limited to 8 kHz (``analytic.lab.conditions.narrowband``; corpora recorded at 8 kHz are
reported as they are); an ``unknown`` or too-short clip counts as wrong. Beside the clip
answer: the accuracy of single 3072 ms windows of the untrimmed file (what one ``/analyze``
time-series entry decides; ``unknown`` counts wrong), the majority of the decided windows, and
the share of windows that come out ``unknown``.

``--probe KIND`` trains a logistic head on ``KIND``'s features of the dev speakers of
``--train-corpora`` (default: LibriSpeech and WUW, the corpora whose licences allow shipping
the weights; every wideband clip also band-limited to 8 kHz, every second one through the
telephone channel), ``C`` by speaker-grouped 5-fold CV on those dev speakers, and reports it
the same way; ``--write PATH`` saves it as a ``LinearHead`` (with its licence). The CAM++
probe is the measurement behind keeping the GE2E head for gender (MODEL_CARD_gender.md).
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

from analytic.classifiers import MODELS_DIR  # noqa: E402
from analytic.classifiers.head import LinearHead  # noqa: E402
from analytic.lab.train import (  # noqa: E402
    C_GRID,
    RECEPTIVE_FIELD_MS,
    UNKNOWN_BELOW,
    Item,
    enough,
    fit,
    grouped_folds,
    manifest,
    pct,
    to_head,
)

REPORT_CORPORA = ("librispeech", "ravdess", "emodb", "wuw_telephone", "fsdd")
TRAIN_CORPORA = ("librispeech", "wuw_telephone")
KINDS = ("ge2e", "campplus")
COMMITTED = {"ge2e": "gender.npz"}  # the shipped gender head per features kind
FEATURES = {
    "ge2e": "GE2E window embedding (256: unit mean of 1.6 s partials over the window's "
            "speech, brought to -30 dBFS)",
    "campplus": "CAM++ voiceprint (192, unit length) of the window's audio, untrimmed: the "
                "verification's own embedding",
}
CONDITIONS = ("wideband", "8k")
TRAIN_WINDOWS_PER_CLIP = 4
VERSION = 2  # bump when what is extracted changes
FLOOR = UNKNOWN_BELOW["gender"]
LICENCE_OF = {  # the training corpora's licences, as shared/data/README.md gives them
    "librispeech": "CC-BY-4.0", "wuw_telephone": "CC-BY-SA-4.0", "fsdd": "CC-BY-SA-4.0",
    "ravdess": "CC-BY-NC-SA-4.0", "emodb": "research use only (no licence found)",
}


def half_items(data: Path, corpus: str, half: str) -> list[Item]:
    with (ROOT / "bench/splits" / f"{corpus}.csv").open(newline="") as handle:
        which = {row["speaker"]: row["half"] for row in csv.DictReader(handle)}
    return [i for i in manifest(data, corpus)
            if which.get(i.speaker) == half and i.gender in ("male", "female")]


Vectorizer = Callable[[np.ndarray, Any], np.ndarray]


def vectorizer(kind: str) -> Vectorizer:
    """(what the encoder hears, the frames the describe path checks) -> the head's input:
    ``ge2e`` = the GE2E head's window embedding (of the frames), ``campplus`` = the CAM++
    voiceprint of the audio, exactly as the verification computes it."""
    from analytic.classifiers.features import speech_in

    if kind == "ge2e":
        from analytic.classifiers.gender import gender_vector
        from analytic.encoders.ge2e import Ge2eEncoder

        partials = Ge2eEncoder().embed_partials
        return lambda audio, frames: gender_vector(partials, frames, speech_in(frames))
    if kind == "campplus":
        from analytic.encoders.campplus import CamPlusPlusEncoder

        encoder = CamPlusPlusEncoder(onnx_dir=Path("~/.cache/voicegate").expanduser())
        return lambda audio, frames: encoder.embed(audio)
    raise ValueError(f"unknown kind {kind!r}")


def extract(items: list[Item], kinds: tuple[str, ...], condition: str, train: bool,
            cache: Path | None, key: str) -> dict[str, dict[str, np.ndarray]]:
    """Per kind: feature vectors per clip and per 3072 ms window of the untrimmed audio,
    cached under ``cache``; kinds missing from the cache are computed in one pass."""
    from analytic.audio import read_mono, resample, trim_to_speech
    from analytic.classifiers.features import compute_frames, window_rows
    from analytic.lab.conditions import narrowband, telephone

    paths = {k: cache / f"{key}_{k}_v{VERSION}.npz" if cache else None for k in kinds}
    out: dict[str, dict[str, np.ndarray]] = {}
    for k, path in paths.items():
        if path and path.exists():
            with np.load(path) as stored:
                out[k] = {name: stored[name] for name in stored.files}
    todo = [k for k in kinds if k not in out]
    if not todo:
        return out
    vectors = {k: vectorizer(k) for k in todo}
    started = time.perf_counter()
    got: dict[str, dict[str, list]] = {k: {"clips": [], "windows": []} for k in todo}
    keep, owner = [], []
    length = RECEPTIVE_FIELD_MS * 16
    for index, item in enumerate(items):
        samples, rate = read_mono(item.path.read_bytes(), item.path.name, max_duration_s=3600)
        if condition == "wideband" and rate <= 8000:
            continue  # recorded at 8 kHz: reported under 8 kHz only
        x = resample(samples, rate)
        if condition == "8k" and rate > 8000:
            x = telephone(x) if train and index % 2 else narrowband(x)
        frames = compute_frames(trim_to_speech(x))
        if enough(frames):
            keep.append(index)
            for k in todo:
                got[k]["clips"].append(vectors[k](x, frames))
        spans = [(end - length, end) for end in range(length, len(x) + 1, length)]
        spans = spans or [(0, len(x))]
        if train:
            picks = np.linspace(0, len(spans) - 1, min(len(spans), TRAIN_WINDOWS_PER_CLIP))
            spans = [spans[int(p)] for p in picks.round()]
            spans = spans[(index + CONDITIONS.index(condition)) % 2 :: 2]
        full = compute_frames(x)
        for lo, hi in spans:
            window = full.rows(*window_rows(lo, hi))
            if enough(window):
                owner.append(index)
                for k in todo:
                    got[k]["windows"].append(vectors[k](x[lo:hi], window))
    for k in todo:
        out[k] = {"clips": np.array(got[k]["clips"]), "keep": np.array(keep, dtype=int),
                  "windows": np.array(got[k]["windows"]), "owner": np.array(owner, dtype=int)}
        if paths[k]:
            paths[k].parent.mkdir(parents=True, exist_ok=True)
            np.savez(paths[k], **out[k])
    print(f"  {key} ({', '.join(todo)}): {len(keep)}/{len(items)} clips, {len(owner)} "
          f"windows ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return out


Proba = Callable[[np.ndarray], np.ndarray]  # (n, d) -> P(male) per row


def labelled(p: np.ndarray) -> np.ndarray:
    return np.where(np.maximum(p, 1 - p) >= FLOOR, np.where(p >= 0.5, "male", "female"),
                    "unknown")


def report(heads: dict[str, tuple[str, Proba]], data: Path, cache: Path | None) -> None:
    """One table per head, every head on the same files."""
    kinds = tuple(sorted({kind for kind, _ in heads.values()}))
    tables: dict[str, list[str]] = {title: [] for title in heads}
    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {title: [] for title in heads}
    for corpus in REPORT_CORPORA:
        items = half_items(data, corpus, "test")
        truth = np.array([i.gender for i in items])
        for condition in CONDITIONS:
            feats = extract(items, kinds, condition, False, cache,
                            f"gender_test_{corpus}_{condition}")
            for title, (kind, p_male) in heads.items():
                row = table_row(corpus, condition, truth, feats[kind], p_male)
                if row is None:
                    continue
                tables[title].append(row[0])
                if corpus != "fsdd":
                    pooled[title].append((row[1], truth))
    for title, rows in tables.items():
        print(f"\n{title}: test speakers (bench/splits), one answer per clip as a "
              "verification result gives it; unknown and too-short clips count wrong")
        print("| corpus | audio | clips | overall | female | male | unknown | "
              "single windows right | window majority (windows unknown) |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        right = np.concatenate([r for r, _ in pooled[title]])
        truth = np.concatenate([t for _, t in pooled[title]])
        print(f"pooled (all but fsdd, both conditions): {pct(right.mean())}; female "
              f"{pct(right[truth == 'female'].mean())}, male {pct(right[truth == 'male'].mean())}",
              flush=True)


def table_row(corpus: str, condition: str, truth: np.ndarray, feats: dict[str, np.ndarray],
              p_male: Proba) -> tuple[str, np.ndarray] | None:
    if condition == "wideband" and not len(feats["keep"]) and not len(feats["owner"]):
        return None  # an 8 kHz corpus
    answer = np.full(len(truth), "unknown", dtype=object)
    if len(feats["keep"]):
        answer[feats["keep"]] = labelled(p_male(feats["clips"]))
    right = answer == truth
    cells = [corpus, "8 kHz" if condition == "8k" else "wideband", str(len(truth)),
             pct(right.mean())]
    cells += [pct(right[truth == g].mean()) if (truth == g).any() else "-"
              for g in ("female", "male")]
    cells.append(pct(np.mean(answer == "unknown")))
    if len(feats["owner"]):
        wl = labelled(p_male(feats["windows"]))
        cells.append(f"{pct(np.mean(wl == truth[feats['owner']]))} of {len(wl)}")
        vote = np.full(len(truth), "unknown", dtype=object)
        for i in np.unique(feats["owner"]):
            mine = wl[feats["owner"] == i]
            m, f = int(np.sum(mine == "male")), int(np.sum(mine == "female"))
            vote[i] = "male" if m > f else "female" if f > m else "unknown"
        cells.append(f"{pct(np.mean(vote == truth))} ({pct(np.mean(wl == 'unknown'))})")
    else:
        cells += ["-", "-"]
    return "| " + " | ".join(cells) + " |", right


def probe(data: Path, cache: Path | None, kind: str, corpora: tuple[str, ...],
          write: Path | None = None) -> Proba:
    """Logistic head on ``kind``'s features of the dev speakers of ``corpora`` (wideband
    and 8 kHz copies, clips and windows); C by speaker-grouped 5-fold CV (best mean
    accuracy). ``write``: save it as a ``LinearHead`` the service can load."""
    xs, ys, spk = [], [], []
    for corpus in corpora:
        items = half_items(data, corpus, "dev")
        for condition in CONDITIONS:
            feats = extract(items, (kind,), condition, True, cache,
                            f"gender_dev_{corpus}_{condition}")[kind]
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
    if write is not None:
        licences = sorted({LICENCE_OF[k] for k in corpora})
        to_head(model, {
            "model": "gender",
            "encoder": kind,
            "features": FEATURES[kind],
            "receptive_field_ms": RECEPTIVE_FIELD_MS,
            "unknown_below": FLOOR,
            "C": c,
            "cv_accuracy": round(scores[c], 4),
            "training_data": f"dev speakers (bench/splits) of {', '.join(corpora)}, wideband "
                             f"and 8 kHz, {len(y)} clips and 3072 ms windows",
            "licence": " + ".join(licences),
            "made_by": f"python bench/gender.py --probe {kind} --train-corpora "
                       f"{','.join(corpora)} --write {write.name}",
        }).save(write)
        print(f"  wrote {write} (licence follows the training corpora: {', '.join(licences)})")
    return lambda v: model.predict_proba(v)[:, male]


def committed(kind: str) -> tuple[str, Proba]:
    head = LinearHead.load(MODELS_DIR / COMMITTED[kind])
    male = head.classes.index("male")
    return kind, lambda v: head.probabilities(v)[:, male]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--cache", type=Path, help="keep extracted features here")
    parser.add_argument("--heads", default="ge2e", choices=(*COMMITTED, "none"),
                        help="the committed head to report (none: only the probe)")
    parser.add_argument("--probe", choices=KINDS,
                        help="also train (dev speakers) and report a head on these features")
    parser.add_argument("--train-corpora", default=",".join(TRAIN_CORPORA),
                        help="the probe's training corpora (their licences bind the weights)")
    parser.add_argument("--write", type=Path, help="save the probe as a head here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    import torch

    torch.set_num_threads(1)
    names = [] if args.heads == "none" else [args.heads]
    heads = {f"committed {COMMITTED[k]} ({k})": committed(k) for k in names}
    if args.probe:
        corpora = tuple(args.train_corpora.split(","))
        heads[f"{args.probe} probe (dev speakers of {', '.join(corpora)})"] = (
            args.probe, probe(args.data, args.cache, args.probe, corpora, args.write))
    report(heads, args.data, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
