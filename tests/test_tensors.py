"""Tests of device selection, the handoff to torch and the shared-tensor guard."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from pytest_ptycho_fixture import devices, tensors
from pytest_ptycho_fixture.devices import DeviceUnavailable, parse_device_spec, worker_device
from pytest_ptycho_fixture.tensors import PtychoTensors, SharedTensors, to_tensors


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
    devices = [worker_device(f"gw{k}", "auto", 4)[0] for k in range(8)]
    assert devices == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"] * 2


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


def test_it_hands_the_arrays_to_torch_without_copying_on_the_cpu(
    ptycho_arrays: Mapping[str, NDArray[Any]],
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = to_tensors(ptycho_arrays, "cpu")
    n = ptycho_arrays["diffraction"].shape[0]
    assert result.diffraction.dtype == torch.float32 and result.diffraction.shape == (n, 64, 64)
    assert result.probe.dtype == torch.complex64 and result.object.dtype == torch.complex64
    assert result.coords.dtype == torch.float64 and result.coords.shape == (n, 2)
    assert result.diffraction.data_ptr() == ptycho_arrays["diffraction"].ctypes.data
    assert result.object.data_ptr() == ptycho_arrays["objectGuess"].ctypes.data
    np.testing.assert_array_equal(result.coords[:, 0].numpy(), ptycho_arrays["xcoords"])
    np.testing.assert_array_equal(result.coords[:, 1].numpy(), ptycho_arrays["ycoords"])
    assert result.xcoords_start is not None and result.scan_index is None
    assert result.device == torch.device("cpu")


def test_a_clone_is_independent_of_the_session_tensors(
    ptycho_arrays: Mapping[str, NDArray[Any]],
) -> None:
    shared = to_tensors(ptycho_arrays, "cpu")
    copy = shared.clone()
    copy.diffraction.add_(1)
    copy.coords.zero_()
    assert shared.versions() == {name: 0 for name, _ in shared.items()}
    np.testing.assert_array_equal(shared.diffraction.numpy(), ptycho_arrays["diffraction"])
    assert float(shared.coords.abs().sum()) > 0


def _private_copy(arrays: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    copies = {key: array.copy() for key, array in arrays.items()}
    for array in copies.values():
        array.flags.writeable = False
    return copies


def test_it_restores_a_modified_session_tensor_and_names_it(
    ptycho_arrays: Mapping[str, NDArray[Any]],
) -> None:
    arrays = _private_copy(ptycho_arrays)
    shared = SharedTensors(reload=lambda: _private_copy(ptycho_arrays), fixture="fixture.npz")
    session = shared.get(arrays, "cpu")
    assert shared.get(arrays, "cpu") is session
    assert shared.check("test_a.py::test_reads") is None
    session.diffraction[0].mul_(2)
    message = shared.check("test_a.py::test_writes")
    assert message is not None
    assert message.startswith(
        "test_a.py::test_writes modified the shared session tensor"
        " ptycho_tensors.diffraction (cpu) in place."
    )
    assert "restored from fixture.npz" in message and "ptycho_batch" in message
    np.testing.assert_array_equal(session.diffraction.numpy(), ptycho_arrays["diffraction"])
    np.testing.assert_array_equal(arrays["diffraction"], ptycho_arrays["diffraction"])
    assert shared.check("test_a.py::test_after") is None


def test_the_tensors_are_a_frozen_dataclass(ptycho_arrays: Mapping[str, NDArray[Any]]) -> None:
    result: Any = to_tensors(ptycho_arrays, "cpu")
    with pytest.raises(AttributeError):
        result.diffraction = result.probe
    assert isinstance(result, PtychoTensors)


@pytest.mark.cuda
def test_it_puts_the_tensors_on_each_gpu_equal_to_the_cpu_ones(
    ptycho_arrays: Mapping[str, NDArray[Any]],
) -> None:
    count = torch.cuda.device_count()
    cpu = to_tensors(ptycho_arrays, "cpu")
    for k in range(count):
        device = worker_device(f"gw{k}", "auto", count)[0]
        assert device == f"cuda:{k}"
        gpu = to_tensors(ptycho_arrays, device)
        for name, tensor in gpu.items():
            assert tensor.device == torch.device("cuda", k), name
            assert torch.equal(tensor.cpu(), getattr(cpu, name)), name
        gpu.diffraction.add_(1)
        tensors.restore(gpu, ptycho_arrays)
        assert torch.equal(gpu.diffraction.cpu(), cpu.diffraction)
