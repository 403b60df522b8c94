"""Degradations (analytic.lab.conditions) and the robustness table (analytic.lab.robustness),
measured on real LibriSpeech speech, the project's noise recordings and its measured room."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from analytic.audio import AudioLimits, decode
from analytic.errors import AnalyticError, TooShort
from analytic.lab import conditions as c
from analytic.lab.condition_names import DEFAULT_CONDITIONS, parse_condition
from analytic.lab.robustness import (
    Sound,
    Trial,
    equal_error_rate,
    format_table,
    run_condition,
    run_conditions,
)
from tests.conftest import FEMALE_A, FEMALE_STRANGER, MALE_A, MALE_STRANGER, REPO_ROOT

NOISE = REPO_ROOT.parent / "shared" / "data" / "noise"
needs_noise = pytest.mark.skipif(not NOISE.is_dir(), reason="../shared/data/noise not staged")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return c.read_audio(MALE_A[1])


def band_share(x: np.ndarray, lo: float, hi: float, rate: int = c.RATE) -> float:
    """Share of the power spectral density (Welch) between ``lo`` and ``hi`` Hz."""
    f, p = signal.welch(x, rate, nperseg=2048)
    return float(p[(f >= lo) & (f < hi)].sum() / p.sum())


# --- noise -----------------------------------------------------------------------------------


@needs_noise
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_household_noise_is_mixed_at_the_asked_snr(speech, snr_db):
    """Measured on the speech itself: a second of silence either side changes nothing."""
    quiet = np.zeros(c.RATE, np.float32)
    padded = np.concatenate([quiet, speech, quiet])
    noise = c.load_noise(NOISE / "washing_machine.flac", "test")
    mixed = c.add_noise(padded, noise, snr_db, np.random.default_rng(3))
    added = mixed.astype(np.float64) - padded
    measured = 10 * np.log10(c.speech_power(speech) / np.mean(added**2))
    assert measured == pytest.approx(snr_db, abs=0.1)
    assert len(mixed) == len(padded) and mixed.dtype == np.float32


def test_snr_is_against_the_active_speech_not_the_pauses(speech):
    """Silence around the speech must not make the noise quieter than asked."""
    padded = np.concatenate([np.zeros(3 * c.RATE, np.float32), speech,
                             np.zeros(3 * c.RATE, np.float32)])
    assert c.speech_power(padded) == pytest.approx(c.speech_power(speech), rel=0.02)
    assert c.power(padded) < 0.7 * c.power(speech)


@needs_noise
def test_noise_halves_are_disjoint_in_time():
    whole = c.read_audio(NOISE / "boiler.flac")
    dev, test = c.load_noise(NOISE / "boiler.flac", "dev"), c.load_noise(NOISE / "boiler.flac",
                                                                        "test")
    assert len(dev) + len(test) == len(whole)
    np.testing.assert_array_equal(np.concatenate([dev, test]), whole)
    with pytest.raises(ValueError):
        c.noise_part(whole, "train")


def test_babble_is_made_of_the_given_talkers_at_the_asked_snr(speech):
    others = [c.read_audio(p) for p in (*FEMALE_A, MALE_STRANGER, FEMALE_STRANGER)]
    rng = np.random.default_rng(11)
    crowd = c.babble(others, len(speech), rng, talkers=4)
    assert len(crowd) == len(speech) and c.power(crowd) > 0
    mixed = c.add_noise(speech, crowd, 5.0, np.random.default_rng(12))
    measured = 10 * np.log10(c.speech_power(speech) / c.power(mixed.astype(np.float64) - speech))
    assert measured == pytest.approx(5.0, abs=0.05)
    with pytest.raises(ValueError):
        c.babble(others[:2], 100, rng, talkers=4)


@needs_noise
def test_the_same_seed_gives_the_same_degradation(speech):
    noise = c.load_noise(NOISE / "boiler.flac", "dev")
    others = [c.read_audio(p) for p in (*FEMALE_A, MALE_STRANGER)]
    for make in (
        lambda rng: c.add_noise(speech, noise, 10.0, rng),
        lambda rng: c.add_noise(speech, c.white_noise(len(speech), rng), 10.0, rng),
        lambda rng: c.add_noise(speech, c.babble(others, len(speech), rng), 10.0, rng),
    ):
        first, again = make(np.random.default_rng(7)), make(np.random.default_rng(7))
        np.testing.assert_array_equal(first, again)
        assert not np.array_equal(first, make(np.random.default_rng(8)))
    # per-clip generators do not depend on the order clips are processed in
    a = c.rng_for(0, "boiler", "x.flac").integers(1 << 30)
    c.rng_for(0, "boiler", "y.flac").integers(1 << 30)
    assert a == c.rng_for(0, "boiler", "x.flac").integers(1 << 30)
    assert a != c.rng_for(1, "boiler", "x.flac").integers(1 << 30)


# --- band ------------------------------------------------------------------------------------


def test_bandpass_removes_energy_below_300_and_above_3400_hz(speech):
    narrow = c.narrowband(speech)  # 8 kHz content, so the band edges are what is measured
    passed = c.bandpass(narrow, c.RATE, 300.0, 3400.0)
    assert band_share(narrow, 0, 200) > 0.05  # speech has energy down there to remove
    assert band_share(passed, 0, 200) < 0.002
    assert band_share(passed, 3900, 8000) < 0.002
    assert band_share(passed, 250, 3600) > 0.99
    # and the band itself goes through untouched
    f, before = signal.welch(narrow, c.RATE, nperseg=2048)
    _, after = signal.welch(passed, c.RATE, nperseg=2048)
    inside = (f >= 500) & (f < 3000)
    assert after[inside].sum() == pytest.approx(before[inside].sum(), rel=0.05)


def test_telephone_channel_is_band_limited_and_mu_law_coded(speech):
    phone = c.telephone(speech)
    assert len(phone) == len(speech)
    assert band_share(speech, 4200, 8000) > 0.01
    assert band_share(phone, 0, 200) < 0.005
    assert band_share(phone, 4200, 8000) < 0.001
    # mu-law: 256 levels, error proportional to the sample (companding), not absolute
    x = np.linspace(-1, 1, 10_001)
    y = c.mu_law(x)
    assert len(np.unique(y)) <= 256
    loud = np.abs(x) > 0.1
    assert np.max(np.abs(y - x)[loud] / np.abs(x)[loud]) < 0.05


def test_narrowband_keeps_nothing_above_4_khz(speech):
    assert band_share(c.narrowband(speech), 4100, 8000) < 1e-4


# --- reverberation ---------------------------------------------------------------------------


def rt60_schroeder(rir: np.ndarray) -> float:
    """RT60 from the Schroeder backward integral, T20 (-5 to -25 dB) extrapolated."""
    energy = np.cumsum(rir[::-1] ** 2)[::-1]
    decay = 10 * np.log10(energy / energy[0] + 1e-30)
    t = np.arange(len(rir)) / c.RATE
    fit = (decay <= -5) & (decay >= -25)
    slope = np.polyfit(t[fit], decay[fit], 1)[0]
    return -60 / slope


def test_simulated_room_has_the_asked_reverberation_time():
    pytest.importorskip("pyroomacoustics")
    rir = c.simulated_rir(0.5)
    assert rt60_schroeder(rir) == pytest.approx(0.5, abs=0.15)
    assert rt60_schroeder(c.simulated_rir(1.0)) > rt60_schroeder(rir) + 0.2
    assert int(np.argmax(np.abs(rir))) <= c.RIR_PRE_MS * c.RATE / 1000 + 1


@needs_noise
def test_measured_room_reverberates_without_delay_or_level_change(speech):
    rir = c.load_rir(NOISE / "rir_clap.flac")
    wet = c.reverberate(speech, rir)
    assert len(wet) == len(speech)
    assert c.power(wet) == pytest.approx(c.power(speech), rel=1e-3)
    # no delay: through a response that starts with 50 ms of silence, a click comes out
    # with its direct sound RIR_PRE_MS later, not 50 ms later
    raw = c.read_audio(NOISE / "rir_clap.flac")
    late = np.concatenate([np.zeros(800, np.float32), raw])
    np.testing.assert_allclose(c.prepare_rir(late), c.prepare_rir(raw), atol=1e-7)
    click = np.zeros(c.RATE, np.float32)
    click[1000] = 1.0
    assert int(np.argmax(np.abs(c.reverberate(click, late)))) == 1000 + round(
        c.RIR_PRE_MS * c.RATE / 1000)
    assert np.corrcoef(wet, speech)[0, 1] < 0.95  # it is not the dry clip


# --- cuts ------------------------------------------------------------------------------------


def test_cuts_keep_the_asked_seconds(speech):
    padded = np.concatenate([np.zeros(c.RATE, np.float32), speech])
    assert len(c.cut_speech(padded, 1.5)) == int(1.5 * c.RATE)
    onset = c.voice_onset(padded)
    assert c.RATE - 1600 <= onset <= c.RATE + 3200  # the talker starts after 1 s of silence
    command = c.cut_from_onset(padded, 1.0)
    assert len(command) == c.RATE
    np.testing.assert_array_equal(command, padded[onset : onset + c.RATE])


# --- the table -------------------------------------------------------------------------------


def test_equal_error_rate_on_known_scores():
    target = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    assert equal_error_rate(np.array([9, 8, 7, 6, 4, 3, 2, 1.0]), target) == 0.0
    assert equal_error_rate(np.array([1, 2, 3, 4, 6, 7, 8, 9.0]), target) == 1.0
    # one target below one non-target: 25 % either way
    assert equal_error_rate(np.array([9, 8, 7, 2, 3, 1, 0.5, 0.1]), target) == pytest.approx(0.25)
    # a refused target (NaN) is rejected at every threshold
    assert equal_error_rate(np.array([9, 8, 7, np.nan, 3, 1, 0.5, 0.1]), target) == \
        pytest.approx(0.25)
    # with every target refused no threshold helps: 100 %, not the 50 % of a tie
    refused = np.array([np.nan] * 4 + [3, 1, 0.5, 0.1])
    assert equal_error_rate(refused, target) == 1.0
    assert equal_error_rate(np.full(8, np.nan), target) == 1.0


FILES = [*MALE_A, *FEMALE_A, MALE_STRANGER, FEMALE_STRANGER]


def fixture_trials() -> list[Trial]:
    spk = {str(p): p.name.split("-")[0] for p in FILES}
    keys = list(spk)
    return [Trial(a, b, spk[a] == spk[b]) for i, a in enumerate(keys) for b in keys[i + 1:]]


class SpectrumScorer:
    """A real, model-free scorer: the service's decoding (refusing short clips), then the
    cosine of mean log-mel spectra. Good enough to tell these two sexes apart."""

    def __init__(self) -> None:
        self.calls = 0

    def vector(self, x: np.ndarray) -> np.ndarray:
        import io

        import soundfile as sf

        from analytic.classifiers.features import compute_frames

        buffer = io.BytesIO()
        sf.write(buffer, x.samples, c.RATE, format="WAV", subtype="FLOAT")
        speech = decode(buffer.getvalue(), "x.wav", AudioLimits(min_speech_s=1.0)).speech
        v = np.log(compute_frames(speech).mel + 1e-10).mean(axis=0)
        return v - v.mean()

    def __call__(self, enrol, test) -> np.ndarray:
        self.calls += 1
        out = np.full(len(enrol), np.nan)
        for i, (a, b) in enumerate(zip(enrol, test, strict=True)):
            try:
                va, vb = self.vector(a), self.vector(b)
            except AnalyticError:
                continue
            out[i] = va @ vb / np.linalg.norm(va) / np.linalg.norm(vb)
        return out


def test_refused_clips_count_as_rejections_and_are_reported_apart():
    trials = fixture_trials()
    clean = c.Condition("clean", lambda x, rng: x)
    short = c.Condition("0.5 s from onset", lambda x, rng: c.cut_from_onset(x, 0.5))
    scorer = SpectrumScorer()
    results = run_conditions([clean, short], trials, lambda k: Sound(c.read_audio(k)), scorer,
                             threshold=0.0)
    ok, cut = results
    n_target = sum(t.target for t in trials)
    assert ok.refused_target == ok.refused_nontarget == 0
    assert ok.eer < 0.5
    assert cut.refused_target == n_target and cut.refused_nontarget == len(trials) - n_target
    assert cut.false_rejects == 1.0 and cut.false_accepts == 0.0
    table = format_table(results)
    assert f"| 0.5 s from onset | 100.0% | 100.0% | 0.0% | 0 | {n_target}/{n_target} |" in table


def test_a_scorer_that_raises_never_ends_the_table():
    """A scorer raising on the batch is asked pair by pair; pairs that still raise are
    refusals, the others keep their scores."""
    trials = fixture_trials()
    scorer = SpectrumScorer()

    def strict(enrol, test):
        for x in (*enrol, *test):
            if len(x.samples) < 2 * c.RATE:
                raise TooShort("too short")
        return scorer(enrol, test)

    half = c.Condition("first 1.5 s of odd files", lambda x, rng: x[: int(1.5 * c.RATE)]
                       if rng.integers(2) else x)
    result = run_condition(half, trials, lambda k: Sound(c.read_audio(k)), strict,
                           threshold=0.5, seed=4)
    refused = result.refused_target + result.refused_nontarget
    assert 0 < refused < len(trials)
    assert not np.isnan(result.eer)


def test_a_threshold_per_bandwidth_follows_the_rate_a_condition_sends_at():
    """A telephone test (sent at 8 kHz) is judged at the narrowband threshold, a clean one at
    the wideband threshold, as the service judges them."""
    trials = fixture_trials()
    scorer = SpectrumScorer()
    thresholds = {16_000: 0.9, 8_000: -1.0}
    phone = c.Condition("phone", lambda x, rng: x, rate=c.TELEPHONE_RATE)
    clean = c.Condition("clean", lambda x, rng: x)
    wide, narrow = run_conditions([clean, phone], trials, lambda k: Sound(c.read_audio(k)),
                                  scorer, thresholds.__getitem__)
    assert (wide.threshold, narrow.threshold) == ("0.9", "-1")
    assert narrow.false_rejects == 0.0 and narrow.false_accepts == 1.0
    assert wide.false_accepts < 1.0


def test_condition_names_are_checked_before_any_audio_is_read():
    assert parse_condition("babble10") == ("babble", 10.0)
    assert parse_condition("room0.5") == ("room", 0.5)
    assert parse_condition("8khz") == ("8khz", None)
    for wrong in ("babble", "rir3", "kitchen10", "speech", ""):
        with pytest.raises(ValueError):
            parse_condition(wrong)
    for name in DEFAULT_CONDITIONS.split(","):
        parse_condition(name)
    with pytest.raises(ValueError, match="unknown condition"):
        c.named_conditions("clean,cellar5", NOISE, "test", lambda: [])
    with pytest.raises(ValueError, match="babble needs"):
        c.named_conditions("babble10", NOISE, "test", lambda: [])


def test_named_telephone_is_sent_at_8_khz_and_cuts_are_real(speech):
    phone, onset = c.named_conditions("telephone,onset0.5", NOISE, "test", lambda: [])
    assert phone.rate == c.TELEPHONE_RATE and onset.rate == c.RATE
    rng = np.random.default_rng(0)
    assert band_share(phone.apply(speech, rng), 0, 200) < 0.01
    assert len(onset.apply(speech, rng)) == c.RATE // 2
