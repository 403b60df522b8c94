"""Encoders: the real GE2E weights, and SpeechBrain's ECAPA loading path, both offline."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from analytic.audio import AudioLimits, decode
from analytic.encoders import load_encoder
from analytic.settings import Settings
from tests.conftest import FEMALE_A, MALE_A
from tests.tiny_ecapa import build_tiny_ecapa


def speech(path):
    return decode(path.read_bytes(), path.name, AudioLimits()).speech


def test_ge2e_gives_unit_vectors_that_separate_speakers(ge2e):
    male = [ge2e.embed(speech(p)) for p in MALE_A[:2]]
    female = ge2e.embed(speech(FEMALE_A[0]))
    assert male[0].shape == (256,)
    assert np.linalg.norm(male[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(male[0] @ male[1]) > float(male[0] @ female) + 0.2


def test_ge2e_is_safe_to_share_between_threads(ge2e):
    clip = speech(MALE_A[0])
    expected = ge2e.embed(clip)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(ge2e.embed(clip)))
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
