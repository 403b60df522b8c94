"""Stream sessions: chunks in, the same audio (and so the same decision) out; expiry; limits."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import requests
import soundfile as sf

from analytic.cli.settings import Settings
from analytic.errors import BadRequest, Busy, NotFound, TooLong, UnsupportedAudio
from analytic.household import build_household
from analytic.service import VerificationService
from analytic.streams import FILE, PCM, StreamRegistry
from analytic.web.app import create_app
from tests import audio_factory as make
from tests.conftest import FEMALE_A, MALE_A, MALE_STRANGER, free_port, serve_in_thread

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60
IDLE_S = 30.0


class Clock:
    """A hand-moved clock: expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pcm16(path) -> tuple[bytes, int]:
    samples, rate = sf.read(path, dtype="int16")
    return samples.astype("<i2").tobytes(), rate


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


# --- the registry on its own -----------------------------------------------------------------

def test_pcm_chunks_rebuild_the_file_sample_for_sample():
    streams = StreamRegistry()
    pcm, rate = pcm16(MALE_A[0])
    session = streams.open(rate)
    for chunk in chunks(pcm, 3200):
        streams.append(session.session_id, chunk, PCM)
    name, wav = streams.recording(session.session_id)
    rebuilt, rebuilt_rate = sf.read(io.BytesIO(wav), dtype="float32")
    original, _ = sf.read(MALE_A[0], dtype="float32")
    assert rebuilt_rate == rate and name.startswith("stream:")
    np.testing.assert_array_equal(rebuilt, original)
    info = streams.info(session.session_id)
    assert info.chunks == len(chunks(pcm, 3200))
    assert info.duration_s == pytest.approx(len(original) / rate, abs=1e-3)


def test_flac_chunks_and_the_first_chunk_fixes_the_rate():
    streams = StreamRegistry()
    session = streams.open()
    samples, rate = make.load(MALE_A[0])
    half = len(samples) // 2
    for part in (samples[:half], samples[half:]):
        streams.append(session.session_id, make.encode(part, rate, "FLAC"), FILE)
    rebuilt, _ = sf.read(io.BytesIO(streams.recording(session.session_id)[1]), dtype="float32")
    np.testing.assert_array_equal(rebuilt, samples)
    with pytest.raises(BadRequest, match="8000 Hz"):
        streams.append(session.session_id, make.at_rate(MALE_A[0], 8000), FILE)


def test_idle_sessions_expire_and_activity_keeps_them():
    clock = Clock()
    streams = StreamRegistry(idle_timeout_s=IDLE_S, clock=clock)
    session = streams.open(16000).session_id
    clock.now += IDLE_S - 1
    streams.append(session, b"\x00\x00" * 160, PCM)  # a chunk resets the idle time
    clock.now += IDLE_S - 1
    assert streams.info(session).chunks == 1
    clock.now += IDLE_S
    with pytest.raises(NotFound):
        streams.info(session)
    with pytest.raises(NotFound):
        streams.append(session, b"\x00\x00", PCM)
    assert len(streams) == 0


def test_limits_length_sessions_and_input():
    streams = StreamRegistry(max_s=1.0, max_sessions=2)
    session = streams.open(16000).session_id
    streams.append(session, b"\x00\x00" * 16000, PCM)
    with pytest.raises(TooLong):
        streams.append(session, b"\x00\x00", PCM)
    streams.open()
    with pytest.raises(Busy):
        streams.open()
    streams.close(session)
    other = streams.open().session_id
    with pytest.raises(BadRequest, match="sample rate"):
        streams.append(other, b"\x00\x00", PCM)  # raw PCM with no rate anywhere
    with pytest.raises(BadRequest):
        streams.open(1_000_000)
    with pytest.raises(UnsupportedAudio):
        streams.append(other, b"\x00\x00\x00", PCM, sample_rate=16000)
    with pytest.raises(UnsupportedAudio):
        streams.append(other, b"not audio", FILE)
    with pytest.raises(NotFound):
        streams.close("no-such-session")


# --- over HTTP, with the household ----------------------------------------------------------

@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def stream_url(encoder, tmp_path_factory, clock) -> Iterator[str]:
    settings = Settings(port=free_port(), data_dir=str(tmp_path_factory.mktemp("streams")))
    service = VerificationService(settings, encoder)
    household = build_household(service)
    household.streams = StreamRegistry(IDLE_S, settings.stream_max_s, clock=clock)
    yield from serve_in_thread(create_app(service, household=household), settings)
    household.close()


def open_stream(url: str, **params) -> str:
    response = requests.post(url + "/streams", params=params, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()["session_id"]


def send_pcm(url: str, path, chunk_bytes: int = 8000) -> str:
    pcm, rate = pcm16(path)
    session = open_stream(url)
    for chunk in chunks(pcm, chunk_bytes):
        response = requests.post(f"{url}/streams/{session}", data=chunk, timeout=TIMEOUT,
                                 headers={"Content-Type": f"audio/pcm; rate={rate}"})
        assert response.status_code == 200, response.text
    return session


def test_a_stream_gives_the_same_decision_as_the_whole_file(stream_url):
    enrolled = requests.post(stream_url + "/enrollments", data={"external_id": "m"},
                             files=[("file", p.read_bytes()) for p in MALE_A[:2]],
                             timeout=TIMEOUT)
    assert enrolled.status_code == 200, enrolled.text
    for path in (MALE_A[2], MALE_STRANGER):
        whole = requests.post(stream_url + "/enrollments/m/verify",
                              files={"file": path.read_bytes()}, timeout=TIMEOUT).json()
        session = send_pcm(stream_url, path)
        streamed = requests.post(stream_url + "/enrollments/m/verify",
                                 data={"stream": session}, timeout=TIMEOUT).json()
        assert streamed["decision"] == whole["decision"]
        assert streamed["score"] == pytest.approx(whole["score"], abs=1e-5)
        assert streamed["files"][0]["speech_s"] == whole["files"][0]["speech_s"]
        identified = requests.post(stream_url + "/identify", data={"stream": session},
                                   timeout=TIMEOUT).json()
        assert identified["match"] == ("m" if path == MALE_A[2] else None)
    assert requests.post(stream_url + "/enrollments/m/verify",
                         files={"file": MALE_A[2].read_bytes()},
                         timeout=TIMEOUT).json()["decision"] is True


def test_enrol_from_a_stream_of_wav_chunks(stream_url):
    samples, rate = make.load(FEMALE_A[0])
    session = open_stream(stream_url)
    for part in np.array_split(samples, 4):
        response = requests.post(f"{stream_url}/streams/{session}",
                                 data=make.encode(part, rate, "WAV"),
                                 headers={"Content-Type": "audio/wav"}, timeout=TIMEOUT)
        assert response.status_code == 200
    status = requests.get(f"{stream_url}/streams/{session}", timeout=TIMEOUT).json()
    assert status["chunks"] == 4 and status["sample_rate"] == rate
    enrolled = requests.post(stream_url + "/enrollments",
                             data={"external_id": "f", "stream": session},
                             files=[("file", FEMALE_A[1].read_bytes())], timeout=TIMEOUT)
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["samples_added"] == 2
    assert requests.delete(f"{stream_url}/streams/{session}", timeout=TIMEOUT).status_code == 204
    assert requests.get(f"{stream_url}/streams/{session}", timeout=TIMEOUT).status_code == 404


def test_an_expired_stream_is_404(stream_url, clock):
    session = send_pcm(stream_url, MALE_A[2])
    clock.now += IDLE_S + 1
    for response in (
        requests.post(stream_url + "/identify", data={"stream": session}, timeout=TIMEOUT),
        requests.post(f"{stream_url}/streams/{session}", data=b"\x00\x00",
                      headers={"Content-Type": "audio/pcm; rate=16000"}, timeout=TIMEOUT),
        requests.get(f"{stream_url}/streams/{session}", timeout=TIMEOUT),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_stream_refusals_over_http(stream_url):
    session = open_stream(stream_url)
    bad_type = requests.post(f"{stream_url}/streams/{session}", data=b"x",
                             headers={"Content-Type": "text/plain"}, timeout=TIMEOUT)
    assert (bad_type.status_code, bad_type.json()["error"]["code"]) == (415, "unsupported_audio")
    no_rate = requests.post(f"{stream_url}/streams/{session}", data=b"\x00\x00",
                            headers={"Content-Type": "audio/pcm"}, timeout=TIMEOUT)
    assert (no_rate.status_code, no_rate.json()["error"]["code"]) == (400, "bad_field")
    empty = requests.post(stream_url + "/identify", data={"stream": session}, timeout=TIMEOUT)
    assert (empty.status_code, empty.json()["error"]["code"]) == (422, "no_speech")
    silent = open_stream(stream_url, sample_rate=16000)
    requests.post(f"{stream_url}/streams/{silent}", data=b"\x00\x00" * 32000,
                  headers={"Content-Type": "application/octet-stream"}, timeout=TIMEOUT)
    quiet = requests.post(stream_url + "/identify", data={"stream": silent}, timeout=TIMEOUT)
    assert (quiet.status_code, quiet.json()["error"]["code"]) == (422, "no_speech")
