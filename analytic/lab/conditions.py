"""Reproducible degradations of 16 kHz speech: noise, babble, reverberation, telephone, cuts.

Why a module of its own: robustness figures (``analytic.lab.robustness``, ``evaluate
--conditions``) and training augmentation (the gender head's 8 kHz copies,
``analytic.lab.train``) must degrade audio the same way, and every degradation must be
repeatable: each random choice comes from a ``numpy.random.Generator`` the caller seeds. Only
numpy, scipy and soxr are imported here; ``pyroomacoustics`` is imported inside
``simulated_rir`` alone, so the service never loads it.

Every function takes and returns float32 mono samples at ``RATE`` (16 kHz), the rate the
encoders read, so a degraded clip goes through the same decoding path as a real one.

SNR here is the active speech level over the noise's mean power: speech power is measured on
the 20 ms frames within ``ACTIVE_RANGE_DB`` of the clip's loud frames (ITU-T P.56 in spirit),
so the pauses of a clip do not make its noise quieter than asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from analytic.lab.condition_names import parse_condition

RATE = 16_000
TELEPHONE_RATE = 8_000
TELEPHONE_BAND_HZ = (300.0, 3400.0)
BANDPASS_ORDER = 8  # Butterworth, as second-order sections: ~-48 dB an octave outside the band
MU = 255  # G.711 mu-law
NOISE_PARTS = ("dev", "test")  # first half of a noise file in time, second half
EPS = 1e-12
LEVEL_FRAME = 320  # 20 ms
ACTIVE_RANGE_DB = 30.0
ONSET_RANGE_DB = 25.0  # voice onset: the first 10 ms frame within this of the loud frames
RIR_PRE_MS = 1.0  # samples kept before an impulse response's direct-path peak
# The simulated room (``simulated_rir``): a living room, source and microphone 2.5 m apart.
ROOM_M = (6.0, 5.0, 2.7)
SOURCE_M = (1.5, 3.5, 1.5)
MIC_M = (3.8, 2.5, 1.0)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    import soxr

    if rate_in == rate_out:
        return _f32(x)
    return _f32(soxr.resample(_f32(x), rate_in, rate_out, quality="HQ"))


def read_audio(path: Path) -> np.ndarray:
    """A sound file as mono float32 at ``RATE``."""
    import soundfile as sf

    samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return _resample(samples.mean(axis=1), rate, RATE)


def power(x: np.ndarray) -> float:
    """Mean square of the samples (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x**2)) if len(x) else 0.0


# ---------------------------------------------------------------------------------------------
# band limits


def narrowband(x: np.ndarray, rate: int = TELEPHONE_RATE) -> np.ndarray:
    """What a ``rate`` recording keeps of 16 kHz speech, brought back to 16 kHz (soxr HQ):
    the service decodes 8 kHz files the same way, so this is "the same clip sent at 8 kHz"."""
    return _resample(_resample(x, RATE, rate), rate, RATE)[: len(x)]


def bandpass(x: np.ndarray, rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Zero-phase Butterworth band-pass (order ``BANDPASS_ORDER``, forward and backward)."""
    sos = signal.butter(BANDPASS_ORDER // 2, [low_hz, high_hz], btype="bandpass", fs=rate,
                        output="sos")
    return _f32(signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64)))


def mu_law(x: np.ndarray, mu: int = MU) -> np.ndarray:
    """8-bit mu-law encode and decode (G.711's companding and its quantisation noise)."""
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    companded = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    codes = np.round((companded + 1) / 2 * mu)  # 256 levels
    y = 2 * codes / mu - 1
    return _f32(np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu)


def telephone(x: np.ndarray) -> np.ndarray:
    """A landline channel: to 8 kHz, band-pass 300-3400 Hz, mu-law, back to 16 kHz.

    The level is brought to -26 dBFS before the codec (where a telephone line runs) so the
    mu-law noise is that of a real call, then restored.
    """
    band = bandpass(_resample(x, RATE, TELEPHONE_RATE), TELEPHONE_RATE, *TELEPHONE_BAND_HZ)
    gain = 10 ** (-26 / 20) / (np.sqrt(power(band)) + EPS)
    coded = mu_law(band * gain) / gain
    return _resample(coded, TELEPHONE_RATE, RATE)[: len(x)]



# ---------------------------------------------------------------------------------------------
# noise


def _active_frames(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 20 ms frames' mean squares, and which are within ``ACTIVE_RANGE_DB`` of the clip's
    95th-percentile frame (the speech, by energy, with pauses and silence left out)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x) // LEVEL_FRAME
    frames = np.mean(x[: n * LEVEL_FRAME].reshape(n, LEVEL_FRAME) ** 2, axis=1)
    if n == 0:
        return frames, frames > 0
    level = 10 * np.log10(frames + EPS)
    return frames, level > np.percentile(level, 95) - ACTIVE_RANGE_DB


def speech_power(x: np.ndarray) -> float:
    """Active speech power: the mean square of the active 20 ms frames (``_active_frames``)."""
    frames, active = _active_frames(x)
    return float(np.mean(frames[active])) if len(frames) else power(x)


def active_speech_s(x: np.ndarray) -> float:
    """Seconds of active 20 ms frames: an energy reference for how much speech a clean
    recording holds (``bench/speech_detector.py`` compares the speech detector's with it)."""
    return float(np.sum(_active_frames(x)[1])) * LEVEL_FRAME / RATE


def noise_part(noise: np.ndarray, part: str) -> np.ndarray:
    """The first half in time (``dev``) or the second (``test``) of a noise recording, so
    what a choice is tuned on is never what it is reported on."""
    if part not in NOISE_PARTS:
        raise ValueError(f"part must be one of {NOISE_PARTS}, not {part!r}")
    half = len(noise) // 2
    return noise[:half] if part == "dev" else noise[half:]


def load_noise(path: Path, part: str) -> np.ndarray:
    """A noise file (``../shared/data/noise/boiler.flac``, ...) at 16 kHz, one half of it."""
    return noise_part(read_audio(path), part)


def excerpt(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of ``noise`` from a random offset, looped if it is shorter."""
    if len(noise) == 0:
        raise ValueError("empty noise")
    start = int(rng.integers(len(noise)))
    reps = -(-(start + length) // len(noise))
    return np.tile(noise, reps)[start : start + length]


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float,
              rng: np.random.Generator) -> np.ndarray:
    """``speech`` plus an excerpt of ``noise`` scaled to ``snr_db`` (see the module doc)."""
    piece = np.asarray(excerpt(noise, len(speech), rng), dtype=np.float64)
    gain = np.sqrt(speech_power(speech) / (power(piece) + EPS) / 10 ** (snr_db / 10))
    return _f32(np.asarray(speech, dtype=np.float64) + gain * piece)


def white_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    return _f32(rng.standard_normal(length))


def babble(others: Sequence[np.ndarray], length: int, rng: np.random.Generator,
           talkers: int = 4) -> np.ndarray:
    """A babble of ``talkers`` clips drawn from ``others`` (other speakers' speech, never the
    trial's), each at the same active speech level and from a random offset, summed."""
    if len(others) < talkers:
        raise ValueError(f"babble needs at least {talkers} clips, got {len(others)}")
    chosen = rng.choice(len(others), size=talkers, replace=False)
    mix = np.zeros(length, dtype=np.float64)
    for index in chosen:
        clip = np.asarray(others[int(index)], dtype=np.float64)
        mix += excerpt(clip, length, rng) / np.sqrt(speech_power(clip) + EPS)
    return _f32(mix)


# ---------------------------------------------------------------------------------------------
# reverberation


def prepare_rir(rir: np.ndarray) -> np.ndarray:
    """An impulse response cut to start ``RIR_PRE_MS`` before its direct-path peak (so the
    reverberant clip is not delayed) and scaled to unit energy."""
    rir = np.asarray(rir, dtype=np.float64)
    start = max(int(np.argmax(np.abs(rir))) - int(RIR_PRE_MS * RATE / 1000), 0)
    rir = rir[start:]
    return rir / (np.sqrt(np.sum(rir**2)) + EPS)


def load_rir(path: Path) -> np.ndarray:
    """A measured impulse response (``../shared/data/noise/rir_clap.flac``) at 16 kHz."""
    return prepare_rir(read_audio(path))


def reverberate(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``speech`` convolved with ``rir`` (cut to the clip's length), at the clip's own level."""
    x = np.asarray(speech, dtype=np.float64)
    wet = signal.fftconvolve(x, prepare_rir(rir))[: len(x)]
    return _f32(wet * np.sqrt(power(x) / (power(wet) + EPS)))


def simulated_rir(rt60_s: float, room_m: Sequence[float] = ROOM_M,
                  source_m: Sequence[float] = SOURCE_M, mic_m: Sequence[float] = MIC_M
                  ) -> np.ndarray:
    """A shoebox room's impulse response by the image-source method (pyroomacoustics):
    wall absorption and reflection order from Sabine's formula for ``rt60_s``. Defaults: a
    6 x 5 x 2.7 m room, talker at 1.5 m height, microphone 2.5 m away at 1.0 m."""
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(rt60_s, list(room_m))
    room = pra.ShoeBox(list(room_m), fs=RATE, materials=pra.Material(absorption),
                       max_order=max_order)
    room.add_source(list(source_m))
    room.add_microphone(list(mic_m))
    room.compute_rir()
    return prepare_rir(np.asarray(room.rir[0][0]))


# ---------------------------------------------------------------------------------------------
# cuts


def speech_only(x: np.ndarray) -> np.ndarray:
    """The clip's speech as the service keeps it (its speech detector, pauses dropped)."""
    from analytic.audio import trim_to_speech

    return trim_to_speech(_f32(x))


def cut_speech(x: np.ndarray, seconds: float) -> np.ndarray:
    """The first ``seconds`` of the clip's speech (the detector's output), as if the talker
    had said only that much."""
    return speech_only(x)[: round(seconds * RATE)]


def voice_onset(x: np.ndarray) -> int:
    """The first 10 ms frame within ``ONSET_RANGE_DB`` of the clip's loud frames."""
    hop = RATE // 100
    n = len(x) // hop
    if n == 0:
        return 0
    frames = np.mean(np.asarray(x[: n * hop], np.float64).reshape(n, hop) ** 2, axis=1)
    level = 10 * np.log10(frames + EPS)
    return int(np.argmax(level > np.percentile(level, 95) - ONSET_RANGE_DB)) * hop


def cut_from_onset(x: np.ndarray, seconds: float) -> np.ndarray:
    """``seconds`` of audio from the voice onset, pauses included: a spoken command."""
    start = voice_onset(x)
    return _f32(x[start : start + round(seconds * RATE)])


# ---------------------------------------------------------------------------------------------
# named conditions

Degrade = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Condition:
    """A named, seeded degradation: ``apply(samples, rng)``. ``rate`` is the sample rate the
    degraded recording is sent at (8000 for a telephone call): the service then hears it as a
    narrowband file, as it would hear a real call."""

    name: str
    apply: Degrade
    rate: int = RATE


def rng_for(seed: int, condition: str, key: str) -> np.random.Generator:
    """The generator for one clip under one condition: the same whatever order clips come in."""
    import hashlib

    digest = hashlib.sha256(f"{seed}/{condition}/{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def named_condition(name: str, noise_dir: Path, part: str,
                    babble_clips: Callable[[], Sequence[np.ndarray]]) -> Condition:
    """The condition ``name`` (see ``CONDITION_HELP``). Noise and rooms are read only when
    asked for; ``babble_clips`` is called only for a babble condition."""
    word, number = parse_condition(name)
    value = 0.0 if number is None else number
    if word == "clean":
        return Condition(name, lambda x, rng: _f32(x))
    if word in ("boiler", "washer"):
        file = "boiler.flac" if word == "boiler" else "washing_machine.flac"
        noise = load_noise(noise_dir / file, part)
        return Condition(name, lambda x, rng: add_noise(x, noise, value, rng))
    if word == "white":
        return Condition(name, lambda x, rng: add_noise(x, white_noise(len(x), rng), value, rng))
    if word == "babble":
        clips = list(babble_clips())
        if len(clips) < 4:
            raise ValueError(f"babble needs at least 4 clips of other speakers, got {len(clips)}")
        return Condition(name, lambda x, rng: add_noise(x, babble(clips, len(x), rng), value,
                                                        rng))
    if word == "rir":
        clap = load_rir(noise_dir / "rir_clap.flac")
        return Condition(name, lambda x, rng: reverberate(x, clap))
    if word == "room":
        room = simulated_rir(value)
        return Condition(name, lambda x, rng: reverberate(x, room))
    if word == "telephone":
        return Condition(name, lambda x, rng: telephone(x), TELEPHONE_RATE)
    if word == "8khz":
        return Condition(name, lambda x, rng: narrowband(x), TELEPHONE_RATE)
    if word == "speech":
        return Condition(name, lambda x, rng: cut_speech(x, value))
    return Condition(name, lambda x, rng: cut_from_onset(x, value))  # onset


def named_conditions(names: str, noise_dir: Path, part: str,
                     babble_clips: Callable[[], Sequence[np.ndarray]]) -> list[Condition]:
    """A comma-separated list of names; every name is checked before any audio is read."""
    listed = [n.strip() for n in names.split(",") if n.strip()]
    if not listed:
        raise ValueError("no condition named")
    for name in listed:
        parse_condition(name)
    return [named_condition(n, noise_dir, part, babble_clips) for n in listed]
