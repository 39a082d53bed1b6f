"""The configuration reference (docs/configuration.md) against the parsers: every ini
option, pytest flag, command option, set key and environment variable has its line, and
every line names one that exists."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_ptycho_fixture import plugin
from pytest_ptycho_fixture.cli import build_parser
from pytest_ptycho_fixture.spec import OFFLINE_ENV, SET_KEYS

ROOT = Path(__file__).parent.parent
REFERENCE = ROOT / "docs" / "configuration.md"
#: Read by torch, not by the plugin, and documented for what the plugin makes of it.
READ_BY_TORCH = {"CUDA_VISIBLE_DEVICES"}


def documented(text: str) -> dict[str, set[str]]:
    """The names in the first column of each section's tables, by section (``## ...``,
    and ``### ...`` under it)."""
    sections: dict[str, set[str]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("### "):
            heading = line[4:].strip()
        elif match := re.match(r"^\| `([^`]+)` \|", line):
            sections.setdefault(heading, set()).add(match.group(1))
    return sections


class _Recorder:
    """What ``pytest_addoption`` declares: the flags and the ini options, by name."""

    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.ini: set[str] = set()

    def getgroup(self, *args: Any, **kwargs: Any) -> _Recorder:
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        self.flags.update(names)

    def addini(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.ini.add(name)


def declared_by_the_plugin() -> _Recorder:
    recorder = _Recorder()
    plugin.pytest_addoption(recorder)  # type: ignore[arg-type]
    return recorder


def command_options() -> dict[str, set[str]]:
    """Each ``ptycho-fixture`` command's ``--`` options, from the parser the script uses."""
    parser = build_parser()
    (commands,) = (
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    return {
        f"ptycho-fixture {name}": {
            option
            for action in sub._actions
            for option in action.option_strings
            if option.startswith("--") and option != "--help"
        }
        for name, sub in commands.choices.items()
    }


def variables_read_by_the_package() -> set[str]:
    """The environment variables the package's code reads by name."""
    source = ROOT / "src" / "pytest_ptycho_fixture"
    pattern = re.compile(r"""(?:environ\.get|environ\[|getenv)\(?\s*["']([A-Z_]+)["']""")
    found = {OFFLINE_ENV}
    for path in source.rglob("*.py"):
        found.update(pattern.findall(path.read_text(encoding="utf-8")))
    return found


@pytest.fixture(scope="module")
def reference() -> dict[str, set[str]]:
    return documented(REFERENCE.read_text(encoding="utf-8"))


def test_every_ini_option_has_its_line_and_no_other(reference: dict[str, set[str]]) -> None:
    assert reference["ini options"] == declared_by_the_plugin().ini


def test_every_pytest_flag_has_its_line_and_no_other(reference: dict[str, set[str]]) -> None:
    assert reference["pytest command-line flags"] == declared_by_the_plugin().flags


def test_every_option_of_every_command_has_its_line(reference: dict[str, set[str]]) -> None:
    options = command_options()
    assert set(options) >= {"ptycho-fixture generate", "ptycho-fixture verify"}
    for command, flags in options.items():
        assert reference.get(command, set()) == flags, command


def test_every_set_key_has_its_line(reference: dict[str, set[str]]) -> None:
    assert reference["Set keys"] == set(SET_KEYS)


def test_every_environment_variable_the_plugin_reads_has_its_line(
    reference: dict[str, set[str]],
) -> None:
    read = variables_read_by_the_package()
    assert {"PTYCHO_FIXTURE_OFFLINE", "XDG_CACHE_HOME", "PYTEST_ADDOPTS"} <= read
    assert reference["Environment variables"] == read | READ_BY_TORCH


def test_a_missing_line_is_found(reference: dict[str, set[str]]) -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("| `ptycho_fixture_store` |"))
    shorter = documented(text.replace(line + "\n", ""))
    assert shorter["ini options"] == declared_by_the_plugin().ini - {"ptycho_fixture_store"}
