"""Tests of the handoff to torch (dtypes, shapes, devices) and the shared-tensor guard.

Choosing the device is tested in test_devices.py."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from pytest_ptycho_fixture import tensors
from pytest_ptycho_fixture.devices import worker_device
from pytest_ptycho_fixture.tensors import PtychoTensors, SharedTensors, to_tensors


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
