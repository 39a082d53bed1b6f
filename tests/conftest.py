"""``--stress N`` (or ``PTYCHO_STRESS=N``) multiplies the rounds of the race, crash and
corruption suites."""

from __future__ import annotations

import argparse
import os

import pytest


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
