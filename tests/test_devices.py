"""Tests of device selection: a device request parsed, each process's device picked, and
what a pytest run does with ``--ptycho-device``, the ``cuda`` marker and a missing torch."""

from __future__ import annotations

import pytest
import torch

from pytest_ptycho_fixture import devices
from pytest_ptycho_fixture.devices import DeviceUnavailable, parse_device_spec, worker_device

pytest_plugins = ["pytester"]


@pytest.mark.parametrize(
    ("worker", "spec", "count", "expected"),
    [
        (None, "auto", 0, ["cpu"]),
        ("gw3", "auto", 0, ["cpu"]),
        (None, "auto", 2, ["cuda:0"]),
        ("gw0", "auto", 4, ["cuda:0"]),
        ("gw3", "auto", 2, ["cuda:1"]),
        ("gw5", "cuda", 4, ["cuda:1"]),
        ("gw7", "cuda", 1, ["cuda:0"]),
        ("gw1", "cuda:0", 2, ["cuda:0"]),
        ("gw2", "cpu", 8, ["cpu"]),
        (None, "all", 0, ["cpu"]),
        ("gw1", "all", 2, ["cpu", "cuda:0", "cuda:1"]),
    ],
)
def test_it_spreads_workers_over_the_visible_gpus(
    worker: str | None, spec: str, count: int, expected: list[str]
) -> None:
    assert worker_device(worker, spec, count) == expected


def test_it_gives_every_worker_a_gpu_of_its_own_while_there_are_enough() -> None:
    chosen = [worker_device(f"gw{k}", "auto", 4)[0] for k in range(8)]
    assert chosen == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"] * 2


@pytest.mark.parametrize(
    ("spec", "count", "message"),
    [
        ("cuda", 0, "cuda requested but no CUDA device is visible"),
        ("cuda:0", 0, "cuda:0 requested but no CUDA device is visible"),
        ("cuda:2", 2, "cuda:2 requested but 2 CUDA devices are visible (cuda:0 .. cuda:1)"),
        ("cuda:1", 1, "cuda:1 requested but 1 CUDA device is visible (cuda:0)"),
    ],
)
def test_it_refuses_an_explicit_gpu_that_is_not_there(spec: str, count: int, message: str) -> None:
    with pytest.raises(DeviceUnavailable) as excinfo:
        worker_device("gw0", spec, count)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("text", "spec"),
    [("auto", "auto"), (" CPU ", "cpu"), ("cuda", "cuda"), ("cuda:01", "cuda:1"), ("all", "all")],
)
def test_it_normalises_device_requests(text: str, spec: str) -> None:
    assert parse_device_spec(text) == spec


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:-1", "cuda:x", "mps", ""])
def test_it_rejects_unknown_devices_quoting_them(text: str) -> None:
    with pytest.raises(ValueError, match=f"^{text!r} is not a device: expected auto, cpu, cuda"):
        parse_device_spec(text)


@pytest.mark.parametrize(("worker", "index"), [(None, 0), ("master", 0), ("gw0", 0), ("gw12", 12)])
def test_it_reads_the_index_of_an_xdist_worker(worker: str | None, index: int) -> None:
    assert devices.worker_index(worker) == index


# -- through pytest runs ----------------------------------------------------------------

@pytest.fixture(autouse=True)
def _without_unrelated_plugins(request: pytest.FixtureRequest) -> None:
    # hypothesis's plugin re-imports hypothesis in every in-process run: seconds each.
    if "pytester" in request.fixturenames:
        monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:hypothesispytest -W error")


def test_it_registers_its_marker_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cuda
        def test_on_a_gpu():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", "-rs")
    if torch.cuda.is_available():
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["SKIPPED * needs a CUDA device: torch * CUDA*"])


def test_it_selects_the_device_asked_for(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import torch

        def test_device(ptycho_device, ptycho_tensors):
            assert ptycho_device == torch.device("cpu")
            assert ptycho_tensors.diffraction.device == ptycho_device
        """
    )
    result = pytester.runpytest("--ptycho-device", "cpu")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["ptycho-fixture: *, device cpu"])


def test_without_torch_the_arrays_work_and_the_tensors_say_how_to_install_it(
    pytester: pytest.Pytester,
) -> None:
    # torch is an optional dependency: None in sys.modules makes its import fail.
    pytester.makeconftest("import sys\nsys.modules['torch'] = None\n")
    pytester.makepyfile(
        """
        import pytest

        def test_arrays(ptycho_arrays):
            assert ptycho_arrays["diffraction"].shape == (64, 64, 64)

        def test_tensors(ptycho_tensors):
            pass

        @pytest.mark.cuda
        def test_on_a_gpu():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=1, errors=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*ptycho-fixture: ptycho_device needs torch, which is not installed: pip install *"
            + "torch (or pip install pytest-ptycho-fixture[[]torch])",
            "*needs a CUDA device: torch is not installed*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_auto_picks_cuda_where_there_is_one_and_the_cpu_elsewhere(
    pytester: pytest.Pytester,
) -> None:
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    pytester.makepyfile(
        f"""
        def test_device(ptycho_device, ptycho_tensors):
            assert str(ptycho_device) == {expected!r}
            assert ptycho_tensors.diffraction.device == ptycho_device
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    # The summary names the GPU it ran on.
    named = f"cuda:0 ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    result.stdout.fnmatch_lines([f"ptycho-fixture: *, device {named}"])


def test_all_devices_parametrize_the_tests_that_use_them(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_x(ptycho_tensors, ptycho_device):
            assert ptycho_tensors.diffraction.device == ptycho_device

        def test_without_a_device():
            pass
        """
    )
    result = pytester.runpytest("--ptycho-device", "all", "-v")
    devices = ["cpu", *(f"cuda:{k}" for k in range(torch.cuda.device_count()))]
    result.assert_outcomes(passed=len(devices) + 1)
    result.stdout.fnmatch_lines([f"*::test_x[[]{device}[]] PASSED*" for device in devices])
    result.stdout.fnmatch_lines(["*::test_without_a_device PASSED*"])


def test_an_explicit_gpu_that_is_not_there_is_a_usage_error(pytester: pytest.Pytester) -> None:
    missing = f"cuda:{torch.cuda.device_count()}"
    result = pytester.runpytest("--ptycho-device", missing)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --ptycho-device: {missing} requested but * visible*; use auto or cpu instead"]
    )


def test_cuda_without_a_gpu_is_a_usage_error_not_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No GPU is visible to the run, also on a machine that has one.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = pytester.runpytest_subprocess("--ptycho-device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --ptycho-device: cuda requested but no CUDA device is visible (torch *)*"]
    )
