"""pty-chi 2.2.0 takes the fixture as ``to_ptychi`` hands it over: its own forward model
gives the fixture's intensities, and its LSQML recovers the fixture's object.

pty-chi's tasks change torch's global state: each sets torch's default device, undone
here after every task, and, given a ``random_seed``, reseeds torch, numpy and random, so
none is given (its minibatches are drawn by a generator of its own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from ptychi import api
from ptychi.api.task import PtychographyTask
from ptychi.reconstructors.lsqml import LSQMLReconstructor

from pytest_ptycho_fixture import PtychiInputs, forward, to_ptychi
from pytest_ptycho_fixture.metrics import lit_region, object_error

EPOCHS = 40
BATCH_SIZE = 16


@contextmanager
def ptychi_task(options: api.LSQMLOptions, inputs: PtychiInputs[Any]) -> Iterator[PtychographyTask]:
    """A task of ``inputs`` on the CPU; torch's default device is restored after it."""
    options.reconstructor_options.default_device = api.Devices.CPU
    try:
        yield PtychographyTask(options, **inputs.task_kwargs())
    finally:
        torch.set_default_device(None)


def lsqml_options(epochs: int, batch_size: int) -> api.LSQMLOptions:
    """LSQML of the object alone: the probe and the positions are those of the fixture."""
    options = api.LSQMLOptions()
    options.object_options.optimizable = True
    options.probe_options.optimizable = False
    options.probe_position_options.optimizable = False
    options.reconstructor_options.num_epochs = epochs
    options.reconstructor_options.batch_size = batch_size
    return options


def modelled_intensities(task: PtychographyTask, n: int) -> NDArray[np.float64]:
    """pty-chi's forward model at its ``n`` positions, the zero frequency at the centre as
    in the data it was given."""
    reconstructor = task.reconstructor
    assert isinstance(reconstructor, LSQMLReconstructor)
    assert reconstructor.forward_model is not None
    with torch.no_grad():
        modelled = reconstructor.forward_model.forward(torch.arange(n))
    return np.asarray(torch.fft.fftshift(modelled, dim=(-2, -1)).cpu(), dtype=np.float64)


@pytest.fixture(scope="module")
def on_whole_pixels(ptycho_arrays: Mapping[str, NDArray[Any]]) -> Mapping[str, NDArray[Any]]:
    """The fixture at its positions rounded to whole pixels, its amplitudes simulated
    there by this package's forward model: no sub-pixel interpolation on either side."""
    x, y = np.rint(ptycho_arrays["xcoords"]), np.rint(ptycho_arrays["ycoords"])
    amplitudes = forward(ptycho_arrays["probeGuess"], ptycho_arrays["objectGuess"], x, y)
    return {**ptycho_arrays, "xcoords": x, "ycoords": y, "diffraction": amplitudes}


def relative_difference(inputs: PtychiInputs[Any]) -> float:
    """``max |I_ptychi - I_fixture| / max I_fixture`` of pty-chi's forward model on the
    true object and probe of ``inputs``."""
    options = lsqml_options(epochs=1, batch_size=len(inputs.diffraction_data))
    inputs.configure(options)
    with ptychi_task(options, inputs) as task:
        modelled = modelled_intensities(task, len(inputs.diffraction_data))
    data = np.asarray(inputs.diffraction_data, dtype=np.float64)
    return float(np.abs(modelled - data).max() / data.max())


def test_ptychi_s_forward_model_gives_the_handed_over_intensities_at_whole_pixels(
    on_whole_pixels: Mapping[str, NDArray[Any]],
) -> None:
    difference = relative_difference(to_ptychi(on_whole_pixels))
    print(f"\npty-chi's model vs the handed-over intensities: {difference:.2e} of the maximum")
    assert difference <= 1e-5


def test_ptychi_s_forward_model_departs_from_the_intensities_half_a_pixel_away(
    on_whole_pixels: Mapping[str, NDArray[Any]],
) -> None:
    inputs = to_ptychi(on_whole_pixels)
    shifted = dataclasses.replace(
        inputs,
        probe_position_x_px=inputs.probe_position_x_px + 0.5,
        probe_position_y_px=inputs.probe_position_y_px + 0.5,
    )
    difference = relative_difference(shifted)
    print(f"\nhalf a pixel off: {difference:.2e} of the maximum")
    assert difference >= 1e-3


class Reconstruction(NamedTuple):
    """What pty-chi's LSQML gave back."""

    #: pty-chi's own loss, one per epoch.
    losses: NDArray[np.float64]
    #: ``(Ho, Wo)``: the object it found.
    object: NDArray[Any]
    #: ``(H, W)``: its probe at the end, handed over fixed.
    probe: NDArray[Any]


@pytest.fixture(scope="module")
def reconstruction(
    ptycho_arrays: Mapping[str, NDArray[Any]], ptycho_metadata: Mapping[str, Any]
) -> Reconstruction:
    """pty-chi's LSQML of the object from a flat one, the probe and positions fixed."""
    inputs = to_ptychi(ptycho_arrays, ptycho_metadata)
    flat = dataclasses.replace(inputs, object_data=np.ones_like(inputs.object_data))
    options = inputs.configure(lsqml_options(EPOCHS, BATCH_SIZE))
    with ptychi_task(options, flat) as task:
        task.run()
        assert task.reconstructor is not None
        return Reconstruction(
            task.reconstructor.loss_tracker.table["loss"].to_numpy(dtype=np.float64),
            np.asarray(task.get_data_to_cpu("object"))[0],
            np.asarray(task.get_data_to_cpu("probe"))[0, 0],
        )


def test_lsqml_from_a_flat_object_lowers_ptychi_s_loss_a_thousandfold(
    reconstruction: Reconstruction,
) -> None:
    losses = reconstruction.losses
    assert len(losses) == EPOCHS
    print(
        f"\npty-chi LSQML loss: {losses[0]:.4g} -> {losses[-1]:.4g},"
        f" {losses[0] / losses[-1]:.3g}x lower in {EPOCHS} epochs"
    )
    assert losses[-1] <= losses[0] / 1000


def test_lsqml_recovers_the_object_where_the_probe_lit_it_to_one_percent(
    reconstruction: Reconstruction, ptycho_arrays: Mapping[str, NDArray[Any]]
) -> None:
    truth = ptycho_arrays["objectGuess"]
    lit = lit_region(
        ptycho_arrays["probeGuess"], ptycho_arrays["xcoords"], ptycho_arrays["ycoords"], truth.shape
    )
    error = object_error(reconstruction.object, truth, lit)
    print(f"\npty-chi LSQML object error: {error:.3%} over {int(lit.sum())} lit pixels")
    assert error <= 0.01


def test_lsqml_leaves_the_fixed_probe_as_it_was_handed_over(
    reconstruction: Reconstruction, ptycho_arrays: Mapping[str, NDArray[Any]]
) -> None:
    # pty-chi rescales even a probe it does not optimise unless configure turns that off;
    # the object error, blind to a global factor, would not show it.
    assert np.array_equal(reconstruction.probe, ptycho_arrays["probeGuess"])
