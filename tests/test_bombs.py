"""Decompression bombs (issue 14, hole 5): what a small file claims or holds costs at most what
the duration limit allows, on every path that decodes audio."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import requests
import soundfile as sf

from analytic.audio import AudioLimits, decode
from analytic.errors import AnalyticError
from analytic.streams import FILE, StreamRegistry

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60
RATE, CHANNELS, SECONDS = 384_000, 8, 10


def flac_bomb() -> bytes:
    """Ten seconds of eight-channel 384 kHz silence: about 30 kB of FLAC, 120 MB of samples."""
    buffer = io.BytesIO()
    with sf.SoundFile(buffer, "w", samplerate=RATE, channels=CHANNELS, format="FLAC",
                      subtype="PCM_16") as sound:
        second = np.zeros((RATE, CHANNELS), np.int16)
        for _ in range(SECONDS):
            sound.write(second)
    return buffer.getvalue()


def lying_flac(total_frames: int) -> bytes:
    """One second of 16 kHz audio whose STREAMINFO claims ``total_frames`` frames."""
    buffer = io.BytesIO()
    sf.write(buffer, np.full(16_000, 0.01, np.float32), 16_000, format="FLAC")
    data = bytearray(buffer.getvalue())
    # fLaC, a 4-byte block header, then 10 bytes of block/frame sizes: rate (20 bits),
    # channels (3), bits (5) and the total sample count (36) share the next 8 bytes.
    fields = int.from_bytes(data[18:26], "big")
    fields = (fields & ~((1 << 36) - 1)) | total_frames
    data[18:26] = fields.to_bytes(8, "big")
    return bytes(data)


def peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
    except AnalyticError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = flac_bomb()
    assert len(data) < 100_000
    return data


def test_a_flac_bomb_costs_what_the_duration_limit_implies_not_its_channels(bomb):
    """Decoded a block at a time and mixed to mono as it comes: the limit's worth of mono
    float32 samples, not every channel of it at once (which was 8x that, and more)."""
    limit_bytes = int(SECONDS * 1.05 * RATE) * 4
    peak = peak_bytes(lambda: decode(bomb, "bomb.flac", AudioLimits(max_duration_s=SECONDS * 1.05)))
    assert peak < 3 * limit_bytes, f"{peak / 1e6:.0f} MB"


def test_a_stream_chunk_is_bounded_by_what_the_session_may_still_hold(bomb):
    registry = StreamRegistry(max_s=2.0)
    session = registry.open().session_id
    peak = peak_bytes(lambda: registry.append(session, bomb, FILE))
    assert peak < 3 * (2 * RATE * 4), f"{peak / 1e6:.0f} MB"
    assert registry.info(session).duration_s == 0.0  # refused whole


def test_a_chunk_claiming_ten_billion_frames_is_refused_not_a_500(base_url):
    opened = requests.post(base_url + "/streams", timeout=TIMEOUT).json()
    response = requests.post(f"{base_url}/streams/{opened['session_id']}",
                             data=lying_flac(10**10), headers={"Content-Type": "audio/flac"},
                             timeout=TIMEOUT)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_long"
