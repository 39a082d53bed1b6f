"""Progress of long work: a tqdm bar on a terminal's stderr, nothing on a pipe or with --quiet."""

from __future__ import annotations

import fcntl
import itertools
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from helpers import cli_command, run_cli, write_source

from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz import reader as npzread
from pytest_ptycho_fixture.simulate import simulate_source

POSITIONS = 300


class Terminal:
    """What a command wrote to stdout (a pipe) and to stderr (a pseudo-terminal)."""

    def __init__(self, *args: object, cwd: Path) -> None:
        master, slave = pty.openpty()
        # A terminal of 0 columns, as a bare pseudo-terminal reports, gets no bar at all.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        process = subprocess.Popen(
            [*cli_command(), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            cwd=cwd,
        )
        os.close(slave)
        received = bytearray()
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1.0)
                if not ready:
                    if process.poll() is not None:
                        break
                    continue
                try:
                    block = os.read(master, 65536)
                except OSError:  # EIO: every writer has closed the terminal
                    break
                if not block:
                    break
                received += block
        finally:
            os.close(master)
        assert process.stdout is not None
        self.stdout = process.stdout.read().decode()
        process.stdout.close()
        self.returncode = process.wait(timeout=120)
        self.terminal = received.decode(errors="replace")


def last_drawn(terminal: str, description: str) -> str:
    """The last state drawn of the bar with this description (each redraw starts with a CR)."""
    states = [line for line in re.split(r"[\r\n]", terminal) if f"{description}:" in line]
    assert states, f"no {description!r} bar on the terminal: {terminal!r}"
    return states[-1]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A legacy source whose diffraction (9.8 MB) takes two 8 MiB chunks to stream."""
    path = tmp_path_factory.mktemp("source") / "scan.npz"
    return write_source(path, simulate_source(POSITIONS))


# -- on a terminal ----------------------------------------------------------------------


def test_simulate_draws_a_bar_of_the_patterns_on_a_terminal(tmp_path: Path) -> None:
    shown = Terminal("simulate", "--output", "s.npz", "--positions", POSITIONS, cwd=tmp_path)
    assert shown.returncode == 0, shown.terminal
    bar = last_drawn(shown.terminal, "simulating")
    assert re.search(r"simulating:\s*100%", bar), bar
    assert re.search(rf"\b{POSITIONS}/{POSITIONS}\b", bar), bar
    # The rate, in patterns a second (or seconds a pattern on a slow machine).
    assert re.search(r"pattern/s|s/pattern", bar), bar
    assert shown.stdout.splitlines()[0] == f"wrote s.npz: {POSITIONS} positions, layout HWN"


def test_generate_draws_a_bar_of_the_source_bytes_read_on_a_terminal(
    source: Path, tmp_path: Path
) -> None:
    shown = Terminal("generate", "--source", source, "--output", "f.npz", cwd=tmp_path)
    assert shown.returncode == 0, shown.terminal
    bar = last_drawn(shown.terminal, "reading source")
    assert re.search(r"reading source:\s*100%", bar), bar
    # All the bytes, with binary prefixes: 9.375 MiB (in decimal prefixes, 9.83 MB).
    shown_total = re.search(r"\b(\d+(?:\.\d+)?)M/\1M\b", bar)
    assert shown_total is not None, bar
    assert float(shown_total.group(1)) == pytest.approx(POSITIONS * 64 * 64 * 8 / 2**20, rel=0.01)
    assert shown.stdout.splitlines()[0] == "wrote f.npz"


@pytest.mark.parametrize(
    "command",
    [["simulate", "--output", "s.npz", "--positions", str(POSITIONS)], ["generate", "--source"]],
    ids=["simulate", "generate"],
)
def test_quiet_leaves_the_terminal_untouched(
    command: list[str], source: Path, tmp_path: Path
) -> None:
    if command[0] == "generate":
        command = [*command, str(source), "--output", "f.npz"]
    shown = Terminal(*command, "--quiet", cwd=tmp_path)
    assert shown.returncode == 0, shown.terminal
    assert shown.terminal == ""
    assert shown.stdout.startswith("wrote ")


# -- not on a terminal --------------------------------------------------------------------


def test_nothing_is_written_to_stderr_when_it_is_a_pipe(source: Path, tmp_path: Path) -> None:
    simulated = run_cli("simulate", "--output", tmp_path / "s.npz", "--positions", POSITIONS)
    generated = run_cli("generate", "--source", source, "--output", tmp_path / "f.npz")
    for result in (simulated, generated):
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""


# -- the hooks ----------------------------------------------------------------------------


def test_generate_reports_the_bytes_streamed_after_each_chunk_up_to_the_total(
    source: Path, tmp_path: Path
) -> None:
    reports: list[tuple[int, int]] = []
    generate_fixture(
        source, tmp_path / "f.npz", progress=lambda done, total: reports.append((done, total))
    )
    total = POSITIONS * 64 * 64 * 8
    assert {seen_total for _, seen_total in reports} == {total}
    done = [seen for seen, _ in reports]
    steps = [b - a for a, b in itertools.pairwise([0, *done])]
    # The count grows to the total, at most a chunk at a time: the source, larger than a
    # chunk, moves the bar before the end; and it is not reported pattern by pattern.
    assert min(steps) > 0 and done[-1] == total
    assert max(steps) <= npzread.CHUNK_BYTES < total
    assert len(reports) < POSITIONS


def test_the_plugin_and_the_command_line_import_neither_tqdm_nor_matplotlib() -> None:
    script = (
        "import sys\n"
        "import pytest_ptycho_fixture.plugin, pytest_ptycho_fixture.cli\n"
        "print(sorted({'tqdm', 'matplotlib', 'numpy', 'torch'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
