"""cdtools-py 0.3.2 loads the fixture's CXI export with the fixture's positions and
geometry, and its FancyPtycho, given the true probe, recovers the object.

cdtools cuts each probe's window out of its object at ``floor(p - m)``, ``p`` the
position in pixels and ``m`` the model's ``min_translation``, and shifts the probe by the
fraction left over; the fixture's window starts at ``(y - H // 2, x - W // 2)``. Choosing
``m`` so that the two differ by whole pixels puts the fixture's object inside cdtools'
on the same grid, where the two can be compared pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cdtools.datasets import Ptycho2DDataset
from cdtools.models import FancyPtycho
from cdtools.tools.interactions import translations_to_pixel
from numpy.typing import NDArray

from pytest_ptycho_fixture import export_fixture
from pytest_ptycho_fixture.metrics import lit_region, object_error

ITERATIONS = 20


@pytest.fixture(scope="module")
def cxi_file(fixture_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture exported as a CXI file."""
    path = tmp_path_factory.mktemp("cdtools") / "minimal_dataset_v1.cxi"
    export_fixture(fixture_npz, "cxi", path)
    return path


def load(cxi_file: Path) -> Ptycho2DDataset:
    # The patterns are intensities >= 0 already: nothing for cut_zeros to clip.
    return Ptycho2DDataset.from_cxi(cxi_file, cut_zeros=False)


def test_cdtools_reads_the_fixture_s_positions_from_the_cxi_export(
    cxi_file: Path, fixture_arrays: Mapping[str, NDArray[Any]]
) -> None:
    dataset = load(cxi_file)
    model = FancyPtycho.from_dataset(dataset)
    with torch.no_grad():
        pixels = translations_to_pixel(
            model.obj_basis, dataset.translations, surface_normal=model.surface_normal
        )
    rows, cols = fixture_arrays["objectGuess"].shape
    expected = np.stack(
        [fixture_arrays["ycoords"] - rows / 2, fixture_arrays["xcoords"] - cols / 2], axis=1
    )
    deviation = float(np.abs(pixels.numpy().astype(np.float64) - expected).max())
    print(f"\ncdtools' pixel translations within {deviation:.2e} px of (y - Ho/2, x - Wo/2)")
    assert deviation <= 1e-4


def test_cdtools_reads_the_wavelength_and_distance_the_sidecar_records(
    cxi_file: Path, fixture_geometry: Mapping[str, Any]
) -> None:
    dataset = load(cxi_file)
    # cdtools keeps the wavelength in float32.
    assert dataset.wavelength == np.float32(fixture_geometry["wavelength_m"])
    assert dataset.detector_geometry["distance"] == fixture_geometry["detector_distance_m"]


def align_object_grid(model: FancyPtycho, arrays: Mapping[str, NDArray[Any]]) -> tuple[int, int]:
    """Set ``model.min_translation`` so that cdtools' object pixels are the fixture's
    shifted by whole pixels; return where the fixture's first pixel lies in
    ``model.obj``."""
    h, w = arrays["probeGuess"].shape
    rows, cols = arrays["objectGuess"].shape
    default = model.min_translation.numpy().astype(np.float64)
    # The whole-pixel offset nearest below cdtools' own choice, keeping its padding.
    offset = np.floor(default + (rows / 2, cols / 2) - (h // 2, w // 2))
    aligned = offset + (h // 2, w // 2) - (rows / 2, cols / 2)
    model.min_translation.copy_(torch.as_tensor(aligned, dtype=model.min_translation.dtype))
    top, left = int(-offset[0]), int(-offset[1])
    assert top >= 0 and left >= 0
    assert top + rows <= model.obj.shape[-2] and left + cols <= model.obj.shape[-1]
    return top, left


@pytest.fixture(scope="module")
def reconstruction(
    cxi_file: Path, fixture_arrays: Mapping[str, NDArray[Any]]
) -> tuple[list[float], NDArray[np.complex64]]:
    """FancyPtycho from its flat start, the true probe set and held fixed: Adam's loss per
    epoch and the object found, on the fixture's grid."""
    dataset = load(cxi_file)
    model = FancyPtycho.from_dataset(dataset)
    top, left = align_object_grid(model, fixture_arrays)
    # cdtools keeps its probe divided by probe_norm.
    model.probe.data[0] = torch.as_tensor(fixture_arrays["probeGuess"]) / model.probe_norm
    for fixed in (model.probe, model.weights, model.translation_offsets, model.background):
        fixed.requires_grad_(False)
    # The minibatches are shuffled by torch's global generator: seeded, then restored.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        losses = [
            float(loss)
            for loss in model.Adam_optimize(
                ITERATIONS, dataset, lr=0.02, batch_size=16, thread=False
            )
        ]
    rows, cols = fixture_arrays["objectGuess"].shape
    found = model.obj.detach()[top : top + rows, left : left + cols].numpy()
    return losses, found


def test_fancyptycho_with_the_true_probe_lowers_its_loss_a_hundredfold(
    reconstruction: tuple[list[float], NDArray[np.complex64]],
) -> None:
    losses, _ = reconstruction
    assert len(losses) == ITERATIONS
    print(
        f"\ncdtools FancyPtycho loss: {losses[0]:.4g} -> {losses[-1]:.4g},"
        f" {losses[0] / losses[-1]:.3g}x lower in {ITERATIONS} iterations"
    )
    assert losses[-1] <= losses[0] / 100


def test_fancyptycho_recovers_the_object_where_the_probe_lit_it(
    reconstruction: tuple[list[float], NDArray[np.complex64]],
    fixture_arrays: Mapping[str, NDArray[Any]],
) -> None:
    _, found = reconstruction
    truth = fixture_arrays["objectGuess"]
    lit = lit_region(
        fixture_arrays["probeGuess"],
        fixture_arrays["xcoords"],
        fixture_arrays["ycoords"],
        truth.shape,
    )
    error = object_error(found, truth, lit)
    print(f"\ncdtools FancyPtycho object error: {error:.3%} over {int(lit.sum())} lit pixels")
    # 20 iterations leave it near 0.8%; positions half a pixel off leave it several percent.
    assert error <= 0.02
