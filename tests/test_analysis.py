"""Gender and arousal over time, on real LibriSpeech speech: file, chunk, stream and HTTP."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import requests
import soundfile as sf
import soxr

from analytic.analysis import AnalysisService, Timeline, parse_analysis_options
from analytic.errors import BadOutputPeriod, BadRequest, UnsupportedAudio
from analytic.schemas import AnalysisOptions, AnalysisResult
from analytic.web.errors import http_status
from tests.conftest import FEMALE_A, FEMALE_STRANGER, MALE_A, MALE_STRANGER

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

RATE = 16_000
ALL = AnalysisOptions(include_summary=True, include_transitions=True, include_raw_values=True)


def speech(*paths) -> np.ndarray:
    parts = []
    for path in paths:
        samples, rate = sf.read(path, dtype="float32")
        assert rate == RATE
        parts.append(samples)
    return np.concatenate(parts)


def wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def labels(result: AnalysisResult, model: str) -> list[str]:
    return [entry.results[model].result for entry in result.time_series]


@pytest.fixture(scope="module")
def analysis(service) -> AnalysisService:
    return service.analysis


@pytest.fixture(scope="module")
def male(analysis) -> AnalysisResult:
    return analysis.analyze_file(wav(speech(*MALE_A)), "male.wav", ALL)


@pytest.fixture(scope="module")
def female(analysis) -> AnalysisResult:
    return analysis.analyze_file(wav(speech(*FEMALE_A)), "female.wav", ALL)


# --- the models on known speakers ------------------------------------------------------------


def test_known_male_speaker_comes_out_male(male):
    decided = [x for x in labels(male, "gender") if x in ("male", "female")]
    assert len(decided) >= 8
    assert decided.count("male") >= 0.8 * len(decided)
    assert male.summary["gender"]["male_fraction"] > 0.5


def test_known_female_speaker_comes_out_female(female):
    decided = [x for x in labels(female, "gender") if x in ("male", "female")]
    assert len(decided) >= 8
    assert decided.count("female") >= 0.8 * len(decided)
    assert female.summary["gender"]["female_fraction"] > 0.5


@pytest.mark.parametrize(
    ("path", "expected"), [(MALE_STRANGER, "male"), (FEMALE_STRANGER, "female")]
)
def test_one_chunk_gives_one_answer(analysis, path, expected):
    answer = analysis.analyze_chunk(speech(path), RATE)
    assert answer["gender"].result == expected
    assert answer["gender"].confidence >= 0.6
    assert answer["arousal"].result in ("high", "neutral", "low", "unknown")


def test_read_speech_is_not_high_arousal(male, female):
    """Audiobook reading is calm: 'high' should be the exception on both fixtures."""
    for result in (male, female):
        series = labels(result, "arousal")
        assert series.count("high") <= len(series) / 2


# --- silence, no speech, unknown ---------------------------------------------------------------


def test_digital_silence_is_silence(analysis):
    voice = speech(MALE_A[0])
    clip = np.concatenate([voice[: 2 * RATE], np.zeros(2 * RATE, np.float32), voice[2 * RATE :]])
    result = analysis.analyze_file(wav(clip), "gap.wav", AnalysisOptions(output_period=256))
    for entry in result.time_series:
        start, end = entry.timestamp, entry.timestamp + 256
        if start >= 2000 and end <= 4000:  # entirely inside the silent second
            assert entry.results["gender"].result == "silence"
            assert entry.results["arousal"].result == "silence"
    assert any(e.results["gender"].result == "male" for e in result.time_series)


def test_noise_is_no_speech_not_a_voice(analysis):
    noise = np.random.default_rng(0).normal(0, 0.05, 3 * RATE).astype(np.float32)
    result = analysis.analyze_file(wav(noise), "noise.wav")
    assert set(labels(result, "gender")) == {"no_speech"}
    assert set(labels(result, "arousal")) == {"no_speech"}


def test_volume_threshold_turns_quiet_speech_into_silence(analysis):
    quiet = speech(FEMALE_A[0]) * 0.01
    loud = analysis.analyze_file(wav(quiet), "q.wav", AnalysisOptions(volume_threshold=0.0))
    hushed = analysis.analyze_file(wav(quiet), "q.wav", AnalysisOptions(volume_threshold=0.5))
    assert "female" in labels(loud, "gender")
    assert set(labels(hushed, "gender")) == {"silence"}


# --- the shape of the answer ---------------------------------------------------------------


def test_entries_every_output_period_with_receptive_field_marked(male, analysis):
    assert male.output_period == 1024
    stamps = [e.timestamp for e in male.time_series]
    assert stamps == list(range(0, male.duration_ms, 1024))
    info = {m.name: m for m in male.models}
    assert info["gender"].receptive_field_ms > 0 and info["arousal"].receptive_field_ms > 0
    for entry in male.time_series:
        for name, result in entry.results.items():
            filled = entry.timestamp + 1024 >= info[name].receptive_field_ms
            if result.result not in ("silence", "no_speech"):
                assert result.partial is (None if filled else True)
            assert 0.0 <= result.confidence <= 1.0


def test_summary_fractions_sum_to_one(male, female):
    for result in (male, female):
        for model, fractions in result.summary.items():
            assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-5), model
            assert set(fractions) >= {"silence_fraction", "no_speech_fraction",
                                      "unknown_fraction"}
    assert set(male.summary["gender"]) >= {"male_fraction", "female_fraction"}
    assert set(male.summary["arousal"]) >= {"high_fraction", "neutral_fraction", "low_fraction"}


def test_transitions_cover_the_timeline_without_gaps_or_overlaps(male, female):
    for result in (male, female):
        for model, runs in result.transitions.items():
            assert runs[0].timestamp_start == 0
            assert runs[-1].timestamp_end == result.duration_ms
            for before, after in itertools.pairwise(runs):
                assert before.timestamp_end == after.timestamp_start
                assert before.result != after.result  # runs are maximal
            # every entry's label is the label of the run it falls in
            for entry in result.time_series:
                run = next(r for r in runs if r.timestamp_start <= entry.timestamp
                           < r.timestamp_end)
                assert run.result == entry.results[model].result


def test_raw_values_only_when_asked(analysis):
    clip = wav(speech(FEMALE_A[1]))
    plain = analysis.analyze_file(clip, "f.wav").payload()
    raw = analysis.analyze_file(clip, "f.wav", AnalysisOptions(include_raw_values=True)).payload()
    assert all("raw" not in entry for entry in plain["time_series"])
    assert "summary" not in plain and "transitions" not in plain
    probabilities = [e["raw"]["gender"] for e in raw["time_series"] if e["raw"]["gender"]]
    assert probabilities
    for p in probabilities:
        assert set(p) == {"male", "female"} and sum(p.values()) == pytest.approx(1, abs=1e-3)


def test_models_can_be_chosen(analysis):
    options = parse_analysis_options({"models": "arousal", "output_period": "512"})
    result = analysis.analyze_file(wav(speech(MALE_A[1])), "m.wav", options)
    assert [m.name for m in result.models] == ["arousal"]
    assert all(set(e.results) == {"arousal"} for e in result.time_series)
    assert "summary" not in result.payload()


@pytest.mark.parametrize("period", ["100", "0", "-64", "63"])
def test_bad_output_period_is_refused(period):
    with pytest.raises(BadOutputPeriod) as caught:
        parse_analysis_options({"output_period": period})
    assert caught.value.code == "bad_output_period"
    assert http_status(caught.value) == 422


@pytest.mark.parametrize(
    "fields", [{"models": "gender,age"}, {"volume_threshold": "2"}, {"colour": "blue"}]
)
def test_other_bad_options_are_400(fields):
    with pytest.raises(BadRequest) as caught:
        parse_analysis_options(fields)
    assert http_status(caught.value) == 400


# --- one implementation: stream == file -------------------------------------------------------


def test_stream_gives_the_file_labels(analysis):
    samples = speech(MALE_A[2], FEMALE_A[2])
    clip = wav(samples)  # PCM_16, so the stream below carries exactly the same samples
    options = AnalysisOptions(output_period=512)
    whole = analysis.analyze_file(clip, "both.wav", options)
    pcm = (np.round(samples * 32768).clip(-32768, 32767)).astype("<i2").tobytes()
    # uneven chunk sizes, one splitting a sample in two
    chunks = [pcm[i : i + 3001] for i in range(0, len(pcm), 3001)]
    streamed = list(analysis.stream(iter(chunks), options))
    assert [e.timestamp for e in streamed] == [e.timestamp for e in whole.time_series]
    for model in ("gender", "arousal"):
        assert [e.results[model].result for e in streamed] == labels(whole, model)
    # and the stream heard both speakers, in order
    genders = [e.results["gender"].result for e in streamed]
    assert "male" in genders[: len(genders) // 2] and "female" in genders[len(genders) // 2 :]


@pytest.mark.parametrize("period", [192, 1024])
def test_forgetting_old_audio_never_changes_an_answer(analysis, monkeypatch, period):
    """The stream keeps one receptive field; keeping everything must give the same entries."""
    samples = speech(*MALE_A)
    pcm = (np.round(samples * 32768).clip(-32768, 32767)).astype("<i2").tobytes()
    chunks = [pcm[i : i + 5000] for i in range(0, len(pcm), 5000)]
    options = AnalysisOptions(output_period=period, include_raw_values=True)
    forgetful = [e.model_dump() for e in analysis.stream(iter(chunks), options)]
    monkeypatch.setattr(Timeline, "_forget", lambda self: None)
    hoarding = [e.model_dump() for e in analysis.stream(iter(chunks), options)]
    assert forgetful == hoarding
    assert len(forgetful) == -(-len(samples) // (period * 16))


def test_stream_at_8k_is_resampled_on_the_fly(analysis):
    samples = speech(FEMALE_A[0])
    narrow = soxr.resample(samples, RATE, 8000)
    pcm = (np.round(narrow * 32768).clip(-32768, 32767)).astype("<i2").tobytes()
    entries = list(analysis.stream([pcm[i : i + 4000] for i in range(0, len(pcm), 4000)],
                                   sample_rate=8000))
    assert len(entries) == -(-len(samples) // (1024 * 16))
    assert "female" in [e.results["gender"].result for e in entries]
    with pytest.raises(UnsupportedAudio):
        list(analysis.stream([pcm], sample_rate=1000))


def test_stream_report_matches_the_file_summary(analysis):
    samples = speech(FEMALE_A[0])
    pcm = (np.round(samples * 32768).clip(-32768, 32767)).astype("<i2").tobytes()
    session = analysis.open_stream(ALL)
    for i in range(0, len(pcm), 8192):
        session.feed(pcm[i : i + 8192])
    session.close()
    whole = analysis.analyze_file(wav(samples), "f.wav", ALL)
    assert session.timeline.report.summary() == whole.summary
    assert session.timeline.report.transitions() == whole.transitions


# --- both doors --------------------------------------------------------------------------------


def test_http_analyze(base_url):
    with open(MALE_A[0], "rb") as handle:
        response = requests.post(
            f"{base_url}/analyze",
            params={"models": "gender,arousal", "output_period": 1024,
                    "include_summary": "true", "include_transitions": "true"},
            files={"file": ("kitchen.flac", handle)},
            timeout=60,
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "kitchen.flac" and body["output_period"] == 1024
    entry = body["time_series"][0]
    assert set(entry) == {"timestamp", "results"}
    assert set(entry["results"]) == {"gender", "arousal"}
    assert {"result", "confidence"} <= set(entry["results"]["gender"])
    assert set(body["summary"]) == {"gender", "arousal"}
    assert set(body["transitions"]) == {"gender", "arousal"}
    assert [m["name"] for m in body["models"]] == ["gender", "arousal"]
    assert "NC" in next(m for m in body["models"] if m["name"] == "arousal")["licence"]


def test_http_output_period_100_is_422(base_url):
    with open(MALE_A[0], "rb") as handle:
        response = requests.post(f"{base_url}/analyze", params={"output_period": 100},
                                 files={"file": ("a.flac", handle)}, timeout=60)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "bad_output_period"


def test_http_refusals_use_the_intake_codes(base_url):
    missing = requests.post(f"{base_url}/analyze", timeout=30)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_file"
    junk = requests.post(f"{base_url}/analyze", files={"file": ("a.wav", b"not audio")},
                         timeout=30)
    assert junk.status_code == 415 and junk.json()["error"]["code"] == "unsupported_audio"


def test_verification_reports_gender_and_arousal_per_file(base_url):
    with open(MALE_A[0], "rb") as one, open(FEMALE_A[0], "rb") as two:
        response = requests.post(
            f"{base_url}/speaker_verification",
            files={"file1": ("m.flac", one), "file2": ("f.flac", two)},
            timeout=60,
        )
    assert response.status_code == 200, response.text
    first, second = response.json()["files"]
    assert first["gender"]["result"] == "male"
    assert second["gender"]["result"] == "female"
    for report in (first, second):
        assert report["arousal"]["result"] in ("high", "neutral", "low", "unknown")
        assert 0.0 <= report["arousal"]["confidence"] <= 1.0


def test_verification_with_ecapa_still_reports_gender(tmp_path):
    """The gender head reads GE2E; an ECAPA service loads a GE2E of its own for it."""
    from analytic.cli.settings import Settings
    from analytic.encoders import load_encoder
    from analytic.service import VerificationService
    from tests.tiny_ecapa import build_tiny_ecapa

    settings = Settings(encoder="ecapa", ecapa_source=str(build_tiny_ecapa(tmp_path)))
    service = VerificationService(settings, load_encoder(settings))
    result = service.verify(
        ("m.flac", MALE_A[1].read_bytes()), ("f.flac", FEMALE_A[1].read_bytes())
    )
    assert result.model == "ecapa"
    assert [f.gender.result for f in result.files] == ["male", "female"]


def test_cli_analyze_prints_the_http_json():
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "analytic", "analyze", str(FEMALE_A[0]), "--output-period",
         "2048", "--summary", "--transitions"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["output_period"] == 2048 and set(body["summary"]) == {"gender", "arousal"}
    assert body["summary"]["gender"]["female_fraction"] > 0.5
    bad = subprocess.run(
        [sys.executable, "-m", "analytic", "analyze", str(FEMALE_A[0]), "--output-period", "100"],
        capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["error"]["code"] == "bad_output_period"
