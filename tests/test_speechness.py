"""Noise is not a voice (issue 14, hole 8): white noise, a tone and a square-wave buzzer are
refused as ``no_speech`` on every door (real HTTP through waitress, the real bus), where they
used to verify as "Same Speaker" (0.998) and enrol as members. Real speech still passes."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
import soundfile as sf
from scipy.signal import square

from analytic.audio import AudioLimits, decode
from analytic.service import VerificationService
from tests.conftest import MALE_A
from tests.test_bus import ERROR, WAIT, body, bus_settings, on, probe, request, running

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

RATE = 16_000
TIMEOUT = 60


def clip(kind: str, seconds: float = 4.0, seed: int = 14) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    if kind == "white":
        x = np.random.default_rng(seed).normal(0, 0.1, len(t))
    elif kind == "tone":
        x = 0.3 * np.sin(2 * np.pi * 440 * t)
    else:
        x = 0.3 * square(2 * np.pi * 440 * t)
    buffer = io.BytesIO()
    sf.write(buffer, x.astype(np.float32), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


KINDS = ["white", "tone", "square"]


@pytest.mark.parametrize("kind", KINDS)
def test_noise_is_refused_by_the_intake(kind):
    with pytest.raises(Exception) as refused:
        decode(clip(kind), f"{kind}.wav", AudioLimits())
    assert getattr(refused.value, "code", None) == "no_speech"


def test_real_speech_passes_the_intake():
    assert decode(MALE_A[0].read_bytes(), "speech.flac", AudioLimits()).speech_s > 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_noise_is_no_speech_over_http_verify_and_enrol(base_url, kind):
    pair = {"file1": (f"{kind}-1.wav", clip(kind, seed=1)),
            "file2": (f"{kind}-2.wav", clip(kind, seed=2))}
    response = requests.post(base_url + "/speaker_verification", files=pair, timeout=TIMEOUT)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "no_speech")
    response = requests.post(base_url + "/enrollments", data={"external_id": f"noise-{kind}"},
                             files={"file": (f"{kind}.wav", clip(kind))}, timeout=TIMEOUT)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "no_speech")


def test_noise_is_no_speech_on_the_bus(mqtt_broker, encoder):
    service = VerificationService(bus_settings(mqtt_broker), encoder)
    with running(service), probe(mqtt_broker.port) as bus:
        for kind in KINDS:
            bus.publish("voicegate/verification/request",
                        request((f"{kind}-1.wav", clip(kind, seed=1)),
                                (f"{kind}-2.wav", clip(kind, seed=2)), request_id=kind))
        errors = [body(bus.wait_for(on(ERROR, kind), WAIT)[0]) for kind in KINDS]
    assert [e["code"] for e in errors] == ["no_speech"] * 3, json.dumps(errors)
