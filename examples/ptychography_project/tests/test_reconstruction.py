"""The reconstruction, run on the canonical fixture on every device (ptycho_device = all)."""

from __future__ import annotations

import pytest
import torch
from ptychography_project.model import Reconstruction, forward, fourier_error, reconstruct

from pytest_ptycho_fixture.tensors import PtychoTensors

ITERATIONS = 50


@pytest.fixture(scope="session")
def reconstruction(ptycho_tensors: PtychoTensors) -> Reconstruction:
    """The object recovered from the fixture's amplitudes, probe and positions."""
    t = ptycho_tensors
    shape = (t.object.shape[0], t.object.shape[1])
    return reconstruct(t.diffraction, t.probe, t.coords, shape, iterations=ITERATIONS)


def test_the_fixture_is_reproduced_by_the_forward_model_with_the_true_object(
    ptycho_tensors: PtychoTensors, ptycho_device: torch.device
) -> None:
    t = ptycho_tensors
    assert t.diffraction.device.type == ptycho_device.type
    model = forward(t.probe, t.object, t.coords)
    assert float((model - t.diffraction).abs().max() / t.diffraction.max()) <= 1e-5
    assert fourier_error(model, t.diffraction) <= 1e-5


def test_gradient_descent_from_a_flat_object_lowers_the_fourier_error_tenfold(
    reconstruction: Reconstruction, ptycho_device: torch.device
) -> None:
    assert reconstruction.object.device.type == ptycho_device.type
    errors = reconstruction.errors
    assert len(errors) == ITERATIONS + 1
    # The flat start is far from the data; the descent gets at least ten times closer.
    assert errors[0] > 0.2
    assert errors[-1] <= 0.1 * errors[0], errors


def test_the_recovered_object_matches_the_truth_where_the_probe_lit_it(
    reconstruction: Reconstruction, ptycho_tensors: PtychoTensors
) -> None:
    received = reconstruction.illumination
    lit = received > 0.5 * received.max()
    truth, found = ptycho_tensors.object[lit], reconstruction.object[lit]
    # Amplitudes cannot tell a global phase: compare after removing it.
    overlap = torch.vdot(found, truth)
    aligned = found * overlap / overlap.abs()
    error = torch.linalg.vector_norm(aligned - truth) / torch.linalg.vector_norm(truth)
    assert int(lit.sum()) > 1000
    assert float(error) <= 0.01
