"""Access control and back-pressure on the HTTP door (analytic/web/auth.py), over real HTTP."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import requests

from analytic.cli.serve import serve
from analytic.cli.settings import Settings
from analytic.errors import Busy
from analytic.service import VerificationService
from analytic.web import auth
from analytic.web.app import create_app
from tests.conftest import MALE_A, free_port, serve_in_thread

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

TIMEOUT = 60
API_TOKEN = "api-token-for-tests-only-0123456789"
ADMIN_TOKEN = "admin-token-for-tests-only-9876543210"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()["error"]["code"]


@pytest.fixture(scope="module")
def protected(encoder, tmp_path_factory):
    """A live server with both tokens set (and its own empty voiceprint store)."""
    settings = Settings(port=free_port(), api_token=API_TOKEN, admin_token=ADMIN_TOKEN,
                        data_dir=str(tmp_path_factory.mktemp("protected")))
    yield from serve_in_thread(create_app(VerificationService(settings, encoder)), settings)


@pytest.mark.parametrize("method, path", [
    ("get", "/models"), ("get", "/enrollments"), ("get", "/openapi.json"),
    ("post", "/speaker_verification"), ("post", "/identify"), ("delete", "/enrollments"),
    ("post", "/challenges"), ("get", "/no-such-route"),
])
def test_every_route_but_health_needs_a_token(protected, method, path):
    response = requests.request(method, protected + path, timeout=TIMEOUT)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_health_needs_no_token(protected):
    response = requests.get(protected + "/health", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("header", [
    f"Bearer {API_TOKEN}x", f"Bearer {API_TOKEN[:-1]}", "Bearer ", f"Basic {API_TOKEN}",
    API_TOKEN, f"Bearer {API_TOKEN.upper()}",
])
def test_a_wrong_token_or_scheme_is_401(protected, header):
    response = requests.get(protected + "/models", headers={"Authorization": header},
                            timeout=TIMEOUT)
    assert response.status_code == 401
    assert error_code(response) == "unauthorized"
    assert API_TOKEN not in response.text


def test_the_api_token_opens_analysis_and_reading(protected):
    assert requests.get(protected + "/models", headers=bearer(API_TOKEN),
                        timeout=TIMEOUT).status_code == 200
    listed = requests.get(protected + "/enrollments", headers=bearer(API_TOKEN), timeout=TIMEOUT)
    assert listed.status_code == 200
    files = {"file1": ("a.flac", MALE_A[0].read_bytes()),
             "file2": ("b.flac", MALE_A[1].read_bytes())}
    verified = requests.post(protected + "/speaker_verification", files=files,
                             headers=bearer(API_TOKEN), timeout=TIMEOUT)
    assert verified.status_code == 200
    assert verified.json()["decision"] is True


@pytest.mark.parametrize("method, path", [
    ("post", "/enrollments"), ("delete", "/enrollments"), ("delete", "/enrollments/alice"),
    ("get", "/enrollments/alice?export=true"), ("post", "/enrollments/alice/digits"),
])
def test_enrolment_management_needs_the_admin_token(protected, method, path):
    response = requests.request(method, protected + path, headers=bearer(API_TOKEN),
                                timeout=TIMEOUT)
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_export_asked_in_a_form_body_needs_the_admin_token_too(protected):
    response = requests.get(protected + "/enrollments/alice", data={"export": "true"},
                            headers=bearer(API_TOKEN), timeout=TIMEOUT)
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_the_admin_token_manages_enrolments_and_does_the_rest(protected):
    deleted = requests.delete(protected + "/enrollments", headers=bearer(ADMIN_TOKEN),
                              timeout=TIMEOUT)
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": 0}
    assert requests.get(protected + "/enrollments/nobody", headers=bearer(API_TOKEN),
                        timeout=TIMEOUT).status_code == 404
    assert requests.get(protected + "/models", headers=bearer(ADMIN_TOKEN),
                        timeout=TIMEOUT).status_code == 200


def test_one_api_token_alone_also_manages_enrolments(encoder, tmp_path):
    settings = Settings(port=free_port(), api_token=API_TOKEN, data_dir=str(tmp_path))
    for url in serve_in_thread(create_app(VerificationService(settings, encoder)), settings):
        assert requests.get(url + "/models", timeout=TIMEOUT).status_code == 401
        response = requests.delete(url + "/enrollments", headers=bearer(API_TOKEN),
                                   timeout=TIMEOUT)
        assert response.status_code == 200


def test_without_tokens_everything_is_open(base_url):
    assert requests.get(base_url + "/models", timeout=TIMEOUT).status_code == 200


# --- binding: no token means loopback only, unless the operator opts in -----------------------

@pytest.mark.parametrize("host, tokens, opt_in, refused", [
    ("127.0.0.1", {}, False, False),
    ("::1", {}, False, False),
    ("localhost", {}, False, False),
    ("0.0.0.0", {}, False, True),
    ("192.168.1.20", {}, False, True),
    ("", {}, False, True),
    ("0.0.0.0", {}, True, False),
    ("0.0.0.0", {"api_token": "t"}, False, False),
    ("0.0.0.0", {"admin_token": "t"}, False, False),
])
def test_bind_refusal(host, tokens, opt_in, refused):
    settings = Settings(host=host, allow_unauthenticated_remote=opt_in, **tokens)
    assert (auth.bind_refusal(settings) is not None) is refused


def test_serve_refuses_a_public_address_without_a_token(capsys):
    settings = Settings(host="0.0.0.0", port=free_port())
    assert serve(settings) == 2  # before any model is loaded
    message = capsys.readouterr().err
    assert "VOICEGATE_API_TOKEN" in message
    assert "VOICEGATE_ALLOW_UNAUTHENTICATED_REMOTE" in message


def test_the_start_up_line_says_how_http_is_protected_and_never_shows_a_token(caplog):
    with caplog.at_level(logging.INFO, logger="analytic.web.auth"):
        auth.log_access_mode(Settings(api_token=API_TOKEN, admin_token=ADMIN_TOKEN))
        auth.log_access_mode(Settings())
    protected, open_ = [r for r in caplog.records if getattr(r, "event", "") == "http_access"]
    assert (protected.auth, open_.auth) == ("bearer", "none")
    assert open_.loopback_only is True
    text = " ".join(json.dumps(vars(r), default=str) for r in caplog.records)
    assert API_TOKEN not in text and ADMIN_TOKEN not in text


# --- rate limit and the concurrency gate -----------------------------------------------------

def test_a_client_over_the_rate_limit_gets_429_with_retry_after(encoder, tmp_path):
    settings = Settings(port=free_port(), rate_limit_per_min=3, data_dir=str(tmp_path))
    for url in serve_in_thread(create_app(VerificationService(settings, encoder)), settings):
        statuses = [requests.get(url + "/models", timeout=TIMEOUT).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = requests.get(url + "/models", timeout=TIMEOUT)
        assert limited.status_code == 429
        assert error_code(limited) == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        assert requests.get(url + "/health", timeout=TIMEOUT).status_code == 200


def test_rate_limit_counts_each_client_apart():
    limiter = auth.RateLimiter(2)
    limiter.check("a")
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(auth.RateLimited):
        limiter.check("a")


def test_analyses_beyond_the_limit_and_the_queue_get_503_busy(encoder, tmp_path):
    settings = Settings(port=free_port(), max_concurrent=1, max_waiting=0,
                        data_dir=str(tmp_path))
    app = create_app(VerificationService(settings, encoder))
    gate: auth.Gate = app.extensions[auth.AUTH_KEY].gate
    files = {"file1": ("a.flac", MALE_A[0].read_bytes()),
             "file2": ("b.flac", MALE_A[1].read_bytes())}
    for url in serve_in_thread(app, settings):
        gate.acquire()  # stands in for an analysis in progress
        try:
            busy = requests.post(url + "/speaker_verification", files=files, timeout=TIMEOUT)
            assert busy.status_code == 503
            assert error_code(busy) == "busy"
            assert int(busy.headers["Retry-After"]) >= 1
            assert requests.get(url + "/models", timeout=TIMEOUT).status_code == 200
        finally:
            gate.release()
        done = requests.post(url + "/speaker_verification", files=files, timeout=TIMEOUT)
        assert done.status_code == 200
        # A refused or failed analysis gives its slot back.
        refused = requests.post(url + "/speaker_verification", timeout=TIMEOUT)
        assert refused.status_code == 400
        assert requests.post(url + "/speaker_verification", files=files,
                             timeout=TIMEOUT).status_code == 200


def test_a_waiting_analysis_gets_the_slot_when_it_frees():
    gate = auth.Gate(limit=1, waiting=1, max_wait_s=60)
    gate.acquire()
    got_it = threading.Event()

    def waiter() -> None:
        gate.acquire()
        got_it.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    while gate._queued == 0:  # the waiter is in line
        threading.Event().wait(0.01)
    with pytest.raises(Busy):
        gate.acquire()  # the line is full
    gate.release()
    thread.join(timeout=30)
    assert got_it.is_set()
    gate.release()


def test_a_wait_that_runs_out_is_busy():
    gate = auth.Gate(limit=1, waiting=1, max_wait_s=0.01)
    gate.acquire()
    with pytest.raises(Busy):
        gate.acquire()
