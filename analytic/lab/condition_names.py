"""The names ``evaluate --conditions`` takes, apart from the degradations themselves so the
command line can list them in ``--help`` without importing numpy or scipy."""

from __future__ import annotations

import re

# ``evaluate --conditions`` names: a word, then a number where the condition takes one
# (SNR in dB, RT60 or seconds). The issue-12 table is ``DEFAULT_CONDITIONS``.
CONDITION_HELP = {
    "clean": "no degradation",
    "babble<dB>": "babble of 4 other speakers (train-clean-100 of the half) at <dB> SNR",
    "boiler<dB>": "household noise (noise/boiler.flac, the half's part in time) at <dB> SNR",
    "washer<dB>": "household noise (noise/washing_machine.flac) at <dB> SNR",
    "white<dB>": "white noise at <dB> SNR",
    "rir": "the measured room (noise/rir_clap.flac)",
    "room<RT60>": "a simulated living room (pyroomacoustics), RT60 in seconds",
    "telephone": "300-3400 Hz band-pass and mu-law, sent at 8 kHz",
    "8khz": "the clip sent at 8 kHz (no low cut, no codec)",
    "speech<s>": "the first <s> seconds of the clip's speech (the detector's output)",
    "onset<s>": "<s> seconds of audio from the voice onset, pauses included (a command)",
}
DEFAULT_CONDITIONS = ("clean,babble10,boiler10,washer10,white10,room0.5,rir,telephone,8khz,"
                      "speech1.5,speech1.0,onset1.0")


def parse_condition(name: str) -> tuple[str, float | None]:
    """``"babble10"`` -> ``("babble", 10.0)``; ``"rir"`` -> ``("rir", None)``."""
    match = re.fullmatch(r"([a-z]+|8khz)(-?\d+(?:\.\d+)?)?", name.strip().lower())
    if match is None:
        raise ValueError(f"unknown condition {name!r}")
    word, number = match.group(1), match.group(2)
    numbered = {key[: key.index("<")] for key in CONDITION_HELP if "<" in key}
    plain = {key for key in CONDITION_HELP if "<" not in key}
    if (word in numbered and number is None) or (word in plain and number is not None) or (
            word not in numbered | plain):
        raise ValueError(f"unknown condition {name!r}; known: {', '.join(CONDITION_HELP)}")
    return word, None if number is None else float(number)
