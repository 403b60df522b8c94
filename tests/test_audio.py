"""Audio intake on real speech: formats, rates, trimming, refusals."""

from __future__ import annotations

import pytest

from analytic.audio import AudioLimits, decode
from analytic.errors import NoSpeech, TooLong, TooShort, UnsupportedAudio
from tests import audio_factory as make
from tests.conftest import MALE_A

LIMITS = AudioLimits(min_speech_s=1.0, max_duration_s=60.0)


def test_flac_at_16k_keeps_most_of_read_speech():
    clip = decode(MALE_A[0].read_bytes(), "a.flac", LIMITS)
    assert clip.sample_rate == 16_000
    assert clip.duration_s == pytest.approx(4.49, abs=0.01)
    assert 3.0 < clip.speech_s <= clip.duration_s


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_any_rate_is_resampled_and_reported(rate):
    clip = decode(make.at_rate(MALE_A[0], rate), "a.wav", LIMITS)
    assert clip.sample_rate == rate
    assert clip.speech.dtype.name == "float32"
    assert clip.speech_s == pytest.approx(len(clip.speech) / 16_000)
    assert clip.speech_s > 3.0


def test_stereo_is_down_mixed():
    clip = decode(make.stereo(MALE_A[0]), "stereo.wav", LIMITS)
    assert clip.speech.ndim == 1
    assert clip.speech_s > 3.0


def test_leading_and_trailing_silence_are_trimmed():
    plain = decode(MALE_A[0].read_bytes(), "a.flac", LIMITS)
    padded = decode(make.padded(MALE_A[0], 3.0), "padded.wav", LIMITS)
    assert padded.duration_s == pytest.approx(plain.duration_s + 6.0, abs=0.01)
    assert padded.speech_s == pytest.approx(plain.speech_s, abs=0.5)


def test_digital_silence_is_no_speech():
    with pytest.raises(NoSpeech):
        decode(make.silence(3.0), "silence.wav", LIMITS)


def test_empty_file_is_no_speech():
    with pytest.raises(NoSpeech):
        decode(b"", "empty.wav", LIMITS)


def test_half_a_second_of_speech_is_too_short():
    with pytest.raises(TooShort) as refused:
        decode(make.excerpt(MALE_A[0], 0.5), "short.wav", LIMITS)
    assert "at least 1.00 s" in refused.value.message


def test_recording_longer_than_the_limit_is_refused_before_decoding():
    with pytest.raises(TooLong):
        decode(MALE_A[0].read_bytes(), "a.flac", AudioLimits(max_duration_s=2.0))


@pytest.mark.parametrize(
    "data",
    [b"this is a text file, not audio\n" * 20, b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 4],
)
def test_not_audio_is_unsupported(data):
    with pytest.raises(UnsupportedAudio):
        decode(data, "x.wav", LIMITS)
