"""The handoff to pty-chi: its five conversions, on arrays and on tensors alike.

pty-chi itself is not installed here; the clients' environment runs pty-chi's own forward
model and LSQML on the handoff (interop/test_ptychi.py). These tests pin each conversion
to its rule, so that a change of one is seen here first."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from pytest_ptycho_fixture import to_ptychi
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.handoff import position_origin, probe_offset
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.npz.sidecar import read_sidecar
from pytest_ptycho_fixture.tensors import PtychoTensors


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    out = tmp_path_factory.mktemp("handoff") / "f.npz"
    generate_fixture(None, out, 64)
    return dict(load_npz(out).arrays), read_sidecar(out.with_suffix(".json"))


def tensors_of(arrays: dict[str, Any]) -> PtychoTensors:
    coords = np.stack([arrays["xcoords"], arrays["ycoords"]], axis=1)
    return PtychoTensors(
        torch.from_numpy(arrays["diffraction"].copy()),
        torch.from_numpy(arrays["probeGuess"].copy()),
        torch.from_numpy(arrays["objectGuess"].copy()),
        torch.from_numpy(coords),
    )


def test_the_intensities_are_on_the_scale_of_an_unnormalised_fft(
    fixture: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    arrays, _ = fixture
    inputs = to_ptychi(arrays)
    amplitudes = arrays["diffraction"]
    h, w = amplitudes.shape[1:]
    assert inputs.diffraction_data.dtype == np.float32
    np.testing.assert_array_equal(inputs.diffraction_data, np.square(amplitudes) * np.float32(h * w))
    # What that scale is for: |fft2(psi)|**2 = H * W * |fft2(psi, norm="ortho")|**2.
    psi = arrays["probeGuess"].astype(np.complex128)
    plain = np.abs(np.fft.fft2(psi)) ** 2
    ortho = np.abs(np.fft.fft2(psi, norm="ortho")) ** 2
    np.testing.assert_allclose(plain, ortho * h * w, rtol=1e-12)


@pytest.mark.parametrize(("shape", "origin"), [((227, 226), (113.5, 112.5)), ((128, 131), (63.5, 65.5))])
def test_the_origin_is_the_one_pty_chi_gives_an_object_of_that_shape(
    shape: tuple[int, int], origin: tuple[float, float]
) -> None:
    # pty-chi: (torch.tensor(shape) / 2).round() - 0.5, rounding half to even.
    expected = tuple(float(v) for v in (torch.tensor(shape) / 2.0).round() - 0.5)
    assert position_origin(shape) == expected == origin


def test_positions_put_the_probe_where_the_fixture_puts_it(
    fixture: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    arrays, _ = fixture
    inputs = to_ptychi(arrays)
    oy, ox = inputs.position_origin
    # pty-chi's probe centre (pixel (H - 1) / 2) sits at position + origin; the fixture's
    # (pixel H // 2) at its coordinate: the two probe corners must coincide.
    h, w = arrays["probeGuess"].shape
    corner_x = inputs.probe_position_x_px + ox - (w - 1) / 2
    corner_y = inputs.probe_position_y_px + oy - (h - 1) / 2
    np.testing.assert_allclose(corner_x, arrays["xcoords"] - w // 2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(corner_y, arrays["ycoords"] - h // 2, rtol=0, atol=1e-12)
    assert probe_offset(64) == 0.5 and probe_offset(63) == 0.0


def test_the_object_and_the_probe_have_the_shapes_pty_chi_takes(
    fixture: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    arrays, metadata = fixture
    inputs = to_ptychi(arrays, metadata)
    assert inputs.object_data.shape == (1, *arrays["objectGuess"].shape)
    assert inputs.probe_data.shape == (1, 1, *arrays["probeGuess"].shape)
    assert inputs.object_data.dtype == inputs.probe_data.dtype == np.complex64
    assert set(inputs.task_kwargs()) == {
        "diffraction_data",
        "object_data",
        "probe_data",
        "probe_position_x_px",
        "probe_position_y_px",
    }
    assert inputs.object_pixel_size_m == tuple(metadata["geometry"]["object_pixel_size_m"])


def test_tensors_give_the_same_inputs_as_arrays_on_their_own_device(
    fixture: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    arrays, metadata = fixture
    tensors = tensors_of(arrays)
    from_arrays, from_tensors = to_ptychi(arrays, metadata), to_ptychi(tensors, metadata)
    for name, value in from_tensors.task_kwargs().items():
        assert isinstance(value, torch.Tensor) and value.device == tensors.device, name
        np.testing.assert_array_equal(value.numpy(), from_arrays.task_kwargs()[name], err_msg=name)
    assert from_tensors.position_origin == from_arrays.position_origin
    # The shared tensors are left as they were.
    np.testing.assert_array_equal(tensors.diffraction.numpy(), arrays["diffraction"])


@pytest.mark.parametrize("optimizable", [False, True])
def test_configure_sets_the_fft_shift_and_keeps_a_fixed_probe_from_being_rescaled(
    fixture: tuple[dict[str, Any], dict[str, Any]], optimizable: bool
) -> None:
    arrays, metadata = fixture
    options = SimpleNamespace(
        data_options=SimpleNamespace(fft_shift=False),
        object_options=SimpleNamespace(
            pixel_size_m=1.0, remove_object_probe_ambiguity=SimpleNamespace(enabled=True)
        ),
        probe_options=SimpleNamespace(optimizable=optimizable),
        reconstructor_options=SimpleNamespace(rescale_probe_intensity_in_first_epoch=True),
    )
    assert to_ptychi(arrays, metadata).configure(options) is options
    assert options.data_options.fft_shift is True
    assert options.object_options.pixel_size_m == metadata["geometry"]["object_pixel_size_m"][0]
    rescaled = options.object_options.remove_object_probe_ambiguity.enabled
    assert rescaled is optimizable
    assert options.reconstructor_options.rescale_probe_intensity_in_first_epoch is optimizable


def test_without_a_recorded_geometry_the_object_pixel_is_left_to_the_caller(
    fixture: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    arrays, _ = fixture
    assert to_ptychi(arrays, {}).object_pixel_size_m is None
    assert to_ptychi(arrays).object_pixel_size_m is None
