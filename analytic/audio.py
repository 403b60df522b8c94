"""Audio intake: bytes in, trimmed 16 kHz mono speech out, all in memory.

Every refusal a client can cause is raised here as an ``AnalyticError`` so both doors report
the same code. Nothing is ever written to disk: decoding reads from a ``BytesIO``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr
from scipy.ndimage import binary_dilation

with warnings.catch_warnings():
    # webrtcvad 2.0.10 imports the deprecated pkg_resources (hence setuptools<81).
    warnings.simplefilter("ignore", UserWarning)
    import webrtcvad

from analytic.errors import NoSpeech, TooLong, TooShort, UnsupportedAudio
from analytic.speechness import looks_like_speech, speech_features

TARGET_RATE = 16_000
# Sample rates soundfile may report that no microphone produces; treating them as audio would
# only let a lying header allocate absurd buffers or divide by zero.
MIN_SOURCE_RATE = 4_000
MAX_SOURCE_RATE = 384_000
MAX_CHANNELS = 8  # more is no microphone a household device has; it only multiplies the cost
BLOCK_FRAMES = 65_536  # frames decoded at a time (a 16 kHz block is about 4 s)

# Voice activity detection follows the preprocessing the GE2E weights were trained with
# (Resemblyzer's ``preprocess_wav``): level brought up to -30 dBFS, webrtcvad in its most
# aggressive mode on 30 ms frames, a moving average over 8 frames, and pauses of up to 6 frames
# kept. Our own trimming (mode 2, no smoothing) doubled GE2E's EER on LibriSpeech test-other.
VAD_FRAME_MS = 30
VAD_MODE = 3
VAD_SMOOTHING_FRAMES = 8
VAD_KEEP_PAUSE_FRAMES = 6
TARGET_DBFS = -30.0
# Frames quieter than this (relative to full scale) are silence whatever the VAD says; it stops
# dither and hum from counting as speech once the clip has been brought up in level.
SILENCE_RMS = 10 ** (-60 / 20)
LOW_CUT_ORDER = 4  # band_limit's low cut: Butterworth, forward and backward


@dataclass(frozen=True)
class Clip:
    """One decoded recording, reduced to the speech an encoder should hear."""

    name: str
    speech: np.ndarray  # float32, mono, TARGET_RATE, pauses trimmed
    sample_rate: int  # the rate the file was recorded at
    duration_s: float  # length of the whole file
    speech_s: float  # length of ``speech``
    # The whole recording at TARGET_RATE, untrimmed: what CAM++ hears (trimming cost it EER
    # on the development halves of every corpus, see analytic/encoders/campplus.py).
    audio: np.ndarray | None = None


@dataclass(frozen=True)
class AudioLimits:
    """Bounds a recording must respect; set from ``Settings``."""

    min_speech_s: float = 1.0
    max_duration_s: float = 60.0


def decode(data: bytes, name: str, limits: AudioLimits) -> Clip:
    """Decode a whole file, refuse what cannot be verified, and keep only its speech."""
    samples, rate = read_mono(data, name, limits.max_duration_s)
    duration_s = len(samples) / rate
    audio = resample(samples, rate)
    speech = trim_to_speech(audio)
    speech_s = len(speech) / TARGET_RATE
    if speech_s == 0.0:
        raise NoSpeech(f"{name}: no speech found in {duration_s:.2f} s of audio")
    if not looks_like_speech(speech_features(speech)):
        # Noise, a tone or a buzzer the voice activity detector let through whole.
        raise NoSpeech(f"{name}: no speech found: the sound is noise or a steady tone")
    if speech_s < limits.min_speech_s:
        raise TooShort(
            f"{name}: {speech_s:.2f} s of speech, at least {limits.min_speech_s:.2f} s needed"
        )
    return Clip(name, speech, rate, duration_s, speech_s, audio)


def read_mono(data: bytes, name: str, max_duration_s: float) -> tuple[np.ndarray, int]:
    """Decode with libsndfile, checking the header before reading the samples it promises."""
    if not data:
        raise NoSpeech(f"{name}: the file is empty")
    samples, rate = read_bounded(data, name, max_duration_s)
    if samples.size == 0:
        raise NoSpeech(f"{name}: the file holds no samples")
    return samples, rate


def read_bounded(data: bytes, name: str, max_duration_s: float) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate, never costing more than ``max_duration_s`` allows.

    A compressed file's size says nothing about what it decodes to: a 200 kB FLAC can claim and
    hold an hour of 8-channel audio. So the header's rate, channels and length are checked
    first, and the samples are then read ``BLOCK_FRAMES`` at a time (mixed to mono as they
    come) up to a hard cap of ``max_duration_s`` worth of frames: a header that lies about its
    length still allocates at most the cap, and decoding stops there (``TooLong``).
    """
    try:
        with sf.SoundFile(io.BytesIO(data)) as sound:
            rate, channels, frames = sound.samplerate, sound.channels, sound.frames
            if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
                raise UnsupportedAudio(f"{name}: sample rate {rate} Hz is not supported")
            if not 1 <= channels <= MAX_CHANNELS:
                raise UnsupportedAudio(f"{name}: {channels} channels, at most {MAX_CHANNELS}")
            if frames / rate > max_duration_s:
                raise TooLong(
                    f"{name}: {frames / rate:.1f} s long, at most {max_duration_s:.0f} s accepted"
                )
            cap = min(frames, int(max_duration_s * rate))
            samples = np.empty(cap, dtype=np.float32)
            filled = 0
            while filled < cap:
                block = sound.read(min(BLOCK_FRAMES, cap - filled), dtype="float32",
                                   always_2d=True)
                if not len(block):
                    break
                samples[filled:filled + len(block)] = block.mean(axis=1)
                filled += len(block)
            if filled == cap and len(sound.read(1, dtype="float32")):  # more than it declared
                raise TooLong(f"{name}: longer than {max_duration_s:.0f} s")
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
        raise UnsupportedAudio(f"{name}: not a readable audio file") from exc
    samples = samples[:filled]
    if not np.isfinite(samples).all():
        raise UnsupportedAudio(f"{name}: the audio holds NaN or infinite samples")
    return samples, rate


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """Bring any rate to the encoders' 16 kHz (soxr, high quality)."""
    if rate == TARGET_RATE:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, rate, TARGET_RATE, quality="HQ").astype(np.float32)


def band_limit(speech: np.ndarray, rate: int, low_hz: float = 0.0) -> np.ndarray:
    """16 kHz speech reduced to what a ``rate`` recording holds (nothing above rate / 2), and
    with ``low_hz`` nothing below that either.

    A voiceprint of wideband speech and one of 8 kHz telephone speech differ by the missing
    upper band alone; comparing them as they are rejects the same person (16-26% false rejects
    on LibriSpeech). Cutting the wider one down first makes the pair comparable. A telephone
    line also cuts below 300 Hz; cutting the wideband side there too (``low_hz``) was tried
    and not shipped (docs/robustness.md, ``evaluate --mixed-low-cut``).
    """
    if rate < TARGET_RATE:
        speech = resample(soxr.resample(speech, TARGET_RATE, rate, quality="HQ"), rate)
    if low_hz > 0:
        from scipy import signal

        sos = signal.butter(LOW_CUT_ORDER, low_hz, btype="highpass", fs=TARGET_RATE,
                            output="sos")
        speech = signal.sosfiltfilt(sos, speech.astype(np.float64)).astype(np.float32)
    return speech


def trim_to_speech(samples: np.ndarray) -> np.ndarray:
    """Level-normalised speech: voiced frames and short pauses, long silences dropped."""
    frame_len = TARGET_RATE * VAD_FRAME_MS // 1000
    n_frames = len(samples) // frame_len
    if n_frames == 0:
        return samples[:0]
    framed = samples[: n_frames * frame_len]
    loud = frame_rms(framed, frame_len) > SILENCE_RMS
    if not loud.any():
        return samples[:0]
    framed = raise_level(framed, TARGET_DBFS)
    pcm = (np.clip(framed, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    vad = webrtcvad.Vad(VAD_MODE)
    step = frame_len * 2
    flags = np.array(
        [vad.is_speech(pcm[i : i + step], TARGET_RATE) for i in range(0, len(pcm), step)],
        dtype=float,
    )
    width = VAD_SMOOTHING_FRAMES
    smoothed = np.convolve(np.pad(flags, ((width - 1) // 2, width // 2)), np.ones(width) / width,
                           mode="valid")
    voiced = np.round(smoothed).astype(bool)
    keep = binary_dilation(voiced, np.ones(VAD_KEEP_PAUSE_FRAMES + 1, dtype=bool))
    return framed[np.repeat(keep, frame_len)]


def frame_rms(samples: np.ndarray, frame_len: int) -> np.ndarray:
    framed = samples.reshape(-1, frame_len).astype(np.float64)
    return np.sqrt(np.mean(framed**2, axis=1))


def raise_level(samples: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Bring quiet recordings up to ``target_dbfs``; loud ones are left alone."""
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    if rms == 0.0:
        return samples
    gain = 10 ** ((target_dbfs - 20 * np.log10(rms)) / 20)
    return (samples * gain).astype(np.float32) if gain > 1 else samples
