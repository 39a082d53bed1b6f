"""Option values (:mod:`pytest_ptycho_fixture.spec`): one parse function per option, the
same for the command line, the ini options and the Python API."""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import folder_entries, run_cli

from pytest_ptycho_fixture import spec
from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.spec import OptionError, argparse_type
from pytest_ptycho_fixture.subsets import subset_indices

LAYOUT_EXPECTED = "HWN or NHW (or nothing, to decide it from the number of coordinates)"
FRACTION_EXPECTED = "0, 1 or a number in between, e.g. 0.5"


def _lock_timeout(text: Any, option: str = "--ptycho-fixture-lock-timeout") -> float:
    return spec.parse_seconds(text, option)


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (spec.parse_subset_size, "16", 16),
        (spec.parse_subset_size, " 64 ", 64),
        (spec.parse_subset_size, 1087, 1087),
        (spec.parse_strategy, "stratified", "stratified"),
        (spec.parse_strategy, "first", "first"),
        (spec.parse_strategy, " first ", "first"),
        (spec.parse_layout, "HWN", "HWN"),
        (spec.parse_layout, " NHW ", "NHW"),
        (spec.parse_layout, "", None),
        (spec.parse_layout, "  ", None),
        (spec.parse_known_layout, "NHW", "NHW"),
        (_lock_timeout, "0", 0.0),
        (_lock_timeout, "600", 600.0),
        (_lock_timeout, "2.5", 2.5),
        (_lock_timeout, 30, 30.0),
        (spec.parse_device, "auto", "auto"),
        (spec.parse_device, " CPU ", "cpu"),
        (spec.parse_device, "cuda:01", "cuda:1"),
        (spec.parse_device, "all", "all"),
        (spec.parse_fraction, "0", 0.0),
        (spec.parse_fraction, "0.5", 0.5),
        (spec.parse_fraction, "1", 1.0),
        (spec.parse_fraction, 0.25, 0.25),
        (spec.parse_positions, "1", 1),
        (spec.parse_positions, "1087", 1087),
        (spec.parse_positions, 20, 20),
    ],
)
def test_each_parse_function_accepts_its_valid_forms(
    parse: Callable[[Any], object], text: object, value: object
) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (
            spec.parse_subset_size,
            "abc",
            "--subset-size: 'abc' is not a subset size: expected a whole number >= 16",
        ),
        (
            spec.parse_subset_size,
            "15",
            "--subset-size: '15' is not a subset size: expected a whole number >= 16",
        ),
        (
            spec.parse_subset_size,
            "64.0",
            "--subset-size: '64.0' is not a subset size: expected a whole number >= 16",
        ),
        (
            spec.parse_subset_size,
            15,
            "--subset-size: 15 is not a subset size: expected a whole number >= 16",
        ),
        (
            spec.parse_subset_size,
            True,
            "--subset-size: True is not a subset size: expected a whole number >= 16",
        ),
        (
            spec.parse_subset_size,
            64.0,
            "--subset-size: 64.0 is not a subset size: expected a whole number >= 16",
        ),
        (
            spec.parse_strategy,
            "nope",
            "--subset-strategy: 'nope' is not a subset strategy: expected stratified, first, spread or groups",
        ),
        (
            spec.parse_strategy,
            "Stratified",
            (
                "--subset-strategy: 'Stratified' is not a subset strategy:"
                " expected stratified, first, spread or groups"
            ),
        ),
        (
            spec.parse_strategy,
            "",
            "--subset-strategy: '' is not a subset strategy: expected stratified, first, spread or groups",
        ),
        (spec.parse_layout, "hwn", f"--layout: 'hwn' is not a layout: expected {LAYOUT_EXPECTED}"),
        (
            spec.parse_layout,
            "HWN-ish",
            f"--layout: 'HWN-ish' is not a layout: expected {LAYOUT_EXPECTED}",
        ),
        (spec.parse_known_layout, "", "--layout: '' is not a layout: expected HWN or NHW"),
        (
            _lock_timeout,
            "-1",
            (
                "--ptycho-fixture-lock-timeout: '-1' is not a lock timeout:"
                " expected a finite number of seconds >= 0"
            ),
        ),
        (
            _lock_timeout,
            "inf",
            (
                "--ptycho-fixture-lock-timeout: 'inf' is not a lock timeout:"
                " expected a finite number of seconds >= 0"
            ),
        ),
        (
            _lock_timeout,
            "nan",
            (
                "--ptycho-fixture-lock-timeout: 'nan' is not a lock timeout:"
                " expected a finite number of seconds >= 0"
            ),
        ),
        (
            _lock_timeout,
            "soon",
            (
                "--ptycho-fixture-lock-timeout: 'soon' is not a lock timeout:"
                " expected a finite number of seconds >= 0"
            ),
        ),
        (
            spec.parse_device,
            "gpu",
            "--ptycho-device: 'gpu' is not a device: expected auto, cpu, cuda, cuda:N or all",
        ),
        (
            spec.parse_device,
            "cuda:",
            "--ptycho-device: 'cuda:' is not a device: expected auto, cpu, cuda, cuda:N or all",
        ),
        (
            spec.parse_fraction,
            "2",
            f"--min-coverage: '2' is not a fraction between 0 and 1: expected {FRACTION_EXPECTED}",
        ),
        (
            spec.parse_fraction,
            "-0.1",
            (
                "--min-coverage: '-0.1' is not a fraction between 0 and 1:"
                f" expected {FRACTION_EXPECTED}"
            ),
        ),
        (
            spec.parse_fraction,
            "nan",
            f"--min-coverage: 'nan' is not a fraction between 0 and 1: expected {FRACTION_EXPECTED}",
        ),
        (
            spec.parse_fraction,
            "half",
            (
                "--min-coverage: 'half' is not a fraction between 0 and 1:"
                f" expected {FRACTION_EXPECTED}"
            ),
        ),
        (
            spec.parse_positions,
            "0",
            "--positions: '0' is not a positive whole number: expected 1 or more scan positions",
        ),
        (
            spec.parse_positions,
            "-5",
            "--positions: '-5' is not a positive whole number: expected 1 or more scan positions",
        ),
        (
            spec.parse_positions,
            "many",
            (
                "--positions: 'many' is not a positive whole number:"
                " expected 1 or more scan positions"
            ),
        ),
    ],
)
def test_each_parse_function_refuses_a_bad_value_naming_the_option_the_value_and_the_rule(
    parse: Callable[[Any], object], text: object, message: str
) -> None:
    with pytest.raises(OptionError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert caught.value.value == text


def test_the_caller_names_the_option_as_its_user_knows_it() -> None:
    with pytest.raises(OptionError) as caught:
        spec.parse_subset_size("many", "ini option ptycho_fixture_subset_size in tox.ini")
    assert str(caught.value) == (
        "ini option ptycho_fixture_subset_size in tox.ini: 'many' is not a subset size:"
        " expected a whole number >= 16"
    )


def test_an_option_error_keeps_its_parts_as_attributes_and_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="is not a subset strategy") as caught:
        spec.parse_strategy("random", "strategy")
    error = caught.value
    assert isinstance(error, OptionError)
    assert (error.option, error.value, error.what, error.expected) == (
        "strategy",
        "random",
        "subset strategy",
        "stratified, first, spread or groups",
    )
    assert error.reason == "'random' is not a subset strategy: expected stratified, first, spread or groups"


def test_an_option_error_survives_pickling() -> None:
    error = OptionError("--subset-size", "abc", "subset size", "a whole number >= 16")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OptionError
    assert str(copy) == str(error)
    assert repr(copy) == repr(error)
    assert (copy.option, copy.value, copy.what, copy.expected) == (
        error.option,
        error.value,
        error.what,
        error.expected,
    )


def test_argparse_type_turns_an_option_error_into_argparses_error_without_the_option_twice() -> (
    None
):
    convert = argparse_type(spec.parse_subset_size, "--subset-size")
    assert convert("32") == 32
    assert convert.__name__ == "subset size"
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        convert("abc")
    assert str(caught.value) == "'abc' is not a subset size: expected a whole number >= 16"


def test_an_argparse_parser_reports_the_flag_once(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="prog")
    parser.add_argument("--subset-strategy", type=argparse_type(spec.parse_strategy, "--x"))
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--subset-strategy", "nope"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "prog: error: argument --subset-strategy: 'nope' is not a subset strategy:"
        " expected stratified, first, spread or groups"
    )


def test_importing_spec_imports_neither_numpy_nor_torch() -> None:
    code = (
        "import sys, pytest_ptycho_fixture.spec as s; s.parse_device('cpu');"
        " print(sorted({'numpy', 'torch'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------ command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["generate", "--subset-size", "abc"],
            "argument --subset-size: 'abc' is not a subset size: expected a whole number >= 16",
        ),
        (
            ["generate", "--subset-size", "15"],
            "argument --subset-size: '15' is not a subset size: expected a whole number >= 16",
        ),
        (
            ["generate", "--subset-strategy", "nope"],
            (
                "argument --subset-strategy: 'nope' is not a subset strategy:"
                " expected stratified, first, spread or groups"
            ),
        ),
        (
            ["generate", "--layout", "hwn"],
            f"argument --layout: 'hwn' is not a layout: expected {LAYOUT_EXPECTED}",
        ),
        (
            ["generate", "--min-coverage", "2"],
            (
                "argument --min-coverage: '2' is not a fraction between 0 and 1:"
                f" expected {FRACTION_EXPECTED}"
            ),
        ),
        (
            ["simulate", "--positions", "0"],
            (
                "argument --positions: '0' is not a positive whole number:"
                " expected 1 or more scan positions"
            ),
        ),
        (
            ["simulate", "--layout", ""],
            "argument --layout: '' is not a layout: expected HWN or NHW",
        ),
    ],
)
def test_the_cli_refuses_a_bad_option_value_with_its_usage_naming_the_flag(
    args: list[str], message: str, out: Path
) -> None:
    command, *options = args
    result = run_cli(command, "--output", out / "f.npz", *options)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"usage: ptycho-fixture {command} [-h]")
    assert lines[-1] == f"ptycho-fixture {command}: error: {message}"
    assert "Traceback" not in result.stderr
    assert folder_entries(out) == []


def test_the_cli_help_still_lists_the_values_of_strategy_and_layout() -> None:
    result = run_cli("generate", "--help")
    assert result.returncode == 0
    assert "--subset-strategy {stratified,first,spread,groups}" in result.stdout
    assert "--layout {HWN,NHW}" in result.stdout


# ------------------------------------------------------------------ Python API


def test_the_api_refuses_a_bad_strategy_with_the_cli_wording(legacy: Path, out: Path) -> None:
    with pytest.raises(OptionError) as caught:
        generate_fixture(legacy, out / "fixture.npz", strategy="nope")
    cli = run_cli("generate", "--output", out / "f.npz", "--subset-strategy", "nope")
    assert str(caught.value) == (
        "strategy: 'nope' is not a subset strategy: expected stratified, first, spread or groups"
    )
    assert cli.stderr.splitlines()[-1].endswith(f"--subset-strategy: {caught.value.reason}")
    assert folder_entries(out) == []


def test_the_api_refuses_a_bad_option_before_it_opens_the_source(out: Path) -> None:
    missing = out / "missing.npz"
    with pytest.raises(OptionError, match=r"^subset_size: 15 is not a subset size: expected"):
        generate_fixture(missing, out / "fixture.npz", 15)
    with pytest.raises(OptionError, match=r"^min_coverage: 2 is not a fraction between 0 and 1"):
        generate_fixture(missing, out / "fixture.npz", min_coverage=2)
    assert folder_entries(out) == []


def test_a_subset_larger_than_the_source_is_a_contract_error_naming_the_source(
    legacy: Path, out: Path
) -> None:
    with pytest.raises(ContractError) as caught:
        generate_fixture(legacy, out / "fixture.npz", 101)
    assert str(caught.value) == (
        f"{legacy}: subset size 101 is out of range: expected 16 <= size <= 100"
        " (the source has 100 positions)"
    )
    assert folder_entries(out) == []


def test_subset_indices_refuses_a_strategy_it_does_not_know() -> None:
    positions = np.arange(100.0)
    assert subset_indices("first", positions, positions, 3) == [0, 1, 2]
    with pytest.raises(OptionError, match=r"^strategy: 'random' is not a subset strategy"):
        subset_indices("random", positions, positions, 16)
