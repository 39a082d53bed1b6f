"""pty-chi's LSQML, given the canonical fixture as the plugin hands it over, recovers the
object the fixture's patterns were made from: an integration test of a reconstruction
code on data whose answer is known."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from ptychi import api
from ptychi.api.task import PtychographyTask

from pytest_ptycho_fixture import to_ptychi
from pytest_ptycho_fixture.metrics import lit_region, object_error
from pytest_ptycho_fixture.tensors import PtychoTensors

EPOCHS = 40

pytestmark = pytest.mark.filterwarnings(
    # torch, raised once per process while pty-chi 2.2.0 builds a task: the bounding box
    # of the scanned region is made from the extremes of the probe positions, which
    # require grad, and stored as a constant through Python floats. No gradient is meant
    # to flow through the box, so the conversion loses nothing.
    "ignore:Converting a tensor with requires_grad=True to a scalar:UserWarning:torch.utils._device"
)


@pytest.fixture(scope="session")
def reconstruction(
    ptycho_tensors: PtychoTensors,
    ptycho_metadata: Mapping[str, Any],
    ptycho_device: torch.device,
) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """LSQML of the object alone, from a flat one, the fixture's probe and positions
    held fixed, on the selected device: pty-chi's loss per epoch and the object it
    found, brought to the CPU."""
    inputs = to_ptychi(ptycho_tensors, ptycho_metadata)
    flat = dataclasses.replace(inputs, object_data=torch.ones_like(inputs.object_data))
    options = api.LSQMLOptions()
    options.object_options.optimizable = True
    options.probe_options.optimizable = False
    options.probe_position_options.optimizable = False
    options.reconstructor_options.num_epochs = EPOCHS
    options.reconstructor_options.batch_size = 16
    on_gpu = ptycho_device.type == "cuda"
    options.reconstructor_options.default_device = api.Devices.GPU if on_gpu else api.Devices.CPU
    inputs.configure(options)
    # Two threads on a busy two-core machine make the run 10 to 20 times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = PtychographyTask(options, **flat.task_kwargs())
        task.run()
        assert task.reconstructor is not None
        losses = task.reconstructor.loss_tracker.table["loss"].to_numpy(dtype=np.float64)
        found = np.asarray(task.get_data_to_cpu("object"))[0]
    finally:
        # A task makes its device torch's default for the rest of the process.
        torch.set_default_device(None)
        torch.set_num_threads(threads)
    return losses, found


def test_lsqml_from_a_flat_object_lowers_the_loss_a_thousandfold(
    reconstruction: tuple[NDArray[np.float64], NDArray[Any]],
) -> None:
    losses, _ = reconstruction
    assert len(losses) == EPOCHS
    print(f"\nloss {losses[0]:.4g} -> {losses[-1]:.4g} ({losses[0] / losses[-1]:.3g}x lower)")
    assert losses[-1] <= losses[0] / 1000


def test_lsqml_recovers_the_object_where_the_probe_lit_it_to_one_percent(
    reconstruction: tuple[NDArray[np.float64], NDArray[Any]],
    ptycho_tensors: PtychoTensors,
) -> None:
    _, found = reconstruction
    truth = ptycho_tensors.object.cpu().numpy()
    coords = ptycho_tensors.coords.cpu().numpy()
    probe = ptycho_tensors.probe.cpu().numpy()
    lit = lit_region(probe, coords[:, 0], coords[:, 1], truth.shape)
    error = object_error(found, truth, lit)
    print(f"\nobject error {error:.3%} over {int(lit.sum())} lit pixels")
    assert error <= 0.01
