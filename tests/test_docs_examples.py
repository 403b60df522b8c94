"""The manuals in docs/ are walk-throughs that work: every example runs, as written, in order.

Like ``tests/test_readme.py`` for the README: ``walk`` (``tests/walkthrough.py``) starts the
service the way a document says (``script/run``) beside a Mosquitto of its own, feeds every
shell and Python block to one bash in document order, and checks each block's answers against
what the text says they will be. Only the ports (and the data folder) differ from what a reader
types. Every runnable block needs an entry in its document's list, matched by text only it
holds, so an example added without a check fails ``test_every_example_has_a_check``, and every
manual in docs/ must be listed in ``MANUALS`` (``test_every_manual_is_listed``).

The examples use the LibriSpeech clips in ``tests/data/librispeech`` (CC BY 4.0): 3331-* is one
woman, 2609-* one man, 367-130732-0001 a woman never enrolled.
"""

from __future__ import annotations

import re

import pytest

from tests.walkthrough import (
    ROOT,
    SHARED_LIBRISPEECH,
    Example,
    check_every_block_has_an_example,
    paired,
    walk,
)

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

DOCS = ROOT / "docs"


def literal(*lines: str) -> tuple[str, ...]:
    """Lines the document prints word for word (its sample output)."""
    return tuple(rf"(?m)^{re.escape(line)}$" for line in lines)


# The sample answer of docs/analysis.md (3331-159605-0005.flac, 2048 ms period), as printed by
# HTTP (one line) and by the command line (indented): the same figures either way.
ANALYSIS_ANSWER = (
    r'"name":\s*"3331-159605-0005\.flac"', r'"duration_ms":\s*4755',
    r'"output_period":\s*2048',
    r'"timestamp":\s*0,\s*"results":\s*\{\s*"gender":\s*\{\s*"result":\s*"female",'
    r'\s*"confidence":\s*0\.9455,\s*"partial":\s*true\s*\},\s*"arousal":\s*\{\s*"result":'
    r'\s*"low",\s*"confidence":\s*0\.8983,\s*"partial":\s*true',
    r'"timestamp":\s*4096,\s*"results":\s*\{\s*"gender":\s*\{\s*"result":\s*"silence"',
    r'"female_fraction":\s*0\.861409', r'"male_fraction":\s*0\.0,',
    r'"silence_fraction":\s*0\.138591', r'"low_fraction":\s*0\.861409',
    r'"timestamp_start":\s*0,\s*"timestamp_end":\s*4096,\s*"result":\s*"female",'
    r'\s*"confidence":\s*0\.9381',
    r'"timestamp_start":\s*0,\s*"timestamp_end":\s*4096,\s*"result":\s*"low",'
    r'\s*"confidence":\s*0\.9267',
    r'"timestamp_start":\s*4096,\s*"timestamp_end":\s*4755,\s*"result":\s*"silence"',
)

EXAMPLES_ANALYSIS = [
    Example("script/run\n", "service"),
    Example("output_period=2048&include_summary=true&include_transitions=true", "shell",
            output=ANALYSIS_ANSWER),
    Example("--output-period 2048 --summary --transitions", "shell", output=ANALYSIS_ANSWER),
    Example("2609-156975-0000.flac --raw --volume-threshold 0.001", "shell",
            output=(r'"name":\s*"2609-156975-0000\.flac"',
                    r'"gender":\s*\{\s*"result":\s*"male"',
                    r'\A(?![\s\S]*"result":\s*"female")',  # and never female
                    r'"raw":\s*\{\s*"gender":\s*\{\s*"female":\s*0\.\d+,\s*"male":\s*0\.\d+')),
    Example("from analytic.analysis import AnalysisService", "python",
            output=literal(
                "file: {'female_fraction': 0.646057, 'male_fraction': 0.0, 'unknown_fraction': "
                "0.107676, 'no_speech_fraction': 0.0, 'silence_fraction': 0.246267}",
                "chunk: {'gender': 'female', 'arousal': 'low'}",
                "stream gives the file's entries: True",
                "summary: {'female_fraction': 0.646057, 'male_fraction': 0.0, 'unknown_fraction': "
                "0.107676, 'no_speech_fraction': 0.0, 'silence_fraction': 0.246267}",
                "transitions: [(0, 512, 'silence'), (512, 1024, 'unknown'), (1024, 4096, "
                "'female'), (4096, 4755, 'silence')]")),
]


def household(corpus: str, members: int, enroll: int, named: str, unknown: str, confused: str,
              strangers: str) -> str:
    """One row of the household figures table: a cell of that corpus's run of the loop."""
    return (rf"(?m)^{corpus} test half: .*\n(?:(?!\w+ test half: ).*\n)*?"
            rf"\| {members} \| {enroll} \| 20 \| {re.escape(named)}% \| {re.escape(unknown)}% \| "
            rf"{re.escape(confused)}% \| {re.escape(strangers)}% \|")


# The household figures table of docs/household.md, row by row.
HOUSEHOLD_TABLE = (
    household("librispeech", 3, 3, "100.0", "0.0", "0.0", "0.3"),
    household("librispeech", 5, 3, "100.0", "0.0", "0.0", "0.0"),
    household("librispeech", 5, 1, "100.0", "0.0", "0.0", "0.0"),
    household("wuw_telephone", 1, 3, "72.5", "27.5", "0.0", "0.3"),
    household("wuw_telephone", 3, 3, "51.7", "48.3", "0.0", "0.5"),
    household("wuw_telephone", 10, 3, "34.5", "65.5", "0.0", "0.6"),
    household("speech_commands", 1, 3, "55.0", "45.0", "0.0", "0.0"),
    household("speech_commands", 10, 3, "21.5", "78.5", "0.0", "0.0"),
    # The last command, at a 5% stranger rate: its own run, after the loop's.
    r"(?m)false accept target 0\.05 per attempt\nwuw_telephone test half: .*\n(?:.*\n){2}"
    r"\| 1 \| 3 \| 20 \| 100\.0% \| 0\.0% \| 0\.0% \| 1\.1% \|.*\n"
    r"\| 3 \| 3 \| 20 \| 87\.5% \| 12\.5% \| 0\.0% \| 1\.4% \|.*\n"
    r"\| 10 \| 3 \| 20 \| 59\.2% \| 40\.0% \| 0\.8% \| 2\.6% \|",
)


# Without ../shared/data the harness runs figures commands on the 8 fixture clips instead; the
# household's 3-utterance enrolments need 4 clips of a speaker, which the fixtures do not have,
# and the pair figures need wuw_telephone and speech_commands too.
FIGURES_KIND = "figures" if (ROOT / SHARED_LIBRISPEECH).is_dir() else "elsewhere"
PAIR_FIGURES_KIND = ("figures" if (ROOT / "../shared/data/wuw_telephone").is_dir()
                     else "elsewhere")
# Figures commands embed hundreds of recordings each (about 1,300 for the household's, over
# 1,200 for the pair figures, twice); the budgets below are about five times what they took on
# the 2-core development machine with other jobs running.
FIGURES_BUDGET_S = 3000.0

EXAMPLES_HOUSEHOLD = [
    Example("export VOICEGATE_VOICEPRINT_KEY_FILE=", "shell"),
    Example("voicegate/voiceprint.key script/run", "service"),
    Example("-F external_id=alice", "shell",
            output=(r'"external_id":\s*"alice",.*"samples_added":\s*2,\s*"sample_count":\s*2',
                    r'"external_id":\s*"bob",.*"samples_added":\s*2,\s*"sample_count":\s*2',
                    # the sample answer the document shows
                    r'"match":\s*"alice",\s*"decision":\s*true,\s*"score":\s*13\.266081,',
                    r'"candidates":\s*\[\{"external_id":\s*"alice",\s*"score":\s*13\.266081,'
                    r'\s*"raw_score":\s*0\.829576\},\s*\{"external_id":\s*"bob",'
                    r'\s*"score":\s*-1\.726194,\s*"raw_score":\s*0\.059556\}\]',
                    r'"enrolled":\s*2', r'"name":\s*"3331-159605-0003\.flac",\s*"duration_s":'
                    r'\s*5\.575,\s*"speech_s":\s*4\.83')),
    Example("367-130732-0001.flac http://127.0.0.1:7070/identify", "shell",
            output=(r'"match":\s*null,\s*"decision":\s*false', r'"enrolled":\s*2')),
    Example("--household speech_commands --half test", FIGURES_KIND,
            output=HOUSEHOLD_TABLE, budget_s=FIGURES_BUDGET_S,
            why="needs LibriSpeech, wuw_telephone and speech_commands in ../shared/data"),
    Example("python -m analytic enrol bob", "shell",
            output=(r'"external_id":\s*"bob"', r'"samples_added":\s*1',
                    r'"sample_count":\s*3', r'"match":\s*"alice"', r'"decision":\s*true')),
]




EXAMPLES_HTTP = [
    Example("script/run\n", "service"),
    Example("/first_audio_file.wav/second_audio_file.wav/33466553786f48cb72faad7b2fb9d0952c97/",
            "shell",
            output=(r'(?m)^\{"RequestPostTopicUUID": ?\{"topic_name": ?'
                    r'"SIFIS:Privacy_Aware_Speaker_Verification_Results"',
                    r'"topic_uuid": ?"Speaker_Verification_Results"',
                    r'"requestor_id": ?"33466553786f48cb72faad7b2fb9d0952c97"',
                    r'"connected": ?true', r'"first_audio_file": ?"first_audio_file.wav"',
                    r'"Cosine Similarity": ?0\.\d+', r'"Result": ?"Same Speaker"')),
]

EXAMPLES_BUS = [
    Example("script/run      # HTTP and the bus adapter", "service"),
    Example('cd "$(mktemp -d)"', "shell"),
    Example("mosquitto_sub -t 'voicegate/verification/result' -t 'voicegate/error' -v", "watch"),
    Example("--request-id door-1", "shell",
            output=(r'"request_id": ?"door-1"', r'"decision": ?true'),
            watched=(r'(?m)^voicegate/verification/result \{"decision":true,'
                     r'.*"request_id":"door-1"',)),
    Example('"request_id":"door-2"', "shell",
            watched=(r'(?m)^voicegate/verification/result \{"decision":false,'
                     r'"result":"Different Speaker",.*"request_id":"door-2"',)),
    Example("--request-id door-3", "shell",
            output=(r'(?m)^voicegate/reply/hall hall-42 \{"decision":true,'
                    r'.*"request_id":"door-3"',)),
    Example("mosquitto_sub -t voicegate/status -C 1 -v", "shell", status=27,
            output=(r"(?m)^voicegate/status online$",
                    r"(?m)^homeassistant/binary_sensor/voicegate/last_decision/config \{",
                    r"(?m)^homeassistant/sensor/voicegate/last_score/config \{")),
    Example("mosquitto_sub -t 'voicegate/+/result' -t voicegate/error -t 'voicegate/speaker/+' -v",
            "watch"),
    Example('"request_id":"enrol-dad"', "shell",
            watched=(r'(?m)^voicegate/enrollment/result \{.*"request_id":"enrol-dad"',
                     r'(?m)^voicegate/enrollment/result \{.*"request_id":"enrol-mum"')),
    Example('"request_id":"who-1"', "shell",
            watched=(r'(?m)^voicegate/identify/result \{"match":"dad",.*"site":"kitchen"',
                     r'(?m)^voicegate/speaker/kitchen \{"speaker":"dad","score":')),
    Example('"request_id":"who-2"', "shell",
            output=(r'(?m)^voicegate/reply/hall hall-7 \{"match":null,"decision":false,',)),
    Example("mosquitto_sub -t 'voicegate/speaker/+' -v -W 2", "shell", status=27,
            output=(r'(?m)^voicegate/speaker/kitchen \{"speaker":"dad",',
                    r'(?m)^voicegate/speaker/hall \{"speaker":"unknown",',
                    r"(?m)^homeassistant/sensor/voicegate/speaker_kitchen/config \{",
                    r"(?m)^homeassistant/sensor/voicegate/speaker_hall/config \{")),
    Example("split -b 32000 clip.pcm chunk.", "shell",
            watched=(r'(?m)^voicegate/identify/result \{"match":"mum",.*"request_id":"stream-1"',
                     r'(?m)^voicegate/speaker/hall \{"speaker":"mum",')),
    Example('"request_id":"an-1"', "shell",
            watched=(r'(?m)^voicegate/analysis/result \{'
                     r'.*"male_fraction":1\.0.*"request_id":"an-1"',
                     r'(?m)^voicegate/error \{"request_id":"an-2","code":"bad_output_period"')),
    # The store is empty again, so a key can be added (docs/household.md) without the
    # unencrypted-store refusal.
    Example("curl -X DELETE http://127.0.0.1:7070/enrollments", "shell",
            output=(r'"deleted": ?2\b',)),
    Example("VOICEGATE_MQTT_CLIENT_ID=voicegate-kitchen script/run", "instances"),
]


def pair_figures(corpus: str, eer: str, threshold: str, fa: str, fr: str) -> str:
    """One corpus's run of the pair figures loop: its EER and its rates at the threshold."""
    return (rf"(?m)^== {corpus}\n(?:(?!== ).*\n)*?EER: {re.escape(eer)}% at threshold .*\n"
            rf"at threshold {re.escape(threshold)}: false accept {re.escape(fa)}%, "
            rf"false reject {re.escape(fr)}%\n")


PAIR_FIGURES = (
    pair_figures("librispeech", "0.00", "3.6975", "1.10", "0.00"),
    pair_figures("wuw_telephone", "2.24", "3.7160", "0.53", "18.55"),
    pair_figures("speech_commands", "35.44", "3.6975", "0.12", "64.01"),
    r"EER over the 3296 trials with no refused file: 6\.49%",
    r"5170 \(2576 target, 2594 non-target\) over 736 files, 156 refused by the intake",
)
NARROWBAND_FIGURES = (r"EER: 0\.00% at threshold",
                      r"at threshold 3\.7160: false accept 0\.00%, false reject 0\.00%")

EXAMPLES_MODELS = [
    Example(". .venv/bin/activate", "shell"),
    Example("bench/trials/${corpus}_test.csv", PAIR_FIGURES_KIND, output=PAIR_FIGURES,
            budget_s=FIGURES_BUDGET_S,
            why="needs LibriSpeech, wuw_telephone and speech_commands in ../shared/data"),
    Example("--test-sample-rate 8000", FIGURES_KIND, output=NARROWBAND_FIGURES,
            budget_s=FIGURES_BUDGET_S,
            why="needs LibriSpeech test-other in ../shared/data/librispeech"),
]

EXAMPLES_SECURITY = [
    Example("# mosquitto.conf\nallow_anonymous false", "elsewhere",
            why="an excerpt of a broker config: tests/test_bus_acl.py runs a Mosquitto with "
                "these three lines and mosquitto/acl.example "
                "(test_the_broker_excerpt_is_what_the_acl_test_runs)"),
]

EXAMPLES_CLI = [
    Example("python -m analytic serve [--host HOST]", "elsewhere",
            why="a synopsis ([...] are options): tests/test_cli.py runs verify and evaluate, "
                "tests/test_startup.py serve"),
    Example("$ VOICEGATE_PORT=abc voicegate serve", "elsewhere",
            why="tests/test_cli.py::test_a_bad_setting_is_one_line_naming_the_variable runs "
                "this setting and checks the line"),
]

EXAMPLES_ROBUSTNESS = [
    Example("--half test --conditions", "elsewhere",
            why="the whole table embeds the test half under 12 conditions (long); "
                "tests/test_evaluate.py runs --conditions through the command on fixtures"),
    Example("--conditions telephone,8khz [--mixed-low-cut 300]", "elsewhere",
            why="a synopsis ([...] is an option) of the experiment the table reports"),
]

EXAMPLES_LIVENESS = [
    Example("python bench/liveness.py --fsdd", "elsewhere",
            why="the liveness figures (about 10 minutes); tests/test_bench_liveness.py runs "
                "the bench on fixtures"),
]

EXAMPLES_PERFORMANCE = [
    Example("python bench/perf.py", "elsewhere",
            why="a benchmark: its figures are ratios measured on the machine that runs it, "
                "not a test's assertion"),
]

# Every manual in docs/ and the checks of its examples, in document order.
MANUALS = {
    "analysis.md": EXAMPLES_ANALYSIS,
    "bus.md": EXAMPLES_BUS,
    "cli.md": EXAMPLES_CLI,
    "configuration.md": [],
    "deployment.md": [],
    "household.md": EXAMPLES_HOUSEHOLD,
    "http.md": EXAMPLES_HTTP,
    "liveness.md": EXAMPLES_LIVENESS,
    "models.md": EXAMPLES_MODELS,
    "performance.md": EXAMPLES_PERFORMANCE,
    "robustness.md": EXAMPLES_ROBUSTNESS,
    "security.md": EXAMPLES_SECURITY,
}


def test_every_manual_is_listed():
    assert sorted(MANUALS) == sorted(p.name for p in DOCS.glob("*.md"))


@pytest.mark.parametrize("manual", sorted(MANUALS))
def test_every_example_has_a_check(manual):
    check_every_block_has_an_example(DOCS / manual, MANUALS[manual])


def test_the_broker_excerpt_is_what_the_acl_test_runs():
    (block,) = [b for b, e in paired(DOCS / "security.md", EXAMPLES_SECURITY)
                if e.key.startswith("# mosquitto.conf")]
    acl_test = (ROOT / "tests" / "test_bus_acl.py").read_text()
    for line in block.text.splitlines()[1:]:
        directive = line.split()[0]
        assert f"{directive} " in acl_test, f"tests/test_bus_acl.py does not set {directive}"


def test_the_analysis_walk_through(mqtt_broker, tmp_path):
    walk(DOCS / "analysis.md", EXAMPLES_ANALYSIS, mqtt_broker.port, tmp_path)


def test_the_http_walk_through(mqtt_broker, tmp_path):
    walk(DOCS / "http.md", EXAMPLES_HTTP, mqtt_broker.port, tmp_path)


# Three services start (the walk-through's, then a share group of two).
@pytest.mark.timeout(1800)
def test_the_bus_walk_through(mqtt_broker, tmp_path):
    walk(DOCS / "bus.md", EXAMPLES_BUS, mqtt_broker.port, tmp_path)


@pytest.mark.timeout(2 * FIGURES_BUDGET_S + 600)
def test_the_models_figures(mqtt_broker, tmp_path):
    walk(DOCS / "models.md", EXAMPLES_MODELS, mqtt_broker.port, tmp_path)


@pytest.mark.timeout(FIGURES_BUDGET_S + 900)
def test_the_household_walk_through(mqtt_broker, tmp_path):
    walk(DOCS / "household.md", EXAMPLES_HOUSEHOLD, mqtt_broker.port, tmp_path)
    # The key the document made is where it says, for its reader only, and it is the key the
    # service and the command line used: the store they wrote cannot be opened without it.
    from analytic.voiceprints.crypto import Sealer, load_key
    from analytic.voiceprints.store import StoreError, open_store

    key = tmp_path / "xdg-config" / "voicegate" / "voiceprint.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (key.parent.stat().st_mode & 0o777) == 0o700
    try:
        store = open_store(None, tmp_path / "data", Sealer(load_key(None, None)), "voicegate_")
    except StoreError as exc:
        assert "no key is configured" in str(exc)
    else:
        store.close()
        raise AssertionError("the household walk-through left an unencrypted store")
