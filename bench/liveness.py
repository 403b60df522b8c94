"""Liveness figures: digit reading, genuine attempts and replay attacks, split by speaker.

Everything goes through the real household service (``HouseholdService.verify`` with a
``challenge_id``, WAV bytes in, a fresh SQLite store in a temporary directory), so the figures
are what a door would see. Run from the repo root:

    python bench/liveness.py --fsdd ../shared/data/fsdd --librispeech ../shared/data/librispeech

Data and splits (fixed before any tuning; tune on ``--split dev`` only):

* FSDD (real people, 8 kHz, 6 male speakers, 5 takes of each digit): development speakers
  george, lucas, theo; test speakers jackson, nicolas, yweweler. Each member is enrolled
  (voiceprint and digit templates) from two recordings of "zero ... nine" made by joining
  takes 0 and 1 of each digit with short pauses; answers are made by joining takes 2-4.
* espeak-ng (synthetic, 16 kHz): one "member" per voice, enrolled from "zero, one, ..., nine"
  at 130 and 150 words a minute; answers at 140-175 words a minute and other pitches.
  Development voices en-us, en-gb; test voices en-us-nyc, en-gb-scotland, en-029.
* LibriSpeech test-other (16 kHz read speech): members enrolled from two utterances with no
  digit templates (the pocketsphinx fallback); their third utterance is the replay.

Printed per split: digit-string accuracy of each recogniser at 4 and 6 digits; genuine
4-digit attempts passing (speaker and digits) at the first try and within two tries; and the
pass rate of each replay attack (target 0).
"""

from __future__ import annotations

import argparse
import io
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analytic.cli.settings import Settings
from analytic.digits import WORDS, PocketsphinxDigits, TemplateDigits
from analytic.encoders import load_encoder
from analytic.household import HouseholdService, build_household
from analytic.schemas import ChallengeOptions, EnrolOptions, HouseholdOptions
from analytic.service import VerificationService
from analytic.voiceprints.crypto import Sealer
from analytic.voiceprints.store import SqliteVoiceprintStore

FSDD_SPLIT = {"dev": ["george", "lucas", "theo"], "test": ["jackson", "nicolas", "yweweler"]}
ESPEAK_SPLIT = {"dev": ["en-us", "en-gb"], "test": ["en-us-nyc", "en-gb-scotland", "en-029"]}
LIBRI_SPLIT = {"dev": ["1688", "2033", "2414", "1998", "3080"],
               "test": ["2609", "3005", "3331", "367", "533"]}
ENROL_TAKES, ANSWER_TAKES = (0, 1), (2, 3, 4)


def wav(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1, 1), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def join(parts: list[np.ndarray], rate: int, rng: random.Random) -> np.ndarray:
    """Digits with pauses of 0.15-0.4 s, 0.3 s before and after, a faint noise floor."""
    pieces = [np.zeros(int(0.3 * rate), np.float32)]
    for i, part in enumerate(parts):
        if i:
            pieces.append(np.zeros(int(rng.uniform(0.15, 0.4) * rate), np.float32))
        pieces.append(part.astype(np.float32))
    pieces.append(np.zeros(int(0.3 * rate), np.float32))
    out = np.concatenate(pieces)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 1e-4, out.size)
    return (out + noise).astype(np.float32)


@dataclass
class Speaker:
    """A source of speech: enrolment recordings and a way to say any digit string."""

    name: str
    rate: int
    enrol_digits: list[np.ndarray]  # recordings of "zero ... nine"
    say: Callable[[str, random.Random], np.ndarray]


def fsdd_speaker(root: Path, name: str) -> Speaker:
    takes = {d: [sf.read(root / "recordings" / f"{d}_{name}_{i}.wav", dtype="float32")[0]
                 for i in range(5)] for d in range(10)}
    seed = random.Random(name)
    enrol = [join([takes[d][i] for d in range(10)], 8000, seed) for i in ENROL_TAKES]

    def say(digits: str, rng: random.Random) -> np.ndarray:
        return join([takes[int(d)][rng.choice(ANSWER_TAKES)] for d in digits], 8000, rng)

    return Speaker(f"fsdd:{name}", 8000, enrol, say)


def espeak(text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
    out = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch),
                          "--stdout", text], capture_output=True, check=True).stdout
    samples, sr = sf.read(io.BytesIO(out), dtype="float32")
    return soxr.resample(samples, sr, 16000).astype(np.float32)


def espeak_speaker(voice: str) -> Speaker:
    seed = random.Random(voice)
    ten = ", ".join(WORDS)
    enrol = [join([espeak(ten, voice, r, 50)], 16000, seed) for r in (130, 150)]

    def say(digits: str, rng: random.Random) -> np.ndarray:
        text = ", ".join(WORDS[int(d)] for d in digits)
        return join([espeak(text, voice, rng.choice((140, 160, 175)),
                            rng.choice((40, 50, 60)))], 16000, rng)

    return Speaker(f"espeak:{voice}", 16000, enrol, say)


@dataclass
class Tally:
    passed: int = 0
    total: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, ok: bool) -> None:
        self.passed += int(ok)
        self.total += 1

    def __str__(self) -> str:
        if not self.total:
            return "n/a"
        return f"{self.passed}/{self.total} ({100 * self.passed / self.total:.1f}%)"


def random_digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def attempt(household: HouseholdService, member: str,
            answer: Callable[[str], tuple[np.ndarray, int]]) -> tuple[bool, bool, bool, str]:
    """One verify as a door does it: a fresh challenge for ``member``, then the recording
    ``answer`` makes for its digits. Returns (decision, speaker ok, digits ok, the digits)."""
    challenge = household.challenge(ChallengeOptions(external_id=member))
    digits = challenge.digits.replace(" ", "")
    audio, rate = answer(digits)
    result = household.verify(member, ("answer.wav", wav(audio, rate)),
                              HouseholdOptions(challenge_id=challenge.challenge_id))
    assert result.liveness is not None
    return result.decision, result.score >= result.threshold, result.liveness.passed, digits


def run(args: argparse.Namespace) -> None:
    settings = Settings(min_speech_s=0.5, liveness_fallback=True)
    service = VerificationService(settings, load_encoder(settings))
    rng = random.Random(16)
    pocketsphinx = PocketsphinxDigits()
    with tempfile.TemporaryDirectory() as where:
        store = SqliteVoiceprintStore(Path(where) / "v.sqlite", Sealer(None))
        household = build_household(service, store)
        speakers: list[Speaker] = []
        if args.fsdd:
            speakers += [fsdd_speaker(args.fsdd, n) for n in FSDD_SPLIT[args.split]]
        if args.espeak:
            speakers += [espeak_speaker(v) for v in ESPEAK_SPLIT[args.split]]
        for sp in speakers:
            recordings = [(f"{sp.name}-{i}.wav", wav(x, sp.rate))
                          for i, x in enumerate(sp.enrol_digits)]
            household.enrol(EnrolOptions(external_id=sp.name), recordings)
            household.enrol_digits(EnrolOptions(external_id=sp.name), recordings)
        corpora = sorted({sp.name.split(":")[0] for sp in speakers})
        for corpus in corpora:
            group = [sp for sp in speakers if sp.name.startswith(corpus + ":")]
            print(f"\n## {corpus}, {args.split} speakers: {', '.join(s.name for s in group)}")
            for n in (4, 6):
                acc = {"templates": Tally(), "pocketsphinx": Tally()}
                for sp in group:
                    templates = household.liveness.templates(sp.name)
                    assert templates is not None
                    reader = TemplateDigits(templates)
                    for _ in range(args.sequences):
                        digits = random_digits(rng, n)
                        audio = sp.say(digits, rng)
                        acc["templates"].add(reader.recognize(audio, sp.rate, n).digits == digits)
                        acc["pocketsphinx"].add(
                            pocketsphinx.recognize(audio, sp.rate, n).digits == digits)
                for name, tally in acc.items():
                    print(f"digit strings right, {n} digits, {name}: {tally}")
            first, within_two, speaker_ok, digits_ok = Tally(), Tally(), Tally(), Tally()
            earlier, other_voice, enrolment_replay = Tally(), Tally(), Tally()
            for sp in group:
                others = [o for o in group if o is not sp]
                for _ in range(args.attempts):
                    tries = []
                    for _try in range(2):
                        said: list[np.ndarray] = []

                        def genuine(digits: str, sp: Speaker = sp,
                                    said: list[np.ndarray] = said) -> tuple[np.ndarray, int]:
                            said.append(sp.say(digits, rng))
                            return said[-1], sp.rate

                        decision, spk, dig, digits = attempt(household, sp.name, genuine)
                        tries.append(decision)
                        if _try == 0:
                            speaker_ok.add(spk)
                            digits_ok.add(dig)
                        # this answer replayed against the next challenge (other digits)
                        earlier.add(attempt(household, sp.name,
                                            lambda _d, a=said[-1], r=sp.rate: (a, r))[0])
                        if decision:
                            break
                    first.add(tries[0])
                    within_two.add(any(tries))
                    # the right digits, said by another speaker of the same corpus
                    other = rng.choice(others)
                    other_voice.add(attempt(household, sp.name,
                                            lambda d, o=other: (o.say(d, rng), o.rate))[0])
                    # the member's own digit-enrolment recording replayed
                    take = rng.choice(sp.enrol_digits)
                    enrolment_replay.add(attempt(household, sp.name,
                                                 lambda _d, t=take, r=sp.rate: (t, r))[0])
            print(f"genuine 4-digit attempts, speaker check passed (first try): {speaker_ok}")
            print(f"genuine 4-digit attempts, digits read right (first try): {digits_ok}")
            print(f"genuine 4-digit attempts passed at the first try: {first}")
            print(f"genuine 4-digit attempts passed within two tries: {within_two}")
            print(f"attack: replay of an earlier answer (other digits): {earlier}")
            print(f"attack: the right digits by another speaker: {other_voice}")
            print(f"attack: replay of the member's digit-enrolment recording: {enrolment_replay}")
        if args.librispeech:
            libri_replays(household, args, rng)
        store.close()


def libri_replays(household: HouseholdService, args: argparse.Namespace,
                  rng: random.Random) -> None:
    """Members enrolled from read speech, no digit templates: replaying another of their
    recordings (other words) must fail, with the fallback recogniser and with templates."""
    root: Path = args.librispeech
    replay_fallback, replay_templates = Tally(), Tally()
    fsdd_members = [s for s in household.store.list() if s.external_id.startswith("fsdd:")]
    for speaker in LIBRI_SPLIT[args.split]:
        files = sorted((root / "test-other" / speaker).glob("*.flac"))[:6]
        member = f"libri:{speaker}"
        household.enrol(EnrolOptions(external_id=member),
                        [(f.name, f.read_bytes()) for f in files[:2]])
        for f in files[2:]:
            audio, rate = sf.read(f, dtype="float32")
            decision = attempt(household, member, lambda _d, a=audio, r=rate: (a, r))[0]
            replay_fallback.add(decision)
            # the same read speech against an FSDD member's digit templates (digit check only)
            for fsdd in fsdd_members:
                templates = household.liveness.templates(fsdd.external_id)
                assert templates is not None
                digits = random_digits(rng, 4)
                heard = TemplateDigits(templates).recognize(audio, rate, 4).digits
                replay_templates.add(heard == digits)
    names = ", ".join(LIBRI_SPLIT[args.split])
    print(f"\n## LibriSpeech test-other, {args.split} speakers: {names}")
    print("attack: replay of a member's enrolment-style recording (other words), "
          f"full decision, pocketsphinx fallback: {replay_fallback}")
    print("attack: read speech (other words) against FSDD members' digit templates, "
          f"digit check alone: {replay_templates}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fsdd", type=Path, default=None, help="../shared/data/fsdd")
    parser.add_argument("--librispeech", type=Path, default=None,
                        help="../shared/data/librispeech")
    parser.add_argument("--no-espeak", dest="espeak", action="store_false")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--sequences", type=int, default=20,
                        help="digit strings per speaker and length")
    parser.add_argument("--attempts", type=int, default=20,
                        help="genuine attempts (and attacks) per speaker")
    run(parser.parse_args())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
