"""``--stress N`` (or ``PTYCHO_STRESS=N``) multiplies the rounds of the race, crash and
corruption suites; the pytest runs that tests start get a cache folder of their own; and
the ``out`` and ``legacy`` fixtures of the generator and command-line tests."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from helpers import write_source


def _factor(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a stress factor: expected a whole number >= 1"
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress",
        type=_factor,
        nargs="?",
        const=10,
        metavar="N",
        help="multiply the rounds of the race, crash and corruption suites by N (10 if N is"
        " omitted; default: the PTYCHO_STRESS environment variable, else 1)",
    )


@pytest.fixture(scope="session")
def stress(pytestconfig: pytest.Config) -> int:
    """The factor the long suites multiply their rounds by."""
    factor: int | None = pytestconfig.getoption("stress")
    if factor is None:
        try:
            factor = _factor(os.environ.get("PTYCHO_STRESS", "1"))
        except argparse.ArgumentTypeError as exc:
            raise pytest.UsageError(f"PTYCHO_STRESS: {exc}") from None
    return factor


@pytest.fixture(autouse=True)
def _own_cache_folder_for_inner_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under tox, pytest puts every run's cache in $TOX_ENV_DIR/.pytest_cache, so the
    # pytest runs a test starts would share one cached fixture; each must have its own.
    monkeypatch.delenv("TOX_ENV_DIR", raising=False)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty output folder, to check that nothing is left in it."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A 100-position source in the legacy (H,W,N) layout, float64 and complex128."""
    return write_source(tmp_path / "source.npz")
