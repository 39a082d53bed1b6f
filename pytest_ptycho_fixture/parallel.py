"""Jobs shared among a few threads: numpy and zlib release the GIL while they work."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

Job = TypeVar("Job")

#: Threads to use at most: one per core, up to eight.
WORKERS = min(os.cpu_count() or 1, 8)


def run(
    jobs: Sequence[Job],
    work: Callable[[Job], None],
    workers: int | None = None,
    done: Callable[[Job], None] | None = None,
) -> None:
    """Call ``work(job)`` for every job, in up to ``workers`` threads (this one when 1).

    ``workers`` defaults to :data:`WORKERS`, read at each call.

    ``done(job)`` is called after each job, one call at a time. Once a job fails no
    other starts, and its error is raised here after every thread has stopped.
    """
    pending = iter(jobs)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            with lock:
                job = next(pending, None)
            if job is None:
                return
            try:
                work(job)
            except BaseException as exc:  # noqa: BLE001 - raised by run() after join
                errors.append(exc)
                return
            if done is not None:
                with lock:
                    done(job)

    count = min(WORKERS if workers is None else workers, len(jobs))
    if count <= 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
