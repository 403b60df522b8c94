"""Hostile input over real HTTP: lying headers, broken files, odd names. Never a 5xx.

Each case must get a JSON error a client can act on (4xx), the server must keep serving, and
nothing may land on disk (uploads are decoded from memory; refusals store nothing). Property
cases use hypothesis with few examples so the file stays quick.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from analytic.cli.settings import Settings
from analytic.service import VerificationService
from analytic.web.app import create_app
from tests import audio_factory as make
from tests.conftest import MALE_A, free_port, serve_in_thread
from tests.hypothesis_guard import skip_broken_lazy_modules

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60
FEW = hypothesis_settings(max_examples=30, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
PCM16, FLOAT = 1, 3


def wav(payload: bytes, *, rate: int = 16_000, channels: int = 1, bits: int = 16,
        tag: int = PCM16, declared: int | None = None) -> bytes:
    """A RIFF/WAVE file whose header says whatever the test wants, whatever follows it."""
    data_len = len(payload) if declared is None else declared
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate & 0xFFFFFFFF,
                      (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
    riff_len = min(4 + 8 + len(fmt) + 8 + data_len, 0xFFFFFFFF)
    return (b"RIFF" + struct.pack("<I", riff_len) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt))
            + fmt + b"data" + struct.pack("<I", data_len & 0xFFFFFFFF) + payload)


def speech_pcm(seconds: float = 2.0) -> bytes:
    samples, _ = make.load(MALE_A[0])
    return (samples[: int(seconds * 16_000)] * 32767).astype("<i2").tobytes()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def hostile_server(encoder, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("hostile-data")
    settings = Settings(port=free_port(), data_dir=str(data_dir), max_duration_s=20.0,
                        max_request_bytes=2 * 1024 * 1024)
    for url in serve_in_thread(create_app(VerificationService(settings, encoder)), settings):
        yield url, data_dir


@pytest.fixture
def server(hostile_server, private_tmpdir):
    """The live server; after each test it still answers, and nothing new is on disk (its
    own temporary directory included)."""
    url, data_dir = hostile_server
    skip_broken_lazy_modules()
    temp = private_tmpdir
    assert tempfile.gettempdir() == str(temp)  # the server's tempfile calls land here
    before_temp, before_data = set(os.listdir(temp)), snapshot(data_dir)
    yield url
    assert requests.get(url + "/health", timeout=TIMEOUT).status_code == 200
    assert set(os.listdir(temp)) - before_temp == set()
    assert snapshot(data_dir) == before_data


def verify(url: str, first: bytes, name: str = "hostile.wav") -> requests.Response:
    files = {"file1": (name, first), "file2": ("b.flac", MALE_A[1].read_bytes())}
    return requests.post(url + "/speaker_verification", files=files, timeout=TIMEOUT)


def assert_json_4xx(response: requests.Response) -> str:
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]["code"]


def assert_not_5xx(response: requests.Response) -> None:
    assert response.status_code < 500, response.text
    assert response.headers["Content-Type"].startswith("application/json")


# --- headers that lie -------------------------------------------------------------------------

def test_a_huge_declared_length_reads_only_what_was_sent(server):
    """4 GB promised, 2 s sent: libsndfile clamps the frame count to the bytes that are there
    (so no buffer of the declared size is allocated), and the 2 s are analysed as 2 s."""
    response = verify(server, wav(speech_pcm(2.0), declared=0xFFFFFFF0))
    assert_not_5xx(response)
    assert response.status_code == 200
    assert response.json()["files"][0]["duration_s"] == 2.0


def test_a_long_declared_length_at_a_low_rate_is_too_long(server):
    """A header whose real frame count is over the limit is refused from the header alone."""
    payload = np.zeros(21 * 4_000, dtype="<i2").tobytes()  # 21 s at 4 kHz: over 20 s
    assert assert_json_4xx(verify(server, wav(payload, rate=4_000))) == "too_long"


@pytest.mark.parametrize("rate", [0, 1, 3_999, 384_001, 1_000_000, 0xFFFFFFFF])
def test_absurd_sample_rates_are_415(server, rate):
    code = assert_json_4xx(verify(server, wav(speech_pcm(0.5), rate=rate)))
    assert code == "unsupported_audio"


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_float_wavs_are_415(server, value):
    samples = np.full(16_000, value, dtype="<f4")
    samples[::2] = 0.1
    code = assert_json_4xx(verify(server, wav(samples.tobytes(), bits=32, tag=FLOAT)))
    assert code == "unsupported_audio"


def test_32_channels_of_noise_are_refused(server):
    noise = (np.random.default_rng(6).standard_normal((8_000, 32)) * 3000).astype("<i2")
    assert_json_4xx(verify(server, wav(noise.tobytes(), channels=32)))


@FEW
@given(channels=st.integers(0, 65_535), bits=st.sampled_from([0, 1, 7, 8, 12, 16, 24, 32, 64,
                                                              65_535]),
       tag=st.sampled_from([0, PCM16, 2, FLOAT, 6, 7, 0xFFFE, 0xFFFF]),
       rate=st.integers(0, 0xFFFFFFFF), declared=st.integers(0, 0xFFFFFFFF))
def test_any_fmt_header_over_speech_is_never_a_5xx(server, channels, bits, tag, rate, declared):
    assert_not_5xx(verify(server, wav(speech_pcm(0.5), rate=rate, channels=channels, bits=bits,
                                      tag=tag, declared=declared)))


# --- broken and random files ------------------------------------------------------------------

@FEW
@given(cut=st.floats(0.0, 0.95))
def test_truncated_wav_is_never_a_5xx(server, cut):
    whole = wav(speech_pcm(2.0))
    assert_not_5xx(verify(server, whole[: int(len(whole) * cut)]))


@FEW
@given(cut=st.floats(0.0, 0.95))
def test_truncated_flac_is_never_a_5xx(server, cut):
    whole = MALE_A[0].read_bytes()
    assert_not_5xx(verify(server, whole[: int(len(whole) * cut)], name="a.flac"))


@FEW
@given(noise=st.binary(min_size=0, max_size=4096))
def test_random_bytes_after_a_wav_header_are_4xx(server, noise):
    assert_json_4xx(verify(server, wav(noise)))


@FEW
@given(noise=st.binary(min_size=0, max_size=2048))
def test_random_bytes_to_analyze_and_identify_are_4xx(server, noise):
    for path in ("/analyze", "/identify"):
        response = requests.post(server + path, files={"file": ("x.wav", noise)},
                                 timeout=TIMEOUT)
        assert_json_4xx(response)


# --- wrong fields, hostile names and ids ------------------------------------------------------

@pytest.mark.parametrize("fields", [["audio", "file2"], ["file1"], ["File1", "FILE2"], []])
def test_wrong_field_names_are_400_missing_file(server, fields):
    files = {name: ("a.flac", MALE_A[0].read_bytes()) for name in fields}
    response = requests.post(server + "/speaker_verification", files=files,
                             data={"file1": "not a file"}, timeout=TIMEOUT)
    assert assert_json_4xx(response) == "missing_file"


def test_unknown_option_names_are_refused(server):
    response = requests.post(server + "/analyze?modles=gender",
                             files={"file": ("a.flac", MALE_A[0].read_bytes())}, timeout=TIMEOUT)
    assert assert_json_4xx(response) == "bad_field"


NAMES = st.one_of(st.sampled_from(["../../etc/passwd", "..\\..\\boot.ini", "/etc/shadow",
                                   "ünïcødé 🎤.wav", "a\u202egnp.wav", "con", " "]),
                  st.text(min_size=1, max_size=60))


@FEW
@given(name=NAMES)
def test_hostile_file_names_are_never_a_5xx_and_nothing_is_written(server, name):
    assert_json_4xx(verify(server, b"RIFF\0\0\0\0WAVEjunk", name=name))


@FEW
@given(external_id=NAMES)
def test_hostile_enrolment_ids_are_refused_or_unknown(server, external_id):
    enrol = requests.post(server + "/enrollments", data={"external_id": external_id},
                          files={"file": ("x.wav", b"not audio")}, timeout=TIMEOUT)
    assert_json_4xx(enrol)  # a bad id is 400; a good one with no audio is 415
    quoted = requests.utils.quote(external_id, safe="")
    for method in ("get", "delete"):
        response = requests.request(method, f"{server}/enrollments/{quoted}", timeout=TIMEOUT)
        assert_json_4xx(response)  # 404: nobody is enrolled, whatever the id


@pytest.mark.parametrize("ids", [
    ("..%2F..%2Fetc%2Fpasswd", "x", "y"), ("%E2%80%AE", "%F0%9F%8E%A4", "%00"),
    ("a" * 300, "b", "c"),
])
def test_hostile_ids_in_the_sifis_path_are_never_a_5xx(server, ids):
    path = f"/speaker_verification/a.wav/b.wav/{ids[0]}/{ids[1]}/{ids[2]}"
    files = {"file1": ("a", b"junk"), "file2": ("b", b"junk")}
    assert_not_5xx(requests.post(server + path, files=files, timeout=TIMEOUT))


# --- compressed bodies ------------------------------------------------------------------------

def test_a_gzip_bomb_body_is_never_inflated(server):
    """A multipart body sent gzip-encoded, inflating to ~1 GB of zeros: Werkzeug enforces the
    body limit while reading an encoded body, so this is a quick 4xx, never a 1 GB buffer."""
    import gzip
    import io

    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as bomb:
        zeros = b"\0" * (1024 * 1024)
        for _ in range(1024):
            bomb.write(zeros)
    body = buffer.getvalue()
    assert len(body) < 2 * 1024 * 1024  # it fits under the body limit, compressed
    response = requests.post(
        server + "/speaker_verification", data=body, timeout=TIMEOUT,
        headers={"Content-Type": "multipart/form-data; boundary=x", "Content-Encoding": "gzip"},
    )
    assert assert_json_4xx(response) in {"too_large", "missing_file", "bad_request"}
