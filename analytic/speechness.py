"""Is what the voice activity detector kept speech at all? White noise, tones and buzzers are not.

webrtcvad answers "is there energy in the voice band", so a hum, a square-wave buzzer or white
noise passes it whole, and then embeds like any voice: issue 14 got "Same Speaker" at 0.998 for
two noises, and enrolled noise as a member. Speech differs from those in two ways that survive
level, channel and language:

* it is not flat: voiced sounds have harmonics and formants, so the median frame's spectral
  flatness (geometric over arithmetic mean power, 100-6000 Hz) stays well below white noise's
  0.56;
* it never holds still: syllables come and go several times a second, so frame energy spreads
  over many dB and the band spectrum 100 ms apart differs by several dB. A tone, a buzzer, a
  boiler or white noise keeps both near zero.

Refused as ``no_speech``: a flat median spectrum; a level that never moves; a spectral shape
that never moves; or a level spread and a spectral change both low, below what the speech
corpora show. The thresholds were chosen from the features of a sample of each speech corpus
in ``../shared/data`` and a development noise set; ``bench/speech_detector.py`` measures them
on every file of those corpora and a separate noise test set (figures in docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RATE = 16_000
FRAME, HOP = 512, 256  # 32 ms frames every 16 ms
BAND_HZ = (100.0, 6000.0)
BANDS = 24  # log-spaced bands for the spectral change
BAND_FLOOR_DB = 50.0
CHANGE_LAG = 6  # frames: about 100 ms, a syllable's scale
MIN_FRAMES = 8  # below this (about 0.15 s) there is nothing to judge: left to too_short

MAX_FLATNESS = 0.35
MIN_ANY_SPREAD_DB = 1.0  # below this the level never moves: nobody speaks like that
MIN_LEVEL_SPREAD_DB = 3.0
MIN_CHANGE_DB = 5.0
MIN_ANY_CHANGE_DB = 3.0  # below this the spectrum's shape never moves: a chord, a drone


@dataclass(frozen=True)
class SpeechFeatures:
    flatness: float  # median frame spectral flatness, 0 (tonal) .. ~0.56 (white noise)
    level_spread_db: float  # standard deviation of the frames' energy, dB
    change_db: float  # median mean-absolute band-spectrum change over CHANGE_LAG frames, dB


def speech_features(speech: np.ndarray) -> SpeechFeatures | None:
    """The features of 16 kHz mono samples; ``None`` when too short to judge."""
    if len(speech) < FRAME + HOP * (MIN_FRAMES - 1):
        return None
    frames = np.lib.stride_tricks.sliding_window_view(speech.astype(np.float64), FRAME)[::HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(FRAME), axis=1)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    in_band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    power = power[:, in_band]
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    level_db = 10 * np.log10(power.sum(axis=1))
    edges = np.geomspace(*BAND_HZ, BANDS + 1)
    which = np.clip(np.digitize(freqs[in_band], edges) - 1, 0, BANDS - 1)
    bands = np.stack([power[:, which == k].sum(axis=1) for k in range(BANDS)], axis=1)
    bands_db = 10 * np.log10(bands + 1e-12)
    # Bands far below a frame's loudest are empty, not information: a harmonic buzzer's empty
    # bands flicker by tens of dB with its phase, which would read as change.
    bands_db = np.maximum(bands_db, bands_db.max(axis=1, keepdims=True) - BAND_FLOOR_DB)
    # The spectrum's shape, not its level: a beating chord swells and fades but keeps its shape.
    bands_db -= bands_db.mean(axis=1, keepdims=True)
    if len(bands_db) > CHANGE_LAG:
        change = np.mean(np.abs(bands_db[CHANGE_LAG:] - bands_db[:-CHANGE_LAG]), axis=1)
    else:
        change = np.zeros(1)
    return SpeechFeatures(float(np.median(flatness)), float(np.std(level_db)),
                          float(np.median(change)))


def looks_like_speech(features: SpeechFeatures | None) -> bool:
    """``False`` for noise, tones and other steady sounds (see the module docstring)."""
    if features is None:
        return True
    if features.flatness > MAX_FLATNESS or features.level_spread_db < MIN_ANY_SPREAD_DB:
        return False
    if features.change_db < MIN_ANY_CHANGE_DB:
        return False
    return not (features.level_spread_db < MIN_LEVEL_SPREAD_DB
                and features.change_db < MIN_CHANGE_DB)
