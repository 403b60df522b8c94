"""Per-request thresholds over real HTTP (waitress): stricter is anyone's, looser the admin's.

Issue 14, hole 3: any API-token holder could send ``threshold=-1`` (or ``-1000`` to the
household) and get a forged "Same Speaker" / match. Every result now says which threshold it
used (``threshold_source``).
"""

from __future__ import annotations

import pytest
import requests

from analytic.cli.settings import Settings
from analytic.household import build_household
from analytic.schemas import EnrolOptions
from analytic.service import VerificationService
from analytic.web.app import create_app
from tests.conftest import FEMALE_A, MALE_A, free_port, serve_in_thread
from tests.test_security import ADMIN_TOKEN, API_TOKEN, TIMEOUT, bearer, error_code

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)


@pytest.fixture(scope="module")
def door(encoder, tmp_path_factory):
    """A server with both tokens and dad enrolled."""
    settings = Settings(port=free_port(), api_token=API_TOKEN, admin_token=ADMIN_TOKEN,
                        data_dir=str(tmp_path_factory.mktemp("thresholds")))
    service = VerificationService(settings, encoder)
    household = build_household(service)
    household.enrol(EnrolOptions(external_id="dad"),
                    [(p.name, p.read_bytes()) for p in MALE_A[:2]])
    app = create_app(service, household=household)
    yield from serve_in_thread(app, settings)
    household.close()


def verify_pair(url: str, token: str, **fields: str) -> requests.Response:
    """A male and a female voice: "Different Speaker" at any sane threshold."""
    with MALE_A[0].open("rb") as a, FEMALE_A[0].open("rb") as b:
        return requests.post(url + "/speaker_verification", headers=bearer(token),
                             files={"file1": a, "file2": b}, data=fields, timeout=TIMEOUT)


def identify(url: str, token: str, **fields: str) -> requests.Response:
    with FEMALE_A[0].open("rb") as clip:  # mum is not enrolled
        return requests.post(url + "/identify", headers=bearer(token), files={"file": clip},
                             data=fields, timeout=TIMEOUT)


def test_an_api_token_cannot_lower_the_threshold_to_forge_a_decision(door):
    response = verify_pair(door, API_TOKEN, threshold="-1")
    assert response.status_code == 403
    assert error_code(response) == "threshold_not_allowed"
    response = identify(door, API_TOKEN, threshold="-1000")
    assert response.status_code == 403
    assert error_code(response) == "threshold_not_allowed"


def test_a_stricter_threshold_is_anyones_and_is_named_in_the_result(door):
    default = verify_pair(door, API_TOKEN).json()
    assert default["threshold_source"] == "default"
    stricter = verify_pair(door, API_TOKEN, threshold="50").json()
    assert (stricter["threshold"], stricter["threshold_source"]) == (50, "request")
    assert stricter["decision"] is False
    who = identify(door, API_TOKEN, threshold="1000").json()
    assert (who["threshold_source"], who["match"]) == ("request", None)


def test_the_admin_may_lower_it_and_the_result_says_so(door):
    body = verify_pair(door, ADMIN_TOKEN, threshold="-1000").json()
    assert (body["decision"], body["threshold_source"]) == (True, "request")
    who = identify(door, ADMIN_TOKEN, threshold="-1000").json()
    assert (who["match"], who["threshold_source"]) == ("dad", "request")


def test_a_setting_can_allow_anyone_to_lower_it(encoder, tmp_path):
    settings = Settings(port=free_port(), api_token=API_TOKEN, admin_token=ADMIN_TOKEN,
                        allow_threshold_override=True, data_dir=str(tmp_path))
    for url in serve_in_thread(create_app(VerificationService(settings, encoder)), settings):
        body = verify_pair(url, API_TOKEN, threshold="-1000").json()
        assert (body["decision"], body["threshold_source"]) == (True, "request")
