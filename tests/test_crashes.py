"""Crashes: generations killed with SIGKILL at seeded random moments, before, during and
after their write and rename, and what the next run finds."""

from __future__ import annotations

import collections
import ctypes
import os
import random
import re
import select
import signal
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from processes import (
    CACHED,
    content_digest,
    finish,
    generate_argv,
    kill,
    project,
    pytest_argv,
    run,
    shipped_digest,
    start,
    temporary_files,
)

from pytest_ptycho_fixture import locking
from pytest_ptycho_fixture.cache import FixtureCache
from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.npz.sidecar import read_sidecar
from pytest_ptycho_fixture.spec import main_spec

SEED = 20240612
#: Kill rounds per target (the generate command and a pytest run): 12 kills in all.
KILL_ROUNDS = 6
#: The next run must get the lock well within this; a dead holder releases it at once.
LOCK_TIMEOUT = 10.0
POLL = 0.0002

TARGETS = {
    "generate": lambda fixture: generate_argv(fixture),
    "pytest": lambda fixture: pytest_argv("-W", "error"),
}


@dataclass(frozen=True)
class Timeline:
    """When, after its start, a complete run first showed a temporary file, the fixture,
    and its end."""

    temp: float
    published: float
    end: float


def _version(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _wait_for_temp(process: subprocess.Popen[str], folder: Path) -> bool:
    """Wait until a temporary file appears in ``folder``; ``False`` if the process ended."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if temporary_files(folder):
            return True
        if process.poll() is not None:
            return False
        time.sleep(POLL)
    raise AssertionError(f"no temporary file appeared in {folder} within 60 s")


def _timeline(argv: list[str], root: Path, fixture: Path) -> Timeline:
    began = time.monotonic()
    process = start(argv, root)
    temp = published = None
    while process.poll() is None:
        now = time.monotonic() - began
        if temp is None and temporary_files(fixture.parent):
            temp = now
        if published is None and fixture.exists():
            published = now
        time.sleep(POLL)
    end = time.monotonic() - began
    (result,) = finish([process])
    assert result.returncode == 0, result.describe()
    assert temp is not None and published is not None, (temp, published)
    return Timeline(temp, published, end)


def _cold(fixture: Path) -> None:
    for path in (fixture, fixture.with_suffix(".json")):
        path.unlink(missing_ok=True)


def _check_what_was_left(fixture: Path, expected: str) -> None:
    """The fixture is absent or complete; so is the sidecar a command writes beside it."""
    if fixture.exists():
        assert content_digest(fixture) == expected, f"{fixture} was left incomplete"
    sidecar = fixture.with_suffix(".json")
    if sidecar.exists():
        try:
            assert read_sidecar(sidecar)["content_sha256"] == expected
        except ContractError as exc:
            raise AssertionError(f"the sidecar was left incomplete: {exc}") from None


def _recover(root: Path, fixture: Path, expected: str) -> float:
    """Get the fixture as the next run does; return the seconds it took."""
    spec = main_spec(
        path=None,
        sidecar=None,
        source=None,
        subset_size=64,
        strategy="stratified",
        folder=fixture.parent,
    )
    began = time.monotonic()
    FixtureCache(lock_timeout=LOCK_TIMEOUT, root=root).get(spec)
    took = time.monotonic() - began
    assert temporary_files(fixture.parent) == []
    assert content_digest(fixture) == expected
    return took


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_a_killed_generation_leaves_the_fixture_absent_or_complete_and_blocks_nothing(
    target: str, tmp_path: Path, stress: int
) -> None:
    """Each round starts the target and SIGKILLs its process group at a seeded random
    moment: either anywhere in a complete run's duration, or a random fraction of its
    write window (1.5 times it, to land after the rename too) after its temporary file
    appears. What it leaves must be absent or complete, and the next run must get the
    lock at once, remove the killed writer's temporary files and end with the fixture."""
    expected = shipped_digest()
    root = project(tmp_path)
    fixture = root / CACHED
    argv = TARGETS[target](fixture)
    timeline = _timeline(argv, root, fixture)
    window = timeline.published - timeline.temp
    rng = random.Random(f"{SEED}-{target}")
    moments: collections.Counter[str] = collections.Counter()
    slowest = 0.0
    for _ in range(KILL_ROUNDS * stress):
        # A command may overwrite a complete fixture; a pytest run writes only if cold.
        if target == "pytest" or rng.random() < 0.5:
            _cold(fixture)
        before = _version(fixture)
        process = start(argv, root)
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0, timeline.end))
        elif _wait_for_temp(process, fixture.parent):
            time.sleep(rng.uniform(0, 1.5 * window))
        alive = process.poll() is None
        kill(process)
        if not alive:
            moments["after the end"] += 1
        elif _version(fixture) != before:
            moments["after the rename"] += 1
        elif temporary_files(fixture.parent):
            moments["during the write"] += 1
        else:
            moments["before the write"] += 1
        _check_what_was_left(fixture, expected)
        slowest = max(slowest, _recover(root, fixture, expected))
    assert slowest < LOCK_TIMEOUT
    _cold(fixture)
    last = run(
        pytest_argv("-W", "error", "-o", f"ptycho_fixture_lock_timeout={LOCK_TIMEOUT:g}"), root
    )
    assert last.returncode == 0 and last.passed == 2, last.describe()
    assert temporary_files(fixture.parent) == []
    print(
        f"kills of {target}: {sum(moments.values())}, {dict(moments)}, write window"
        f" {window * 1000:.0f} ms, slowest next run {slowest:.2f} s, failures 0"
    )


def _stopped_holding_the_lock(argv: list[str], root: Path, fixture: Path) -> subprocess.Popen[str]:
    """Start ``argv`` and SIGSTOP it while it writes, holding the lock."""
    for _ in range(5):
        _cold(fixture)
        for name in temporary_files(fixture.parent):
            (fixture.parent / name).unlink()
        process = start(argv, root)
        if _wait_for_temp(process, fixture.parent):
            os.killpg(process.pid, signal.SIGSTOP)
            try:
                with locking.holding(fixture, 0):
                    pass
            except locking.LockUnavailable:
                if temporary_files(fixture.parent) and not fixture.exists():
                    return process
        kill(process)
    raise AssertionError("could not stop the writer while it held the lock")


#: The generate command's line on stderr when another process holds the lock.
WAITING = re.compile(r"^ptycho-fixture: waiting for (.+), held by another process$", re.MULTILINE)
IN_OPEN = 0x20  # <sys/inotify.h>
#: ``struct inotify_event`` before its name: wd, mask, cookie, len.
INOTIFY_EVENT = struct.Struct("iIII")


def _seen_printing_that_it_waits(waiter: subprocess.Popen[str], lock: Path) -> None:
    """Read the command's output until it says that it waits for ``lock``."""
    fd = waiter.stdout.fileno()  # type: ignore[union-attr]
    deadline = time.monotonic() + 60
    output = b""
    while not (match := WAITING.search(output.decode(errors="replace"))):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"not waiting for {lock} within 60 s: {output!r}")
        data = os.read(fd, 65536)
        if not data:
            raise AssertionError(f"ended without waiting for {lock}: {output!r}")
        output += data
    assert match.group(1) == str(lock), output


def _seen_retrying_the_lock(waiter: subprocess.Popen[str], lock: Path) -> None:
    """Wait until ``waiter`` opens ``lock`` twice: it tried the lock, and tries again.

    The lock is polled with ``flock(LOCK_NB)``, so a waiting run leaves no blocked entry in
    ``/proc/locks``; it opens the lock file for every try, and inotify sees those opens
    (nothing else opens it while its holder is stopped).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    try:
        if libc.inotify_add_watch(fd, os.fsencode(lock), IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed on {lock}")
        deadline, opens = time.monotonic() + 60, 0
        while opens < 2:
            if waiter.poll() is not None:
                raise AssertionError(f"ended without waiting for {lock}")
            ready, _, _ = select.select([fd], [], [], min(0.1, max(0.0, deadline - time.monotonic())))
            if ready:
                events = os.read(fd, 65536)
                for offset in range(0, len(events), INOTIFY_EVENT.size):
                    _, mask, _, size = INOTIFY_EVENT.unpack_from(events, offset)
                    assert size == 0, "a watch on a file reports no names"
                    opens += bool(mask & IN_OPEN)
            elif time.monotonic() > deadline:
                raise AssertionError(f"not waiting for {lock} within 60 s")
    finally:
        os.close(fd)


@pytest.mark.parametrize("holder", TARGETS)
def test_a_run_waiting_for_a_writer_that_is_killed_takes_over_at_once(
    holder: str, tmp_path: Path
) -> None:
    expected = shipped_digest()
    root = project(tmp_path)
    fixture = root / CACHED
    process = _stopped_holding_the_lock(TARGETS[holder](fixture), root, fixture)
    waiter = None
    try:
        assert temporary_files(fixture.parent) != [] and not fixture.exists()
        waiter = start(TARGETS["pytest" if holder == "generate" else "generate"](fixture), root)
        if holder == "generate":
            _seen_retrying_the_lock(waiter, locking.lock_path(fixture))
        else:
            _seen_printing_that_it_waits(waiter, locking.lock_path(fixture))
        assert not fixture.exists()
    except BaseException:
        # Leave no stopped writer or waiting run behind when the test fails here.
        for leftover in (process, waiter):
            if leftover is not None:
                kill(leftover)
        raise
    kill(process)
    began = time.monotonic()
    (result,) = finish([waiter])
    assert result.returncode == 0, result.describe()
    assert time.monotonic() - began < LOCK_TIMEOUT
    if holder == "generate":
        assert result.passed == 2 and result.generations == 1, result.describe()
    assert content_digest(fixture) == expected
    assert temporary_files(fixture.parent) == []
