"""Household voiceprints on real speech: enrol, verify, identify, forget (HTTP, in-process)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from analytic.calibration import load_calibration
from analytic.cli.settings import Settings
from analytic.errors import Conflict
from analytic.household import HouseholdService, build_household
from analytic.logs import JsonFormatter
from analytic.schemas import EnrolOptions, HouseholdOptions
from analytic.service import VerificationService
from analytic.voiceprints.store import StoreError
from analytic.web.app import create_app
from tests import audio_factory as make
from tests.conftest import (
    FEMALE_A,
    FEMALE_STRANGER,
    MALE_A,
    MALE_STRANGER,
    TEST_KEY,
    free_port,
    serve_in_thread,
)

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60


def recording(path: Path) -> tuple[str, bytes]:
    return path.name, path.read_bytes()


@pytest.fixture(scope="module")
def household_url(encoder, tmp_path_factory) -> Iterator[str]:
    settings = Settings(port=free_port(), data_dir=str(tmp_path_factory.mktemp("household")),
                        max_enrol_files=3)
    yield from serve_in_thread(create_app(VerificationService(settings, encoder)), settings)


@pytest.fixture
def url(household_url) -> str:
    """The shared server, with nobody enrolled."""
    assert requests.delete(household_url + "/enrollments", timeout=TIMEOUT).status_code == 200
    return household_url


def enrol(url: str, external_id: str, paths: list[Path], **fields) -> requests.Response:
    return requests.post(url + "/enrollments", data={"external_id": external_id, **fields},
                         files=[("file", (p.name, p.read_bytes())) for p in paths],
                         timeout=TIMEOUT)


def identify(url: str, path: Path) -> dict:
    response = requests.post(url + "/identify", files={"file": path.read_bytes()},
                             timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def verify(url: str, external_id: str, path: Path) -> requests.Response:
    return requests.post(f"{url}/enrollments/{external_id}/verify",
                         files={"file": path.read_bytes()}, timeout=TIMEOUT)


def enrol_household(url: str) -> None:
    for external_id, clips in (("dad", MALE_A[:2]), ("mum", FEMALE_A[:2])):
        response = enrol(url, external_id, clips)
        assert response.status_code == 200, response.text


# --- the scenarios, over HTTP --------------------------------------------------------

def test_identify_names_members_and_calls_a_stranger_unknown(url):
    enrol_household(url)
    dad = identify(url, MALE_A[2])
    assert (dad["match"], dad["decision"]) == ("dad", True)
    assert dad["score"] >= dad["threshold"]
    assert [c["external_id"] for c in dad["candidates"]] == ["dad", "mum"]
    assert dad["score_norm"] == "asnorm" and dad["enrolled"] == 2
    assert identify(url, FEMALE_A[2])["match"] == "mum"
    for stranger in (MALE_STRANGER, FEMALE_STRANGER):
        body = identify(url, stranger)
        assert (body["match"], body["decision"]) == (None, False)
        assert body["score"] < body["threshold"]
        assert body["candidates"]  # the nearest members are still shown, with their scores


def test_verify_accepts_the_person_and_rejects_the_other(url):
    enrol_household(url)
    accepted = verify(url, "dad", MALE_A[2]).json()
    assert accepted["decision"] is True and accepted["score"] >= accepted["threshold"]
    assert accepted["external_id"] == "dad" and accepted["model"] == "campplus"
    assert 0 < accepted["raw_score"] <= 1 and accepted["confidence"] > 0.5
    for external_id, path in (("mum", MALE_A[2]), ("dad", FEMALE_A[2]), ("dad", MALE_STRANGER),
                              ("mum", FEMALE_STRANGER)):
        rejected = verify(url, external_id, path).json()
        assert rejected["decision"] is False, (external_id, path.name)
        assert rejected["score"] < rejected["threshold"]


def test_delete_removes_the_person_from_identify(url):
    enrol_household(url)
    assert identify(url, MALE_A[2])["match"] == "dad"
    deleted = requests.delete(url + "/enrollments/dad", timeout=TIMEOUT)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 1}
    after = identify(url, MALE_A[2])
    assert after["match"] is None
    assert [c["external_id"] for c in after["candidates"]] == ["mum"]
    assert requests.get(url + "/enrollments/dad", timeout=TIMEOUT).status_code == 404
    assert verify(url, "dad", MALE_A[2]).status_code == 404


def test_enrolments_add_replace_list_and_forget_everyone(url):
    first = enrol(url, "dad", MALE_A[:1]).json()
    assert (first["samples_added"], first["sample_count"], first["replaced"]) == (1, 1, False)
    assert enrol(url, "dad", MALE_A[1:3]).json()["sample_count"] == 3  # a second call adds
    replaced = enrol(url, "dad", MALE_A[2:3], replace="true").json()
    assert (replaced["sample_count"], replaced["replaced"]) == (1, True)
    enrol(url, "mum", FEMALE_A[:1])
    listing = requests.get(url + "/enrollments", timeout=TIMEOUT).json()
    assert listing["count"] == 2
    calibrated = load_calibration("campplus").scale("asnorm_wideband").threshold_at(0.01)
    assert (listing["score_norm"], listing["threshold"]) == ("asnorm", round(calibrated, 4))
    assert [p["external_id"] for p in listing["enrollments"]] == ["dad", "mum"]
    one = requests.get(url + "/enrollments/dad", timeout=TIMEOUT).json()
    assert one["sample_count"] == 1 and one["encoder"] == "campplus"
    assert one["created_at"] <= one["updated_at"]
    assert one["samples"] is None and one["centroid"] is None  # no vectors by default
    forbidden = requests.get(url + "/enrollments/dad", params={"export": "true"}, timeout=TIMEOUT)
    assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
    cleared = requests.delete(url + "/enrollments", timeout=TIMEOUT)
    assert cleared.json() == {"deleted": 2}
    assert requests.get(url + "/enrollments", timeout=TIMEOUT).json()["count"] == 0


def error(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_status_codes(url):
    assert error(verify(url, "nobody", MALE_A[0])) == (404, "not_found")
    no_file = requests.post(url + "/enrollments/nobody/verify", timeout=TIMEOUT)
    assert error(no_file) == (404, "not_found")
    assert error(requests.get(url + "/enrollments/nobody", timeout=TIMEOUT)) == (404, "not_found")
    assert error(requests.delete(url + "/enrollments/nobody", timeout=TIMEOUT)) == (
        404, "not_found")
    bad_audio = requests.post(url + "/enrollments", data={"external_id": "dad"},
                              files=[("file", MALE_A[0].read_bytes()), ("file", b"not audio")],
                              timeout=TIMEOUT)
    assert error(bad_audio) == (415, "unsupported_audio")
    silent = requests.post(url + "/enrollments", data={"external_id": "dad"},
                           files={"file": make.silence(2.0)}, timeout=TIMEOUT)
    assert error(silent) == (422, "no_speech")
    assert error(requests.get(url + "/enrollments/dad", timeout=TIMEOUT)) == (404, "not_found")
    assert error(enrol(url, "", MALE_A[:1])) == (400, "bad_field")
    assert error(enrol(url, "dad", MALE_A[:1], replace="maybe")) == (400, "bad_field")
    assert error(enrol(url, "dad", [])) == (400, "missing_file")
    assert error(enrol(url, "dad", [*MALE_A, FEMALE_A[0]])) == (400, "too_many_files")
    enrol(url, "dad", MALE_A[:1])
    assert error(requests.post(url + "/identify", timeout=TIMEOUT)) == (400, "missing_file")
    bad_threshold = requests.post(url + "/identify", data={"threshold": "high"},
                                  files={"file": MALE_A[1].read_bytes()}, timeout=TIMEOUT)
    assert error(bad_threshold) == (400, "bad_field")
    lenient = requests.post(url + "/identify", data={"threshold": "-100"},
                            files={"file": MALE_STRANGER.read_bytes()}, timeout=TIMEOUT).json()
    assert lenient["threshold"] == -100 and lenient["match"] == "dad"
    assert error(identify_stream(url, "no-such-session")) == (404, "not_found")


def identify_stream(url: str, session: str) -> requests.Response:
    return requests.post(url + "/identify", data={"stream": session}, timeout=TIMEOUT)


def test_identify_with_nobody_enrolled_is_unknown(url):
    body = identify(url, MALE_A[0])
    assert (body["match"], body["score"], body["candidates"], body["enrolled"]) == (
        None, None, [], 0)


# --- in-process: the same service on SQLite and on PostgreSQL --------------------------------

def test_the_household_on_each_store(encoder, store_factory):
    service = HouseholdService(VerificationService(Settings(), encoder), store_factory())
    service.enrol(EnrolOptions(external_id="dad"), [recording(p) for p in MALE_A[:2]])
    service.enrol(EnrolOptions(external_id="mum"), [recording(p) for p in FEMALE_A[:2]])
    assert service.identify(recording(MALE_A[2])).match == "dad"
    assert service.identify(recording(FEMALE_A[2])).match == "mum"
    assert service.identify(recording(MALE_STRANGER)).match is None
    assert service.verify("dad", recording(MALE_A[2])).decision is True
    assert service.verify("mum", recording(MALE_A[2])).decision is False
    service.delete("dad")
    assert service.identify(recording(MALE_A[2])).match is None
    assert service.delete_all().deleted == 1


def test_another_instance_enrolling_or_deleting_is_seen_by_the_next_identify(
        encoder, store_factory, monkeypatch):
    """Two instances on one store (one SQLite file, or one PostgreSQL database): the members
    this one holds in memory are reloaded when, and only when, the other changes them."""
    verification = VerificationService(Settings(), encoder)
    here = HouseholdService(verification, store_factory(TEST_KEY))
    there = HouseholdService(verification, store_factory(TEST_KEY))
    loads = []
    snapshot = here.store.snapshot
    monkeypatch.setattr(here.store, "snapshot",
                        lambda enc, held: loads.append(enc) or snapshot(enc, held))
    male, female = recording(MALE_A[2]), recording(FEMALE_A[2])

    assert here.identify(male).enrolled == 0
    there.enrol(EnrolOptions(external_id="dad"), [recording(p) for p in MALE_A[:2]])
    there.enrol(EnrolOptions(external_id="mum"), [recording(p) for p in FEMALE_A[:2]])
    assert (here.identify(male).match, here.identify(female).match) == ("dad", "mum")
    assert len(loads) == 2  # nobody enrolled, then both; not once per request
    decrypted = []
    unseal = here.store._voiceprint
    monkeypatch.setattr(here.store, "_voiceprint", lambda row: decrypted.append(row[0])
                        or unseal(row))
    there.enrol(EnrolOptions(external_id="kid"), [recording(MALE_STRANGER)])
    assert here.identify(female).enrolled == 3
    assert decrypted == ["kid"]  # the reload decrypts only what was written since
    there.delete("kid")

    there.delete("dad")
    gone = here.identify(male)
    assert gone.match is None and gone.enrolled == 1
    assert [c.external_id for c in gone.candidates] == ["mum"]  # never named, nor a candidate

    # Same ids and count, other samples: still seen.
    there.enrol(EnrolOptions(external_id="mum", replace=True),
                [recording(p) for p in MALE_A[:2]])
    assert here.identify(male).match == "mum"
    assert here.identify(female).match is None
    there.delete_all()
    assert here.identify(male).enrolled == 0
    assert len(loads) == 6


def test_nothing_decrypted_is_written_anywhere(encoder, tmp_path):
    """The members held in memory for identify stay there: after enrolling and identifying,
    no file in the data directory (database, journal, anything new) holds a clear vector."""
    settings = Settings(data_dir=str(tmp_path), voiceprint_key=TEST_KEY)
    service = build_household(VerificationService(settings, encoder))
    service.enrol(EnrolOptions(external_id="dad"), [recording(p) for p in MALE_A[:2]])
    service.enrol(EnrolOptions(external_id="mum"), [recording(p) for p in FEMALE_A[:2]])
    for probe in (MALE_A[2], FEMALE_A[2], MALE_STRANGER):
        service.identify(recording(probe))
    held = service.members.household(service.encoder.name)
    assert held.members == 2 and not held.samples.flags.writeable
    needles = [row.astype(np.float32).tobytes()[:32] for row in held.samples]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p.name for p in files] == ["voiceprints.sqlite"]
    for path in files:
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), path
    service.close()


def test_raw_cosine_when_normalisation_is_off(encoder, tmp_path):
    settings = Settings(data_dir=str(tmp_path), score_norm="none")
    service = build_household(VerificationService(settings, encoder))
    calibrated = load_calibration("campplus").scale("none_wideband").threshold_at(0.01)
    assert (service.score_norm, service.threshold) == ("none", round(calibrated, 4))
    service.enrol(EnrolOptions(external_id="dad"), [recording(p) for p in MALE_A[:2]])
    found = service.identify(recording(MALE_A[2]))
    assert (found.match, found.score_norm) == ("dad", "none")
    assert found.score == found.candidates[0].raw_score
    assert service.identify(recording(MALE_STRANGER)).match is None
    service.close()


def test_an_encrypted_store_cannot_be_read_without_its_key(encoder, tmp_path):
    settings = Settings(data_dir=str(tmp_path), voiceprint_key=TEST_KEY)
    service = build_household(VerificationService(settings, encoder))
    service.enrol(EnrolOptions(external_id="dad"), [recording(p) for p in MALE_A[:2]])
    vectors = service.store.get("dad")
    service.close()

    database = tmp_path / "voiceprints.sqlite"
    assert database.stat().st_mode & 0o777 == 0o600  # the owner's alone
    raw = database.read_bytes()
    for vector in [*vectors.samples, vectors.centroid]:
        assert vector.astype(np.float32).tobytes()[:32] not in raw
    with sqlite3.connect(database) as conn:
        (blob,) = conn.execute("SELECT vectors FROM voicegate_voiceprints").fetchone()
    assert bytes(blob).startswith(b"gAAAAA")  # a Fernet token
    assert b"dad" in raw  # ids stay readable: listing needs no key

    with pytest.raises(StoreError, match="no key is configured"):
        build_household(VerificationService(Settings(data_dir=str(tmp_path)), encoder))
    with pytest.raises(StoreError, match="no key is configured"):
        create_app(VerificationService(Settings(data_dir=str(tmp_path)), encoder))
    key_file = tmp_path / "key"
    key_file.write_text(TEST_KEY)
    again = build_household(VerificationService(
        Settings(data_dir=str(tmp_path), voiceprint_key_file=str(key_file)), encoder))
    assert again.identify(recording(MALE_A[2])).match == "dad"
    again.close()


def test_export_only_when_allowed(encoder, tmp_path):
    settings = Settings(data_dir=str(tmp_path), allow_voiceprint_export=True)
    service = build_household(VerificationService(settings, encoder))
    service.enrol(EnrolOptions(external_id="dad"), [recording(p) for p in MALE_A[:2]])
    exported = service.info("dad", export=True)
    assert len(exported.samples) == 2 and len(exported.samples[0]) == 192
    assert np.linalg.norm(exported.centroid) == pytest.approx(1.0, abs=1e-4)
    service.close()


def test_activity_log_has_one_line_per_event_and_no_vectors(encoder, tmp_path, caplog):
    service = build_household(VerificationService(Settings(data_dir=str(tmp_path)), encoder))
    heard = []
    service.add_listener(heard.append)
    with caplog.at_level(logging.INFO, logger="analytic.activity"):
        service.enrol(EnrolOptions(external_id="dad"), [recording(p) for p in MALE_A[:2]])
        service.verify("dad", recording(MALE_A[2]), HouseholdOptions(request_id="r-1"))
        service.identify(recording(MALE_STRANGER))
        service.delete("dad")
    service.close()
    records = [r for r in caplog.records if r.name == "analytic.activity"]
    assert [r.event for r in records] == ["enrolled", "verified", "identified", "deleted"]
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    assert lines[0]["external_id"] == "dad" and lines[0]["sample_count"] == 2
    assert lines[1]["decision"] is True and lines[1]["request_id"] == "r-1"
    assert lines[2]["match"] is None and lines[2]["candidates"][0][0] == "dad"
    for line in lines:
        text = json.dumps(line)
        assert len(text) < 600  # a 192-d vector would be thousands of characters
        assert not any(k in line for k in ("samples", "centroid", "embedding", "audio"))
    assert [type(r).__name__ for r in heard] == [
        "EnrolmentResult", "HouseholdVerification", "Identification", "DeleteResult"]


def test_enroll_and_identify_on_the_command_line(tmp_path):
    env = {**os.environ, "VOICEGATE_DATA_DIR": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "analytic", *args], capture_output=True,
                              text=True, timeout=300, env=env)

    enrolled = run("enroll", "dad", *map(str, MALE_A[:2]))
    assert enrolled.returncode == 0, enrolled.stderr
    assert json.loads(enrolled.stdout)["sample_count"] == 2
    found = run("identify", str(MALE_A[2]))
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["match"] == "dad"
    stranger = json.loads(run("identify", str(FEMALE_STRANGER)).stdout)
    assert stranger["match"] is None
    env["VOICEGATE_VOICEPRINT_KEY"] = TEST_KEY  # a key on a clear store with voiceprints
    refused = run("identify", str(MALE_A[2]))
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["code"] == "store_unavailable"


class Renamed:
    """The default encoder under another name: one the shipped cohort was not built with."""

    name = "other"
    sample_rate = 16_000
    default_threshold = 0.5

    def __init__(self, inner) -> None:
        self.inner = inner
        self.embedding_size = inner.embedding_size

    def embed(self, speech):
        return self.inner.embed(speech)

    def __getattr__(self, attribute: str):
        return getattr(self.inner, attribute)  # anything else the encoder interface grows


def test_without_a_cohort_for_the_encoder_scores_are_raw_and_it_says_so(encoder, tmp_path, caplog):
    default = build_household(VerificationService(Settings(data_dir=str(tmp_path)), encoder))
    default.enrol(EnrolOptions(external_id="dad"), [recording(MALE_A[0])])
    default.close()
    with caplog.at_level(logging.WARNING):
        other = build_household(VerificationService(Settings(data_dir=str(tmp_path)),
                                                    Renamed(encoder)))
    assert (other.score_norm, other.threshold) == ("none", 0.5)
    assert any(getattr(r, "event", None) == "asnorm_unavailable" for r in caplog.records)
    # A voiceprint is only compared with embeddings of the encoder that made it, and identify
    # refuses rather than silently leaving the household out.
    with pytest.raises(Conflict, match=r"enrolled with encoder campplus.*VOICEGATE_ENCODER="
                                       r"campplus"):
        other.identify(recording(MALE_A[1]))
    with pytest.raises(Conflict):
        other.verify("dad", recording(MALE_A[1]))
    with pytest.raises(Conflict):
        other.enrol(EnrolOptions(external_id="dad"), [recording(MALE_A[1])])
    assert other.enrol(EnrolOptions(external_id="dad", replace=True),
                       [recording(MALE_A[1])]).encoder == "other"
    other.close()
