"""Member ids over real HTTP (issue 14, hole 8): look-alikes are one id or refused, and no
member may be called what the analytic says when nobody is recognised."""

from __future__ import annotations

import pytest
import requests

from analytic.cli.settings import Settings
from analytic.service import VerificationService
from analytic.web.app import create_app
from tests.conftest import MALE_A, free_port, serve_in_thread

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60


@pytest.fixture(scope="module")
def url(encoder, tmp_path_factory):
    settings = Settings(port=free_port(), data_dir=str(tmp_path_factory.mktemp("ids")))
    yield from serve_in_thread(create_app(VerificationService(settings, encoder)), settings)


def enrol(url: str, external_id: str) -> requests.Response:
    with MALE_A[0].open("rb") as clip:
        return requests.post(url + "/enrollments", data={"external_id": external_id},
                             files={"file": clip}, timeout=TIMEOUT)


def test_a_fullwidth_id_is_the_same_member(url):
    assert enrol(url, "dad").json()["sample_count"] == 1
    again = enrol(url, "ｄａｄ").json()  # fullwidth: NFKC makes it "dad"
    assert (again["external_id"], again["sample_count"]) == ("dad", 2)


@pytest.mark.parametrize("external_id", [
    "d\u0430d",  # Cyrillic a
    "dad\u200b",  # zero-width space
    "\u202edad",  # right-to-left override
    "dad ",  # trailing space
    "unknown", "Unknown", "null",
])
def test_look_alike_and_reserved_ids_are_refused(url, external_id):
    response = enrol(url, external_id)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_field"
    listed = requests.get(url + "/enrollments", timeout=TIMEOUT).json()
    assert external_id not in [e["external_id"] for e in listed["enrollments"]]
