"""Real processes for the race, crash and hazard suites: start them together, bound them
in time, kill them, and read what they leave on disk."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helpers
from helpers import cli_command

from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.spec import SHIPPED_SIDECAR

#: An inner pytest run: no hypothesis plugin (seconds per run), tests in file order.
PYTEST = (sys.executable, "-m", "pytest", "-p", "no:hypothesispytest", "-p", "no:randomly")
#: Where a zero-configuration run keeps the fixture, relative to its rootdir.
CACHED = Path(".pytest_cache/d/ptycho-fixture/minimal_dataset_v1.npz")
#: Every subprocess is killed after this many seconds, and the test fails.
TIMEOUT = 120.0

USES_THE_FIXTURE = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_uses_the_fixture(ptycho_fixture_path, ptycho_arrays, i):
    assert ptycho_fixture_path.is_file()
    assert ptycho_arrays["diffraction"].shape == (64, 64, 64)
"""


def drop_permission_override() -> None:
    """In a child as root: give up the capabilities that override file permissions."""
    helpers._drop_permission_override()


def shipped_digest() -> str:
    """The content digest of the built-in default fixture, from the shipped sidecar."""
    digest: str = json.loads(SHIPPED_SIDECAR.read_text(encoding="utf-8"))["content_sha256"]
    return digest


def project(folder: Path, tests: int = 2) -> Path:
    """A project whose tests use the fixture, with its cache folder made (and empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_fixture.py").write_text(USES_THE_FIXTURE.format(n=tests), encoding="utf-8")
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (folder / CACHED).parent.mkdir(parents=True, exist_ok=True)
    return folder


def environment(**extra: str) -> dict[str, str]:
    """The environment of a child: this one without the outer run's ``PYTEST_*``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def start(
    argv: Sequence[str],
    cwd: Path,
    *,
    preexec_fn: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start ``argv`` in a process group of its own (so that a kill reaches its workers)."""
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env or environment(),
        start_new_session=True,
        # Only the hazard suite passes one, and it starts no threads.
        preexec_fn=preexec_fn,  # noqa: PLW1509
    )


def pytest_argv(*args: str) -> list[str]:
    return [*PYTEST, *args]


def generate_argv(output: Path, *args: str) -> list[str]:
    return [*cli_command(), "generate", "--output", str(output), *args]


@dataclass
class Finished:
    """A process that ran to its end."""

    argv: list[str]
    returncode: int
    output: str

    @property
    def generations(self) -> int:
        """The generations in the plugin's summary line (pytest runs only)."""
        match = re.search(r"^ptycho-fixture: (\d+) generations?\b", self.output, re.MULTILINE)
        assert match, self.describe()
        return int(match.group(1))

    @property
    def passed(self) -> int:
        match = re.search(r"\b(\d+) passed\b", self.output)
        return int(match.group(1)) if match else 0

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n{self.output}"


def finish(processes: Sequence[subprocess.Popen[str]], timeout: float = TIMEOUT) -> list[Finished]:
    """Wait for every process; past ``timeout`` kill them all and fail."""
    deadline = time.monotonic() + timeout
    done = []
    try:
        for process in processes:
            output, _ = process.communicate(timeout=max(0.0, deadline - time.monotonic()))
            argv = [str(arg) for arg in process.args]  # type: ignore[union-attr]
            done.append(Finished(argv, process.returncode, output))
    except subprocess.TimeoutExpired:
        for process in processes:
            kill(process)
        raise AssertionError(f"still running after {timeout:g} s: {process.args!r}") from None
    return done


def run(argv: Sequence[str], cwd: Path, **options: Any) -> Finished:
    """Run one process to its end."""
    return finish([start(argv, cwd, **options)])[0]


def kill(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the process and its group, and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate(timeout=TIMEOUT)


@dataclass
class OnTerminal:
    """A process whose stderr is a pseudo-terminal, so that it draws its progress bar.

    ``output`` is everything it wrote there so far, as a terminal shows it (CR LF as LF).
    """

    process: subprocess.Popen[bytes]
    master: int
    received: bytearray = field(default_factory=bytearray)

    @property
    def output(self) -> str:
        return self.received.decode(errors="replace").replace("\r\n", "\n")

    def read_until(self, text: str, timeout: float = TIMEOUT) -> None:
        """Read the terminal until ``text`` appears on it; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if not self._read(deadline):
                kill(self.process)
                raise AssertionError(f"ended before writing {text!r}: {self.output!r}")
            if time.monotonic() > deadline:
                kill(self.process)
                raise AssertionError(f"no {text!r} after {timeout:g} s: {self.output!r}")

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Read the terminal until the process has closed it, and return its exit status."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            if time.monotonic() > deadline:
                kill(self.process)
                raise AssertionError(f"still running after {timeout:g} s: {self.output!r}")
        os.close(self.master)
        return self.process.wait(timeout=max(0.0, deadline - time.monotonic()))

    def _read(self, deadline: float) -> bool:
        """Take what the terminal holds, waiting until ``deadline``; ``False`` once closed."""
        ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return True
        try:
            data = os.read(self.master, 1 << 16)
        except OSError:  # EIO: every process holding the terminal has closed it
            return False
        self.received += data
        return bool(data)


#: Runs its arguments with SIGINT at its default, as a terminal's foreground job has it. A
#: job started in the background of a non-interactive shell (a CI runner, say) inherits
#: SIGINT ignored, and a Python started so never raises KeyboardInterrupt.
_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execvp(sys.argv[1], sys.argv[1:])"
)


def start_on_terminal(argv: Sequence[str], cwd: Path) -> OnTerminal:
    """Start ``argv`` with stderr on a new 100-column pseudo-terminal, stdout discarded."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _DEFAULT_SIGINT, *argv],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=environment(),
            start_new_session=True,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)  # the child's copy alone keeps it open: its exit closes it
    return OnTerminal(process, master)


def temporary_files(folder: Path) -> list[str]:
    """The temporary files (``.<name>.<random>.tmp``) in ``folder``."""
    return sorted(
        name for name in os.listdir(folder) if name.startswith(".") and name.endswith(".tmp")
    )


def content_digest(path: Path) -> str | None:
    """The content digest of the NPZ at ``path``; ``None`` if it cannot be read whole."""
    try:
        return load_npz(path).content_sha256
    except (ContractError, OSError):
        return None


@dataclass
class Watcher:
    """Checks, from a thread, every version of a file that appears while a block runs.

    ``check(path)`` returns ``None`` if the file it read is complete, else what is wrong;
    versions are told apart by inode and modification time.
    """

    path: Path
    check: Callable[[Path], str | None]
    versions: set[tuple[int, int]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watcher:  # noqa: PYI034 - Self needs Python 3.11
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=TIMEOUT)
        self._look()  # the last version, however late it came

    def _watch(self) -> None:
        while not self._stop.wait(0.001):
            self._look()

    def _look(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        version = (stat.st_ino, stat.st_mtime_ns)
        if version in self.versions:
            return
        self.versions.add(version)
        problem = self.check(self.path)
        if problem is not None:
            self.problems.append(problem)
