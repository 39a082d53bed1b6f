"""Jobs shared among threads: each runs once, errors surface, one worker means no thread."""

from __future__ import annotations

import threading

import pytest

from pytest_ptycho_fixture import parallel


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_every_job_runs_once_and_done_is_called_once_for_each(workers: int) -> None:
    ran: list[int] = []
    finished: list[int] = []
    parallel.run(list(range(50)), ran.append, workers, finished.append)
    assert sorted(ran) == sorted(finished) == list(range(50))


def test_one_worker_runs_the_jobs_in_order_in_the_calling_thread() -> None:
    threads: list[int] = []
    order: list[int] = []

    def work(job: int) -> None:
        threads.append(threading.get_ident())
        order.append(job)

    parallel.run([3, 1, 2], work, workers=1)
    assert order == [3, 1, 2]
    assert set(threads) == {threading.get_ident()}


def test_several_workers_use_threads_of_their_own() -> None:
    barrier = threading.Barrier(3, timeout=10)
    threads: set[int] = set()

    def work(job: int) -> None:
        threads.add(threading.get_ident())
        barrier.wait()  # passes only when three jobs run at once

    parallel.run([0, 1, 2], work, workers=3)
    assert len(threads) == 3
    assert threading.get_ident() not in threads


def test_a_failing_job_is_raised_after_the_threads_stop_and_no_new_job_starts() -> None:
    ran: list[int] = []

    def work(job: int) -> None:
        ran.append(job)
        if job == 5:
            raise ValueError("job 5")

    before = threading.active_count()
    with pytest.raises(ValueError, match="job 5"):
        parallel.run(list(range(1000)), work, workers=4)
    assert len(ran) < 1000
    assert threading.active_count() == before
