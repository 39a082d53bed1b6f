"""Races between real processes: pytest runs (with and without pytest-xdist) and
``ptycho-fixture generate`` commands on one cold fixture, ``--regen-fixture`` racing plain
runs, and the lock and the temporary files under contention."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from processes import (
    CACHED,
    Watcher,
    content_digest,
    finish,
    generate_argv,
    project,
    pytest_argv,
    shipped_digest,
    start,
    temporary_files,
)

from pytest_ptycho_fixture import locking
from pytest_ptycho_fixture.atomic import remove_stale_temps
from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.sidecar import read_sidecar, write_sidecar

SEED = 20240611
RACE_ROUNDS = 3
#: Processes of a round start within this many seconds of each other, in a seeded order:
#: about the time a command takes to reach its write, so either may get there first.
STAGGER = 1.0
TESTS = 4


def _round_mix(rng: random.Random, index: int) -> tuple[list[int], int]:
    """The xdist workers of each pytest process (0: none) and the number of commands."""
    if index == 0:
        return [0, 2, 4], 0
    return [rng.choice([0, 0, 2, 4]) for _ in range(3)], rng.choice([1, 2])


def _complete(expected: str) -> Callable[[Path], str | None]:
    def check(path: Path) -> str | None:
        digest = content_digest(path)
        return None if digest == expected else f"{path} was visible with content {digest}"

    return check


@pytest.mark.slow
def test_concurrent_runs_and_commands_generate_once_and_publish_only_complete_files(
    tmp_path: Path, stress: int
) -> None:
    """Each round starts three pytest processes (with 0, 2 or 4 pytest-xdist workers)
    and, after the first round, one or two ``ptycho-fixture generate --output <the cached
    fixture>`` commands on a cold cache folder, in a seeded order, within one second.

    Everything that writes the fixture holds its lock, and every ``generate`` command
    writes once (that is what it is asked to do). The pytest processes verify under the
    lock and generate only when no complete fixture is there, so together they generate
    exactly once in a round without commands, and at most once in a round with them
    (none when a command published first). A watcher reads every version of the file
    that appears: each one must be complete, and there may not be more versions than
    the generations the processes report.
    """
    expected = shipped_digest()
    rng = random.Random(SEED)
    figures = {"rounds": 0, "pytest": 0, "workers": 0, "commands": 0, "versions": 0}
    by_pytest = []
    for index in range(RACE_ROUNDS * stress):
        workers, commands = _round_mix(rng, index)
        root = project(tmp_path / f"round{index}", tests=TESTS)
        fixture = root / CACHED
        argvs = [pytest_argv("-W", "error", *(["-n", str(n)] if n else [])) for n in workers]
        argvs += [generate_argv(fixture) for _ in range(commands)]
        rng.shuffle(argvs)
        delays = sorted(rng.uniform(0, STAGGER) for _ in argvs)
        with Watcher(fixture, _complete(expected)) as watcher:
            began, processes = time.monotonic(), []
            for argv, delay in zip(argvs, delays):
                time.sleep(max(0.0, began + delay - time.monotonic()))
                processes.append(start(argv, root))
            done = finish(processes)
        runs = [result for result in done if "pytest" in result.argv]
        made = [result for result in done if "generate" in result.argv]
        for result in done:
            assert result.returncode == 0, result.describe()
        for result in runs:
            assert result.passed == TESTS, result.describe()
        for result in made:
            assert f"wrote {fixture}" in result.output, result.describe()
        generations = sum(result.generations for result in runs)
        details = "\n\n".join(result.describe() for result in done)
        if commands == 0:
            assert generations == 1, details
        else:
            assert generations <= 1, details
        assert watcher.problems == []
        assert 1 <= len(watcher.versions) <= generations + commands, details
        assert content_digest(fixture) == expected
        assert temporary_files(fixture.parent) == []
        by_pytest.append(generations)
        figures["rounds"] += 1
        figures["pytest"] += len(runs)
        figures["workers"] += sum(workers)
        figures["commands"] += commands
        figures["versions"] += len(watcher.versions)
    print(f"races: {figures}, generations by pytest per round {by_pytest}, failures 0")


def _sidecar_problem(path: Path) -> str | None:
    try:
        read_sidecar(path)
    except ContractError as exc:
        return str(exc)
    return None


@pytest.mark.slow
def test_a_regeneration_racing_plain_runs_rewrites_the_sidecar_once_and_atomically(
    tmp_path: Path, stress: int
) -> None:
    """``pytest --regen-fixture -n 2`` and three plain runs (one with ``-n 2``) start
    together on a committed fixture whose sidecar says it was created in 2000. The
    regeneration rewrites the sidecar once; the plain runs only verify; a watcher reads
    every version of the sidecar that appears, and each one is complete."""
    for index in range(stress):
        root = project(tmp_path / f"round{index}", tests=TESTS)
        fixture = root / "fixtures" / "minimal_dataset_v1.npz"
        fixture.parent.mkdir()
        (root / "pytest.ini").write_text(
            "[pytest]\nptycho_fixture_path = fixtures/minimal_dataset_v1.npz\n"
        )
        sidecar = generate_fixture(None, fixture).metadata_path
        old = json.loads(sidecar.read_text(encoding="utf-8"))
        write_sidecar(sidecar, {**old, "created": "2000-01-01T00:00:00+00:00"})
        argvs = [
            pytest_argv("-W", "error", "-n", "2", "--regen-fixture"),
            pytest_argv("-W", "error"),
            pytest_argv("-W", "error", "-n", "2"),
            pytest_argv("-W", "error"),
        ]
        with Watcher(sidecar, _sidecar_problem) as watcher:
            done = finish([start(argv, root) for argv in argvs])
        regen, plain = done[0], done[1:]
        for result in done:
            assert result.returncode == 0 and result.passed == TESTS, result.describe()
        assert regen.generations == 1
        assert regen.output.count("sidecar rewritten") == 1, regen.describe()
        for result in plain:
            assert result.generations == 0 and "rewritten" not in result.output
        new = read_sidecar(sidecar)
        assert new["created"] != "2000-01-01T00:00:00+00:00"
        assert new["content_sha256"] == old["content_sha256"] == content_digest(fixture)
        assert watcher.problems == []
        assert 1 <= len(watcher.versions) <= 2
        assert temporary_files(fixture.parent) == []
        print(f"regeneration race {index}: sidecar versions seen {len(watcher.versions)}")


HOLDER = """
import os, random, sys, time
from pathlib import Path
from pytest_ptycho_fixture import locking

target, inside, rounds, seed = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
for _ in range(rounds):
    with locking.holding(target, 60):
        # Fails with FileExistsError if another holder is inside at the same time.
        fd = os.open(inside, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        time.sleep(rng.uniform(0, 0.002))
        os.unlink(inside)
        os.close(fd)
    time.sleep(rng.uniform(0, 0.001))
print("ok")
"""


@pytest.mark.slow
def test_the_lock_excludes_across_processes_and_its_file_stays_in_place(
    tmp_path: Path, stress: int
) -> None:
    target = tmp_path / "minimal_dataset_v1.npz"
    with locking.holding(target, 5):
        pass
    lock = locking.lock_path(target)
    before = lock.stat().st_ino
    holders, rounds = 6, 25 * stress
    inside = tmp_path / "inside"
    processes = [
        start(
            [sys.executable, "-c", HOLDER, str(target), str(inside), str(rounds), f"{SEED}-{k}"],
            tmp_path,
        )
        for k in range(holders)
    ]
    for result in finish(processes):
        assert result.returncode == 0 and result.output == "ok\n", result.describe()
    assert lock.stat().st_ino == before
    print(f"lock exclusion: {holders} processes x {rounds} acquisitions, overlaps 0")


WRITER = """
import sys
from pathlib import Path
from pytest_ptycho_fixture.atomic import atomic_writer

with atomic_writer(Path(sys.argv[1])) as handle:
    handle.write(b"first half, ")
    handle.flush()
    print("writing", flush=True)
    sys.stdin.readline()
    handle.write(b"second half")
print("done", flush=True)
"""


def test_a_sweep_for_stale_temporary_files_spares_a_live_writer(tmp_path: Path) -> None:
    target = tmp_path / "minimal_dataset_v1.npz"
    stale = tmp_path / ".minimal_dataset_v1.npz.k1ll3d.tmp"
    stale.write_bytes(b"left by a killed writer")
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdin is not None and writer.stdout is not None
        assert writer.stdout.readline() == "writing\n"
        (live,) = set(temporary_files(tmp_path)) - {stale.name}
        with locking.holding(target, 5, sweep=[target]):
            assert temporary_files(tmp_path) == [live]
        assert remove_stale_temps(target) == []
        writer.stdin.write("go on\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == "done\n"
    assert writer.returncode == 0
    assert target.read_bytes() == b"first half, second half"
    assert temporary_files(tmp_path) == []


def test_generate_waits_for_a_process_that_holds_the_lock(tmp_path: Path) -> None:
    output = tmp_path / "minimal_dataset_v1.npz"
    with locking.holding(output, 5):
        command = subprocess.Popen(
            generate_argv(output),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert command.stderr is not None
        line = command.stderr.readline()
        assert line == (
            f"ptycho-fixture: waiting for {locking.lock_path(output)}, held by another process\n"
        )
        assert sorted(os.listdir(tmp_path)) == [f"{output.name}.lock"]
    out, err = command.communicate(timeout=120)
    assert command.returncode == 0, err
    assert out.startswith(f"wrote {output}\n")
    assert content_digest(output) == shipped_digest()


def test_the_lock_error_names_the_lock_and_survives_pickling() -> None:
    import pickle

    error = locking.LockUnavailable("/x/f.npz.lock", "another process holds it", waited=2.5)
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) == "/x/f.npz.lock: another process holds it"
    assert (again.path, again.reason, again.waited, again.errno) == (
        "/x/f.npz.lock",
        "another process holds it",
        2.5,
        None,
    )
    assert repr(again) == repr(error)


def test_a_timeout_says_how_long_it_waited(tmp_path: Path) -> None:
    target = tmp_path / "f.npz"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from pathlib import Path
                from pytest_ptycho_fixture import locking
                with locking.holding(Path({str(target)!r}), 5):
                    print("held", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    try:
        with pytest.raises(locking.LockUnavailable) as caught, locking.holding(target, 0.2):
            pass
    finally:
        holder.communicate("\n", timeout=60)
    assert caught.value.waited == 0.2
    assert str(caught.value) == f"{target}.lock: another process holds it"


def test_the_fixture_lock_and_filelocks_lock_on_the_same_file_exclude_each_other(
    tmp_path: Path,
) -> None:
    import filelock

    target = tmp_path / "f.npz"
    other = filelock.FileLock(locking.lock_path(target))
    with locking.holding(target, 5), pytest.raises(filelock.Timeout):
        other.acquire(timeout=0.2)
    refused = pytest.raises(locking.LockUnavailable, match="another process holds it")
    with other, refused, locking.holding(target, 0.2):
        pass


def test_the_fixture_lock_is_taken_and_released_by_filelock(tmp_path: Path) -> None:
    import filelock

    package = Path(filelock.__file__).parent
    called: list[str] = []

    def watch(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call" and Path(frame.f_code.co_filename).is_relative_to(package):
            called.append(frame.f_code.co_name)

    target = tmp_path / "f.npz"
    sys.setprofile(watch)
    try:
        with locking.holding(target, 5):
            held = list(called)
    finally:
        sys.setprofile(None)
    assert "acquire" in held and "_acquire" in held and "release" not in held
    assert "release" in called[len(held) :]
    assert locking.lock_path(target).exists()
