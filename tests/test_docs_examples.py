"""The manuals in docs/ are walk-throughs that work: every example runs, as written, in order.

Like ``tests/test_readme.py`` for the README: ``walk`` (``tests/walkthrough.py``) starts the
service the way a document says (``script/run``) beside a Mosquitto of its own, feeds every
shell and Python block to one bash in document order, and checks each block's answers against
what the text says they will be. Only the ports (and the data folder) differ from what a reader
types. Every runnable block needs an entry in its document's list, matched by text only it
holds, so an example added without a check fails ``test_every_<doc>_example_has_a_check``.

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
    walk,
)

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

ANALYSIS = ROOT / "docs" / "analysis.md"
HOUSEHOLD = ROOT / "docs" / "household.md"


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
    household("librispeech", 3, 3, "100.0", "0.0", "0.0", "0.5"),
    household("librispeech", 5, 3, "100.0", "0.0", "0.0", "0.8"),
    household("librispeech", 5, 1, "100.0", "0.0", "0.0", "0.8"),
    household("wuw_telephone", 1, 3, "60.0", "40.0", "0.0", "0.3"),
    household("wuw_telephone", 3, 3, "35.0", "65.0", "0.0", "0.4"),
    household("wuw_telephone", 10, 3, "24.2", "75.8", "0.0", "0.5"),
    household("speech_commands", 1, 3, "36.0", "64.0", "0.0", "0.0"),
    household("speech_commands", 10, 3, "14.3", "85.7", "0.0", "0.0"),
    # The last command, at a 5% stranger rate: its own run, after the loop's.
    r"(?m)false accept target 0\.05 per attempt\nwuw_telephone test half: .*\n(?:.*\n){2}"
    r"\| 1 \| 3 \| 20 \| 95\.0% \| 5\.0% \| 0\.0% \| 1\.3% \|.*\n"
    r"\| 3 \| 3 \| 20 \| 80\.8% \| 19\.2% \| 0\.0% \| 1\.0% \|.*\n"
    r"\| 10 \| 3 \| 20 \| 54\.5% \| 45\.0% \| 0\.5% \| 1\.9% \|",
)


# Without ../shared/data the harness runs figures commands on the 8 fixture clips instead; the
# loop's 3-utterance enrolments need 4 clips of a speaker, which the fixtures do not have.
FIGURES_KIND = "figures" if (ROOT / SHARED_LIBRISPEECH).is_dir() else "elsewhere"

EXAMPLES_HOUSEHOLD = [
    Example("export VOICEGATE_VOICEPRINT_KEY_FILE=", "shell"),
    Example("voicegate/voiceprint.key script/run", "service"),
    Example("-F external_id=alice", "shell",
            output=(r'"external_id":\s*"alice",.*"samples_added":\s*2,\s*"sample_count":\s*2',
                    r'"external_id":\s*"bob",.*"samples_added":\s*2,\s*"sample_count":\s*2',
                    # the sample answer the document shows
                    r'"match":\s*"alice",\s*"decision":\s*true,\s*"score":\s*10\.815417,',
                    r'"candidates":\s*\[\{"external_id":\s*"alice",\s*"score":\s*10\.815417,'
                    r'\s*"raw_score":\s*0\.856195\},\s*\{"external_id":\s*"bob",'
                    r'\s*"score":\s*-1\.377888,\s*"raw_score":\s*0\.374529\}\]',
                    r'"enrolled":\s*2', r'"name":\s*"3331-159605-0003\.flac",\s*"duration_s":'
                    r'\s*5\.575,\s*"speech_s":\s*4\.83')),
    Example("367-130732-0001.flac http://127.0.0.1:7070/identify", "shell",
            output=(r'"match":\s*null,\s*"decision":\s*false', r'"enrolled":\s*2')),
    Example("for corpus in librispeech wuw_telephone speech_commands; do", FIGURES_KIND,
            output=HOUSEHOLD_TABLE,
            why="needs LibriSpeech, wuw_telephone and speech_commands in ../shared/data"),
    Example("python -m analytic enroll bob", "shell",
            output=(r'"external_id":\s*"bob"', r'"samples_added":\s*1',
                    r'"sample_count":\s*3', r'"match":\s*"alice"', r'"decision":\s*true')),
]


def test_every_analysis_example_has_a_check():
    check_every_block_has_an_example(ANALYSIS, EXAMPLES_ANALYSIS)


def test_every_household_example_has_a_check():
    check_every_block_has_an_example(HOUSEHOLD, EXAMPLES_HOUSEHOLD)


def test_the_analysis_walk_through(mqtt_broker, tmp_path, new_files_removed):
    walk(ANALYSIS, EXAMPLES_ANALYSIS, mqtt_broker.port, tmp_path)


# The household figures embed both test halves' recordings of three corpora (about 1,300);
# a machine five times slower than the development one needs more than the default 300 s.
@pytest.mark.timeout(1800)
def test_the_household_walk_through(mqtt_broker, tmp_path, new_files_removed):
    walk(HOUSEHOLD, EXAMPLES_HOUSEHOLD, mqtt_broker.port, tmp_path)
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
