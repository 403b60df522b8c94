"""The README is a walk-through that works: every example in it runs, as written, in order.

A new user clones the repository, runs ``script/run`` and types the README's commands into a
terminal. ``walk`` (``tests/walkthrough.py``) does the same: it starts the service with the
README's own ``script/run`` (so that set-up is exercised too) beside a Mosquitto of its own,
feeds every shell block to one bash in document order, and checks each block's answers, on
its own output and on the "watch in another shell" subscribers, against what the README says
they will be. Only the ports differ from what a reader types.

Every indented block of the README needs an entry in ``EXAMPLES``, matched by text only it holds,
so an example added without a check fails ``test_every_readme_example_has_a_check``. The few
that are not commands to run here (a directory listing, a config excerpt, a synopsis) say where
they are checked instead.
"""

from __future__ import annotations

import re

import pytest

from tests.walkthrough import (
    ROOT,
    Example,
    check_every_block_has_an_example,
    paired,
    walk,
)

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

README = ROOT / "README.md"
# The figures come from ../shared/data, beside the repository (CI has it); without it they are
# checked nowhere, and the walk-through says so.
FIGURES_KIND = "figures" if (ROOT / "../shared/data/wuw_telephone").is_dir() else "elsewhere"


def figures(corpus: str, eer: str, threshold: str, fa: str, fr: str) -> str:
    """One corpus's run of the pair figures loop: its EER and its rates at the threshold."""
    return (rf"(?m)^== {corpus}\n(?:(?!== ).*\n)*?EER: {re.escape(eer)}% at threshold .*\n"
            rf"at threshold {re.escape(threshold)}: false accept {re.escape(fa)}%, "
            rf"false reject {re.escape(fr)}%\n")


PAIR_FIGURES = (
    figures("librispeech", "0.00", "3.7625", "0.90", "0.00"),
    figures("wuw_telephone", "2.11", "3.9131", "0.39", "26.58"),
    figures("speech_commands", "35.63", "3.7625", "0.15", "72.83"),
    r"EER over the 3296 trials with no refused file: 10\.16%",
    r"5170 \(2576 target, 2594 non-target\) over 736 files, 156 refused by the intake",
)
NARROWBAND_FIGURES = (r"EER: 0\.10% at threshold",
                      r"at threshold 3\.9131: false accept 0\.60%, false reject 0\.00%")

EXAMPLES = [
    # Its first line starts the service; its second, script/test, is what CI runs (.ci/run),
    # and so what runs this test.
    Example("script/run      #", "service"),
    Example("-F file1=@tests/data/librispeech/2609-156975-0000.flac", "shell",
            output=(r'"decision": ?true', r'"result": ?"Same Speaker"',
                    r'"bandwidth": ?"wideband"')),
    Example("apt-get install mosquitto mosquitto-clients", "elsewhere",
            why="script/test (which CI runs) installs both with this apt-get line when missing; "
                "this test starts its own Mosquitto"),
    Example(". .venv/bin/activate", "shell"),
    Example("/first_audio_file.wav/second_audio_file.wav/33466553786f48cb72faad7b2fb9d0952c97/",
            "shell",
            output=(r'(?m)^\{"RequestPostTopicUUID": ?\{"topic_name": ?'
                    r'"SIFIS:Privacy_Aware_Speaker_Verification_Results"',
                    r'"topic_uuid": ?"Speaker_Verification_Results"',
                    r'"requestor_id": ?"33466553786f48cb72faad7b2fb9d0952c97"',
                    r'"connected": ?true', r'"first_audio_file": ?"first_audio_file.wav"',
                    r'"Cosine Similarity": ?0\.\d+', r'"Result": ?"Same Speaker"')),
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
    Example("VOICEGATE_MQTT_CLIENT_ID=voicegate-kitchen script/run", "instances"),
    Example("bench/trials/${corpus}_test.csv", FIGURES_KIND, output=PAIR_FIGURES,
            why="needs LibriSpeech, wuw_telephone and speech_commands in ../shared/data"),
    Example("--test-sample-rate 8000", FIGURES_KIND, output=NARROWBAND_FIGURES,
            why="needs LibriSpeech test-other in ../shared/data/librispeech"),
    Example("python -m analytic serve [--host HOST]", "elsewhere",
            why="a synopsis ([...] are options): tests/test_cli.py runs verify and evaluate, "
                "tests/test_startup.py serve"),
    Example("bus_adapter/     the MQTT door", "elsewhere",
            why="a directory listing: test_the_layout_lists_what_is_there checks it"),
    Example("# mosquitto.conf\nallow_anonymous false", "elsewhere",
            why="an excerpt of a broker config: tests/test_bus_acl.py runs a Mosquitto with "
                "these three lines and mosquitto/acl.example"),
]


def test_every_readme_example_has_a_check():
    check_every_block_has_an_example(README, EXAMPLES)


def test_the_layout_lists_what_is_there():
    (block,) = [b for b, e in paired(README, EXAMPLES) if e.key.startswith("bus_adapter/")]
    for line in block.text.splitlines():
        name = line.split()[0]
        assert (ROOT / name).exists(), f"README layout names {name}, which is not in the repo"


def test_the_broker_excerpt_is_what_the_acl_test_runs():
    (block,) = [b for b, e in paired(README, EXAMPLES) if e.key.startswith("# mosquitto.conf")]
    acl_test = (ROOT / "tests" / "test_bus_acl.py").read_text()
    for line in block.text.splitlines()[1:]:
        directive = line.split()[0]
        assert f"{directive} " in acl_test, f"tests/test_bus_acl.py does not set {directive}"


# Its figures commands embed about 1,200 recordings; a machine five times slower than the
# development one needs well over the suite's 300 s default.
@pytest.mark.timeout(1800)
def test_the_readme_walk_through(mqtt_broker, tmp_path, new_files_removed):
    walk(README, EXAMPLES, mqtt_broker.port, tmp_path)
