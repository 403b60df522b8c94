"""Liveness on real HTTP (waitress) and in the core: spoken random-digit challenges.

Speech: FSDD (real people, 8 kHz) when staged, espeak-ng always (tests/digit_speech.py).
Replays must fail: the same answer against a new challenge, the member's enrolment recording,
and the right digits said by someone else.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import requests

from analytic.challenges import ChallengeRegistry
from analytic.cli.settings import Settings
from analytic.digits import (
    TemplateDigits,
    digit_templates,
    pack_templates,
    segments,
    to_band,
    unpack_templates,
)
from analytic.errors import NotFound
from analytic.service import VerificationService
from analytic.web.app import create_app
from tests.conftest import MALE_A, free_port, serve_in_thread
from tests.digit_speech import Espeak, Fsdd

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60


# --- challenges (the clock is a fake: nothing here waits) ---


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_challenge_is_random_and_used_once() -> None:
    registry = ChallengeRegistry(length=4, ttl_s=30, max_open=10)
    issued = [registry.issue() for _ in range(5)]
    assert len({c.challenge_id for c in issued}) == 5
    assert all(len(c.challenge_id) >= 24 for c in issued)
    assert all(len(c.digits) == 4 and c.digits.isdigit() for c in issued)
    assert registry.take(issued[0].challenge_id) == issued[0]
    with pytest.raises(NotFound):
        registry.take(issued[0].challenge_id)
    with pytest.raises(NotFound):
        registry.take("not-a-challenge")


def test_a_challenge_expires() -> None:
    clock = FakeClock()
    registry = ChallengeRegistry(length=6, ttl_s=30, max_open=10, clock=clock)
    old, fresh = registry.issue(), None
    clock.now += 20
    fresh = registry.issue()
    clock.now += 11  # old is 31 s old, fresh 11 s
    with pytest.raises(NotFound):
        registry.take(old.challenge_id)
    assert registry.take(fresh.challenge_id).digits == fresh.digits
    assert len(fresh.digits) == 6


def test_open_challenges_are_bounded() -> None:
    clock = FakeClock()
    registry = ChallengeRegistry(length=4, ttl_s=30, max_open=2, clock=clock)
    registry.issue()
    registry.issue()
    with pytest.raises(Exception) as refused:
        registry.issue()
    assert getattr(refused.value, "code", None) == "busy"
    clock.now += 31  # both expired: room again
    registry.issue()


# --- the digit reader on speech ---


def test_templates_read_a_new_answer_and_survive_storage() -> None:
    voice = Espeak("en-us")
    import io

    import soundfile as sf

    samples, rate = sf.read(io.BytesIO(voice.ten(150)), dtype="float32")
    templates = digit_templates(samples, rate)
    assert templates is not None
    templates = unpack_templates(pack_templates(templates))
    for digits, speed in (("4719", 175), ("802365", 140)):
        answer, rate = sf.read(io.BytesIO(voice.say(digits, speed, 60)), dtype="float32")
        assert TemplateDigits(templates).recognize(answer, rate, len(digits)).digits == digits


def test_segments_find_each_spoken_digit_of_real_speech() -> None:
    import io

    import soundfile as sf

    speaker = Fsdd("lucas")
    samples, rate = sf.read(io.BytesIO(speaker.say("31415", seed=3)), dtype="float32")
    assert len(segments(to_band(samples, rate))) == 5


# --- over HTTP ---


@pytest.fixture(scope="module")
def liveness_url(encoder, tmp_path_factory) -> Iterator[str]:
    # Challenges outlive a machine five times slower than this one (expiry has its own test,
    # on a fake clock): a 30 s lifetime would make these tests depend on wall-clock speed.
    settings = Settings(port=free_port(), data_dir=str(tmp_path_factory.mktemp("liveness")),
                        min_speech_s=0.5, challenge_ttl_s=1800)
    yield from serve_in_thread(create_app(VerificationService(settings, encoder)), settings)


@pytest.fixture
def url(liveness_url) -> str:
    assert requests.delete(liveness_url + "/enrollments", timeout=TIMEOUT).status_code == 200
    return liveness_url


def enrol_member(url: str, member: str, recordings: list[bytes]) -> None:
    files = [("file", (f"{member}-{i}.wav", data)) for i, data in enumerate(recordings)]
    response = requests.post(url + "/enrollments", data={"external_id": member}, files=files,
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    response = requests.post(f"{url}/enrollments/{member}/digits", files=files, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json()["templates_per_digit"] == len(recordings)


def challenge(url: str, member: str | None = None) -> dict:
    response = requests.post(url + "/challenges",
                             data={"external_id": member} if member else {}, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    body = response.json()
    assert len(body["digits"].split()) == 4 and body["expires_in_s"] == 1800  # the servers here
    return body


def verify(url: str, member: str, audio: bytes, challenge_id: str | None) -> requests.Response:
    data = {"challenge_id": challenge_id} if challenge_id else {}
    return requests.post(f"{url}/enrollments/{member}/verify", data=data,
                         files={"file": ("answer.wav", audio)}, timeout=TIMEOUT)


def test_fsdd_member_passes_and_every_replay_fails(url) -> None:
    """Real people: george answers his challenges; replays and jackson's voice do not pass."""
    george, jackson = Fsdd("george"), Fsdd("jackson")
    enrol_member(url, "george", [george.ten(0), george.ten(1)])
    enrol_member(url, "jackson", [jackson.ten(0), jackson.ten(1)])

    asked = challenge(url, "george")
    answer = george.say(asked["digits"], seed=1)
    body = verify(url, "george", answer, asked["challenge_id"]).json()
    assert body["liveness"] == {"passed": True, "expected": asked["digits"],
                                "heard": asked["digits"], "recogniser": "templates",
                                "fits_templates": True}
    assert body["decision"] is True

    # the same challenge again: used up
    again = verify(url, "george", answer, asked["challenge_id"])
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"

    # that answer replayed against a new challenge (other digits)
    new = challenge(url, "george")
    assert new["digits"] != asked["digits"]  # 1 in 10,000 would be a flaky coincidence
    replayed = verify(url, "george", answer, new["challenge_id"]).json()
    assert replayed["liveness"]["passed"] is False and replayed["decision"] is False
    assert replayed["score"] >= replayed["threshold"]  # the voice is george's: digits refuse it

    # his digit-enrolment recording replayed
    new = challenge(url, "george")
    replayed = verify(url, "george", george.ten(0), new["challenge_id"]).json()
    assert replayed["decision"] is False and replayed["liveness"]["passed"] is False

    # the right digits, said by jackson
    new = challenge(url, "george")
    other = verify(url, "george", jackson.say(new["digits"], seed=2), new["challenge_id"]).json()
    assert other["decision"] is False

    # a challenge issued for jackson cannot be used for george
    for_jackson = challenge(url, "jackson")
    wrong = verify(url, "george", george.say(for_jackson["digits"], seed=4),
                   for_jackson["challenge_id"]).json()
    assert wrong["liveness"]["passed"] is False and wrong["decision"] is False


def test_espeak_member_verify_and_identify_with_a_challenge(url) -> None:
    voice = Espeak("en-us")
    enrol_member(url, "robot", [voice.ten(130), voice.ten(150)])

    asked = challenge(url)
    body = verify(url, "robot", voice.say(asked["digits"], 175, 60), asked["challenge_id"]).json()
    assert body["liveness"]["passed"] is True and body["decision"] is True

    asked = challenge(url)
    response = requests.post(url + "/identify", data={"challenge_id": asked["challenge_id"]},
                             files={"file": ("a.wav", voice.say(asked["digits"], 140))},
                             timeout=TIMEOUT)
    body = response.json()
    assert body["match"] == "robot" and body["decision"] is True
    assert body["liveness"]["passed"] is True

    # an identification with the wrong digits names nobody
    asked = challenge(url)
    wrong = "".join(str((int(d) + 1) % 10) for d in asked["digits"].split())
    response = requests.post(url + "/identify", data={"challenge_id": asked["challenge_id"]},
                             files={"file": ("a.wav", voice.say(wrong, 160))}, timeout=TIMEOUT)
    body = response.json()
    assert body["match"] is None and body["decision"] is False
    assert body["liveness"]["passed"] is False
    assert body["candidates"][0]["external_id"] == "robot"

    # the right digits in another synthetic voice: they do not sound like robot's templates
    asked = challenge(url, "robot")
    other = verify(url, "robot", Espeak("en-gb-x-rp").say(asked["digits"], 160),
                   asked["challenge_id"]).json()
    assert other["liveness"]["fits_templates"] is False
    assert other["liveness"]["passed"] is False and other["decision"] is False

    # without a challenge: today's behaviour, no liveness field
    plain = verify(url, "robot", voice.say("1234"), None).json()
    assert plain["liveness"] is None and plain["decision"] is True


def test_read_speech_replay_fails_for_a_member_without_templates(url) -> None:
    """A LibriSpeech member (no digit templates: the pocketsphinx fallback) replayed."""
    files = [("file", (p.name, p.read_bytes())) for p in MALE_A[:2]]
    assert requests.post(url + "/enrollments", data={"external_id": "dad"}, files=files,
                         timeout=TIMEOUT).status_code == 200
    asked = challenge(url, "dad")
    body = verify(url, "dad", MALE_A[2].read_bytes(), asked["challenge_id"]).json()
    assert body["score"] >= body["threshold"]  # the right voice ...
    assert body["liveness"]["recogniser"] == "pocketsphinx"
    assert body["liveness"]["passed"] is False and body["decision"] is False  # ... other words


def test_refusals(url) -> None:
    voice = Espeak("en-us")
    # digit templates need an enrolled member and ten spoken parts
    response = requests.post(f"{url}/enrollments/nobody/digits",
                             files={"file": ("a.wav", voice.ten())}, timeout=TIMEOUT)
    assert response.status_code == 404
    files = [("file", (p.name, p.read_bytes())) for p in MALE_A[:1]]
    assert requests.post(url + "/enrollments", data={"external_id": "dad"}, files=files,
                         timeout=TIMEOUT).status_code == 200
    response = requests.post(f"{url}/enrollments/dad/digits",
                             files={"file": ("a.wav", voice.say("123"))}, timeout=TIMEOUT)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_digits"
    # a challenge for someone not enrolled; a malformed challenge id
    response = requests.post(url + "/challenges", data={"external_id": "nobody"},
                             timeout=TIMEOUT)
    assert response.status_code == 404
    response = verify(url, "dad", MALE_A[1].read_bytes(), "bad id!")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_field"


def test_models_lists_liveness(url) -> None:
    body = requests.get(url + "/models", timeout=TIMEOUT).json()
    assert body["liveness"]["supported"] is True
    assert body["liveness"]["recognisers"] == ["templates", "pocketsphinx"]
    assert body["liveness"]["digits"] == 4 and body["liveness"]["required"] is False


def test_a_challenge_can_be_required(encoder, tmp_path) -> None:
    settings = Settings(port=free_port(), data_dir=str(tmp_path), liveness_required=True,
                        challenge_digits=6, challenge_ttl_s=1800)
    for base in serve_in_thread(create_app(VerificationService(settings, encoder)), settings):
        files = [("file", (p.name, p.read_bytes())) for p in MALE_A[:1]]
        assert requests.post(base + "/enrollments", data={"external_id": "dad"}, files=files,
                             timeout=TIMEOUT).status_code == 200
        for response in (
            verify(base, "dad", MALE_A[1].read_bytes(), None),
            requests.post(base + "/identify", files={"file": MALE_A[1].read_bytes()},
                          timeout=TIMEOUT),
        ):
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "challenge_required"
        asked = requests.post(base + "/challenges", timeout=TIMEOUT).json()
        assert len(asked["digits"].split()) == 6
        body = verify(base, "dad", MALE_A[1].read_bytes(), asked["challenge_id"]).json()
        assert body["decision"] is False and body["liveness"]["passed"] is False
        assert requests.get(base + "/models", timeout=TIMEOUT).json()["liveness"]["required"]


def test_templates_are_sealed_and_forgotten_with_the_member(store_factory) -> None:
    """Digit templates are derived from a voice: encrypted at rest, deleted with the member."""
    from tests.conftest import TEST_KEY

    store = store_factory(TEST_KEY)
    store.add_samples("alice", "ge2e", np.ones((1, 4), np.float32))
    blob = pack_templates({str(d): [np.full((24, 5), d, np.float32)] for d in range(10)})
    store.set_digit_templates("alice", blob)
    assert store.digit_templates("alice") == blob
    if store_factory.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(store_factory.path) as conn:
            (stored,) = conn.execute(
                f"SELECT templates FROM {store_factory.prefix}digit_templates").fetchone()
        assert bytes(stored) != blob and b"d0_0" not in bytes(stored)
    store.delete("alice")
    assert store.digit_templates("alice") is None
