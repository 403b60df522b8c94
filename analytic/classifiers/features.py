"""Frame features on a fixed 10 ms grid, and the window statistics the classifiers read.

Why a fixed grid: frame ``i`` always spans samples ``[i * HOP, i * HOP + FRAME)`` of the
recording, whatever piece of it is being processed. A whole file and a stream cut into any
chunks therefore compute the same frames (to float rounding: FFTs and matrix products batch
differently), and a decision over a window only depends on the frames that lie entirely inside
it (``window_rows``). That is what makes the file and stream APIs agree, and what lets a stream
keep only a receptive field of history.

Every statistic here is level-invariant (ratios, dB differences, pitch in semitones) or is
computed after bringing the window's speech to a fixed level, because recording gain says
nothing about the speaker: RAVDESS has takes 25 dB quieter than others, EmoDB is
peak-normalised per file.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

RATE = 16_000
HOP = 160  # 10 ms: GE2E's mel step
FRAME = 640  # 40 ms: long enough for YIN down to FMIN
MEL_FFT = 400  # 25 ms: GE2E's mel window
MEL_OFFSET = (FRAME - MEL_FFT) // 2  # the mel window sits in the middle of the frame
MEL_BANDS = 40
YIN_WINDOW = FRAME // 2
FMIN, FMAX = 60.0, 600.0
YIN_THRESHOLD = 0.15
# A frame is voiced when YIN finds a clear period (cumulative mean normalised difference below
# this) and it is not lost in the noise floor; unvoiced consonants are covered by ``active``.
VOICED_APERIODICITY = 0.3
FLOOR_DB = -90.0  # absolute: digital silence and 16-bit dither; every other threshold is relative
ACTIVE_RANGE_DB = 35.0  # frames within this of the window's loud frames count as speech
N_MFCC = 13
BLOCK_FRAMES = 1024  # frames computed at once (10 s of audio)
EPS = 1e-10
# Spectral logs and ratios floor at this instead, far below any real band power, so that a
# quiet recording gives the same MFCCs and ratios as a loud one (only silence hits it).
TINY = 1e-20

_HANN = np.hanning(MEL_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as librosa's STFT
_MEL_BASIS = librosa.filters.mel(sr=RATE, n_fft=MEL_FFT, n_mels=MEL_BANDS).astype(np.float32)
_FREQS = np.fft.rfftfreq(MEL_FFT, 1 / RATE)
_LOW = (_FREQS >= 50) & (_FREQS < 1000)
_HIGH = (_FREQS >= 1000) & (_FREQS < 5000)
_BELOW_2K = (_FREQS >= 50) & (_FREQS < 2000)
_ABOVE_2K = (_FREQS >= 2000) & (_FREQS < 5000)
_SLOPE_BAND = (_FREQS >= 50) & (_FREQS < 5000)


def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II, the transform librosa's MFCC uses."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


_DCT = _dct_matrix(N_MFCC, MEL_BANDS)


@dataclass
class Frames:
    """Per-frame features of frames ``first .. first + len - 1`` on the absolute grid."""

    first: int
    mel: np.ndarray  # (n, 40) power mel, GE2E's input
    energy_db: np.ndarray  # (n,) mean square of the mel window, dBFS
    f0: np.ndarray  # (n,) Hz, YIN's estimate whether voiced or not
    aperiodicity: np.ndarray  # (n,) YIN's normalised difference at that period, 0 = periodic
    spectral: np.ndarray  # (n, 4) alpha ratio dB, Hammarberg dB, slope dB/kHz, centroid kHz
    mfcc: np.ndarray  # (n, 13) from log mel

    def __len__(self) -> int:
        return len(self.energy_db)

    @property
    def voiced(self) -> np.ndarray:
        return (
            (self.aperiodicity < VOICED_APERIODICITY)
            & (self.f0 >= FMIN)
            & (self.f0 <= FMAX)
            & (self.energy_db > FLOOR_DB)
        )

    def rows(self, start: int, stop: int) -> Frames:
        """Frames ``start .. stop - 1`` (absolute indices), clipped to what is held."""
        lo, hi = max(start - self.first, 0), max(min(stop - self.first, len(self)), 0)
        lo = min(lo, hi)
        return Frames(
            self.first + lo,
            self.mel[lo:hi],
            self.energy_db[lo:hi],
            self.f0[lo:hi],
            self.aperiodicity[lo:hi],
            self.spectral[lo:hi],
            self.mfcc[lo:hi],
        )

    @staticmethod
    def concat(parts: list[Frames]) -> Frames:
        parts = [p for p in parts if len(p)] or parts[:1]
        return Frames(
            parts[0].first,
            np.concatenate([p.mel for p in parts]),
            np.concatenate([p.energy_db for p in parts]),
            np.concatenate([p.f0 for p in parts]),
            np.concatenate([p.aperiodicity for p in parts]),
            np.concatenate([p.spectral for p in parts]),
            np.concatenate([p.mfcc for p in parts]),
        )


def empty_frames(first: int = 0) -> Frames:
    return Frames(
        first,
        np.zeros((0, MEL_BANDS), np.float32),
        np.zeros(0, np.float32),
        np.zeros(0, np.float32),
        np.zeros(0, np.float32),
        np.zeros((0, 4), np.float32),
        np.zeros((0, N_MFCC), np.float32),
    )


def frame_count(n_samples: int) -> int:
    """How many whole frames ``n_samples`` (starting on the grid) hold."""
    return 0 if n_samples < FRAME else 1 + (n_samples - FRAME) // HOP


def window_rows(start_sample: int, stop_sample: int) -> tuple[int, int]:
    """Absolute frame indices lying entirely inside ``[start_sample, stop_sample)``."""
    first = -(-start_sample // HOP)
    stop = (stop_sample - FRAME) // HOP + 1
    return first, max(stop, first)


def compute_frames(samples: np.ndarray, first: int = 0) -> Frames:
    """Features of every whole frame of ``samples``, whose sample 0 is frame ``first``'s start.

    Long inputs go in blocks of ``BLOCK_FRAMES`` so a 60 s upload needs ~40 MB, not ~250 MB.
    """
    n = frame_count(len(samples))
    if n == 0:
        return empty_frames(first)
    if n > BLOCK_FRAMES:
        return Frames.concat([
            compute_frames(samples[i * HOP : (i + BLOCK_FRAMES - 1) * HOP + FRAME], first + i)
            for i in range(0, n, BLOCK_FRAMES)
        ])
    x = np.ascontiguousarray(samples[: (n - 1) * HOP + FRAME], dtype=np.float32)
    framed = sliding_window_view(x, FRAME)[::HOP]
    central = framed[:, MEL_OFFSET : MEL_OFFSET + MEL_FFT]
    power = np.abs(np.fft.rfft(central * _HANN, axis=1)).astype(np.float32) ** 2
    mel = power @ _MEL_BASIS.T
    energy_db = 10 * np.log10(np.mean(central.astype(np.float64) ** 2, axis=1) + EPS)
    f0, aperiodicity = _yin(framed)
    spectral = _spectral(power)
    mfcc = np.log(mel.astype(np.float64) + TINY) @ _DCT.T
    return Frames(
        first,
        mel.astype(np.float32),
        energy_db.astype(np.float32),
        f0.astype(np.float32),
        aperiodicity.astype(np.float32),
        spectral.astype(np.float32),
        mfcc.astype(np.float32),
    )


def _yin(framed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YIN (de Cheveigné & Kawahara 2002) per frame: pitch and how periodic the frame is.

    librosa's ``yin`` gives only the pitch and ``pyin`` costs ~2 s per second of audio here, so
    the cumulative mean normalised difference is computed directly, in one FFT per frame.
    """
    n_fft = 2 * FRAME
    tau_min = int(np.floor(RATE / FMAX))
    tau_max = min(int(np.ceil(RATE / FMIN)), YIN_WINDOW - 1)
    x = framed.astype(np.float64)
    head = x[:, :YIN_WINDOW]
    corr = np.fft.irfft(
        np.fft.rfft(x, n_fft, axis=1) * np.fft.rfft(head[:, ::-1], n_fft, axis=1), n_fft, axis=1
    )[:, YIN_WINDOW - 1 : YIN_WINDOW + tau_max]
    squares = np.cumsum(np.pad(x**2, ((0, 0), (1, 0))), axis=1)
    energy0 = squares[:, YIN_WINDOW][:, None]
    taus = np.arange(tau_max + 1)
    energy_tau = squares[:, taus + YIN_WINDOW] - squares[:, taus]
    diff = np.maximum(energy0 + energy_tau - 2 * corr, 0.0)
    cumulative = np.cumsum(diff[:, 1:], axis=1)
    cmndf = np.ones_like(diff)
    cmndf[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(cumulative, EPS)
    search = cmndf[:, tau_min : tau_max + 1]
    is_trough = np.zeros_like(search, dtype=bool)
    is_trough[:, 1:-1] = (search[:, 1:-1] < search[:, :-2]) & (search[:, 1:-1] <= search[:, 2:])
    below = is_trough & (search < YIN_THRESHOLD)
    best = np.where(below.any(axis=1), np.argmax(below, axis=1), np.argmin(search, axis=1))
    rows = np.arange(len(search))
    tau = best + tau_min
    # Parabolic interpolation around the chosen lag for sub-sample pitch.
    left = cmndf[rows, np.clip(tau - 1, 0, tau_max)]
    mid = cmndf[rows, tau]
    right = cmndf[rows, np.clip(tau + 1, 0, tau_max)]
    denom = left - 2 * mid + right
    shift = np.where(np.abs(denom) > EPS, 0.5 * (left - right) / np.where(denom == 0, 1, denom), 0)
    period = tau + np.clip(shift, -1, 1)
    return RATE / np.maximum(period, 1.0), np.clip(mid, 0.0, 2.0)


def _spectral(power: np.ndarray) -> np.ndarray:
    """Spectral balance per frame: all ratios, so the recording gain cancels out."""
    low = power[:, _LOW].sum(axis=1) + TINY
    high = power[:, _HIGH].sum(axis=1) + TINY
    alpha = 10 * np.log10(low / high)
    hammarberg = 10 * np.log10(
        (power[:, _BELOW_2K].max(axis=1) + TINY) / (power[:, _ABOVE_2K].max(axis=1) + TINY)
    )
    freqs_khz = _FREQS[_SLOPE_BAND] / 1000
    log_power = 10 * np.log10(power[:, _SLOPE_BAND] + TINY)
    centred = freqs_khz - freqs_khz.mean()
    slope = (log_power - log_power.mean(axis=1, keepdims=True)) @ centred / (centred @ centred)
    total = power[:, _SLOPE_BAND].sum(axis=1) + TINY
    centroid = power[:, _SLOPE_BAND] @ freqs_khz / total
    return np.stack([alpha, hammarberg, slope, centroid], axis=1)


# ---------------------------------------------------------------------------------------------
# Window statistics


@dataclass(frozen=True)
class Speech:
    """Which frames of a window carry speech, decided relative to the window itself."""

    active: np.ndarray  # bool: loud enough relative to the window's loudest frames
    voiced: np.ndarray  # bool: active and periodic with a pitch in range

    @property
    def n_active(self) -> int:
        return int(self.active.sum())

    @property
    def n_voiced(self) -> int:
        return int(self.voiced.sum())


def speech_in(frames: Frames) -> Speech:
    if len(frames) == 0:
        empty = np.zeros(0, dtype=bool)
        return Speech(empty, empty)
    energy = frames.energy_db
    reference = float(np.percentile(energy, 95))
    active = (energy > FLOOR_DB) & (energy > reference - ACTIVE_RANGE_DB)
    return Speech(active, active & frames.voiced)


def semitones(f0: np.ndarray) -> np.ndarray:
    """Pitch on a log scale (semitones above 55 Hz): level-free and perceptually even."""
    return 12 * np.log2(np.maximum(f0, 1.0) / 55.0)


def normalised_mel(frames: Frames, speech: Speech, target_dbfs: float = -30.0) -> np.ndarray:
    """The active frames' mel, scaled as if the speech had been recorded at ``target_dbfs``.

    Resemblyzer normalises the waveform's level before its mel; scaling the power mel by the
    same gain squared is the same operation, done after the fact.
    """
    mel = frames.mel[speech.active]
    power = 10 ** (frames.energy_db[speech.active].astype(np.float64) / 10)
    level_db = 10 * np.log10(float(np.mean(power)) + EPS)
    return (mel * 10 ** ((target_dbfs - level_db) / 10)).astype(np.float32)


PARTIAL_FRAMES = 160  # GE2E's 1.6 s partial utterance
PARTIAL_STEP = 80


def partial_slices(n_frames: int) -> list[slice]:
    """GE2E partials covering ``n_frames`` of speech; a short stretch is one zero-padded one."""
    if n_frames <= PARTIAL_FRAMES:
        return [slice(0, PARTIAL_FRAMES)]
    starts = list(range(0, n_frames - PARTIAL_FRAMES + 1, PARTIAL_STEP))
    if starts[-1] + PARTIAL_FRAMES < n_frames:
        starts.append(n_frames - PARTIAL_FRAMES)
    return [slice(s, s + PARTIAL_FRAMES) for s in starts]


def partial_batch(mel: np.ndarray) -> np.ndarray:
    """(n_partials, 160, 40) input for the GE2E LSTM."""
    if len(mel) < PARTIAL_FRAMES:
        mel = np.pad(mel, ((0, PARTIAL_FRAMES - len(mel)), (0, 0)))
    return np.stack([mel[s] for s in partial_slices(len(mel))])


def _stats(values: np.ndarray) -> tuple[float, float]:
    return (float(np.mean(values)), float(np.std(values))) if len(values) else (0.0, 0.0)


def prosody_vector(frames: Frames, speech: Speech) -> np.ndarray:
    """Level-invariant prosodic and spectral functionals of a window's speech.

    Pitch level and range (semitones), pitch movement, energy dynamics in dB relative to the
    window (never absolute level), voicing and a speaking-rate proxy (voiced onsets per second),
    spectral balance (alpha ratio, Hammarberg index, slope, centroid), voice quality
    (aperiodicity) and the spectral envelope (MFCC 1-12 means and spreads).
    """
    act, voi = speech.active, speech.voiced
    st = semitones(frames.f0[voi])
    p10, p50, p90 = np.percentile(st, [10, 50, 90])
    # pitch movement between consecutive voiced frames (continuous stretches only)
    both = voi[1:] & voi[:-1]
    st_all = semitones(frames.f0)
    dpitch = np.abs(np.diff(st_all))[both]
    dpitch = dpitch[dpitch < 6]  # octave jumps are YIN errors, not intonation
    energy = frames.energy_db[act]
    e_ref = float(np.percentile(energy, 95))
    e_rel = energy - e_ref
    denergy = np.abs(np.diff(frames.energy_db))[act[1:] & act[:-1]]
    onsets = int(np.sum(voi[1:] & ~voi[:-1])) + int(voi[0])
    active_s = max(speech.n_active, 1) * HOP / RATE
    spec_v = frames.spectral[voi]
    spec_a = frames.spectral[act]
    mfcc = frames.mfcc[act][:, 1:]
    flux = np.mean(np.abs(np.diff(frames.mfcc[:, 1:], axis=0)), axis=1)[act[1:] & act[:-1]]
    features = [
        p50, p90 - p10, float(np.std(st)), p90,
        *_stats(dpitch),
        float(np.mean(e_rel)), float(np.std(e_rel)),
        float(np.percentile(e_rel, 10)),
        *_stats(denergy),
        speech.n_voiced / max(speech.n_active, 1),
        onsets / active_s,
        *spec_v.mean(axis=0), *spec_v.std(axis=0),
        *spec_a.mean(axis=0),
        float(np.mean(frames.aperiodicity[voi])),
        *_stats(flux),
        *mfcc.mean(axis=0), *mfcc.std(axis=0),
    ]
    return np.asarray(features, dtype=np.float32)
