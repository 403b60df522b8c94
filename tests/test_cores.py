"""Both cores: a pair's halves side by side only while a core is free; sizes follow the cores."""

from __future__ import annotations

import threading

import pytest

from analytic.cli.settings import Settings
from analytic.cores import CoreShare, available_cores
from analytic.service import VerificationService
from tests.conftest import FEMALE_A, MALE_A


def where(_: object) -> str:
    return threading.current_thread().name


def test_a_lone_pair_borrows_the_free_core_and_gives_it_back():
    share = CoreShare(2)
    first, second = share.both(where, 1, 2)
    assert first == threading.current_thread().name and second.startswith("pair-half")
    assert share.both(lambda x: x * 10, 1, 2) == (10, 20)  # in order, tokens given back


def test_no_core_is_borrowed_when_every_core_is_busy():
    """A lone pair holds both cores' tokens (its two halves running); a request arriving
    meanwhile borrows nothing and runs on its own thread alone."""
    share = CoreShare(2)
    inside, release = threading.Barrier(3), threading.Event()

    def hold(_: object) -> str:
        inside.wait(timeout=30)
        release.wait(timeout=30)
        return where(None)

    results: list[tuple[str, str]] = []
    holder = threading.Thread(target=lambda: results.append(share.both(hold, 0, 0)),
                              name="request-0")
    holder.start()
    inside.wait(timeout=30)  # both halves of the first pair are running
    try:
        here = threading.current_thread().name
        assert share.both(where, 1, 2) == (here, here)
    finally:
        release.set()
        holder.join(timeout=30)
    assert results[0][0] == "request-0" and results[0][1].startswith("pair-half")
    assert share.both(where, 1, 2)[1].startswith("pair-half")  # all given back


def test_one_core_never_borrows_and_a_failure_of_the_first_half_comes_first():
    here = threading.current_thread().name
    assert CoreShare(1).both(where, 1, 2) == (here, here)
    share = CoreShare(2)
    finished = []

    def work(item: int) -> int:
        if item == 1:
            raise ValueError("first")
        finished.append(item)
        raise KeyError("second")

    with pytest.raises(ValueError, match="first"):
        share.both(work, 1, 2)
    assert finished == [2]  # the borrowed half ran to its end before the call returned
    with pytest.raises(KeyError):
        share.both(work, 2, 3)
    assert share.both(where, 1, 2)[1].startswith("pair-half")


def test_a_pair_scores_the_same_side_by_side_or_one_after_the_other(encoder):
    pair = [(p.name, p.read_bytes()) for p in (MALE_A[0], FEMALE_A[0])]
    answers = []
    for cores in (1, 2):
        service = VerificationService(Settings(cores=cores), encoder)
        assert service.cores.cores == cores
        result = service.verify(*pair)
        answers.append(result.model_dump(exclude={"analysis_id"}))
    assert answers[0] == answers[1]
    assert answers[0]["files"][0]["name"] == MALE_A[0].name


def test_pool_and_gate_sizes_follow_the_cores_unless_set():
    default = Settings()
    assert default.cores == available_cores()
    assert (default.max_concurrent, default.mqtt_workers) == (default.cores, default.cores)
    assert default.http_threads == default.max_concurrent + default.max_waiting + 1
    three = Settings(cores=3, max_waiting=2)
    assert (three.max_concurrent, three.mqtt_workers, three.http_threads) == (3, 3, 6)
    chosen = Settings(cores=3, max_concurrent=1, mqtt_workers=5, http_threads=9)
    assert (chosen.max_concurrent, chosen.mqtt_workers, chosen.http_threads) == (1, 5, 9)
