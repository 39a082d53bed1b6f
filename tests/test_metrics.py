"""The error a reconstruction is judged by: the object against the truth where the probe
lit it, after the one complex factor intensities cannot fix."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from pytest_ptycho_fixture.metrics import LIT_FRACTION, illumination, lit_region, object_error

Scan = tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]


@pytest.fixture
def scan() -> Scan:
    rng = np.random.default_rng(5)
    probe = np.zeros((8, 8), dtype=np.complex64)
    probe[2:6, 2:6] = 1
    xs, ys = np.array([20.0, 22.4, 40.0]), np.array([20.0, 20.0, 41.6])
    truth = (rng.random((64, 64)) + 1j * rng.random((64, 64))).astype(np.complex64)
    return probe, xs, ys, truth


def test_the_illumination_sums_each_probe_at_its_whole_pixel_position(scan: Scan) -> None:
    probe, xs, ys, truth = scan
    total = illumination(probe, xs, ys, truth.shape)
    assert total.sum() == pytest.approx(3 * 16)
    # The probe's lit 4 x 4 block starts 2 pixels into it, which starts at x - 8 // 2; the
    # second probe, at x = 22.4, lands on x = 22 and overlaps the first by two columns.
    assert total[18:22, 18:20].max() == 1.0 and total[18:22, 20:22].min() == 2.0
    assert total[18:22, 22:24].max() == 1.0 and total[17, 20] == 0.0
    assert total[40:44, 38:42].min() == 1.0 and total[0, 0] == 0.0


def test_the_lit_region_is_where_the_illumination_passes_its_fraction(scan: Scan) -> None:
    probe, xs, ys, truth = scan
    total = illumination(probe, xs, ys, truth.shape)
    lit = lit_region(probe, xs, ys, truth.shape)
    assert np.array_equal(lit, total > LIT_FRACTION * total.max())
    assert int(lit.sum()) == 40


def test_a_global_phase_and_scale_are_not_errors_but_a_change_in_the_lit_region_is(
    scan: Scan,
) -> None:
    probe, xs, ys, truth = scan
    lit = lit_region(probe, xs, ys, truth.shape)
    assert object_error(0.5 * np.exp(1j * 2.0) * truth, truth, lit) == pytest.approx(0, abs=1e-12)
    changed = truth.copy()
    changed[~lit] = 0
    assert object_error(changed, truth, lit) == pytest.approx(0, abs=1e-12)
    changed[np.argwhere(lit)[0][0], np.argwhere(lit)[0][1]] += 1.0
    assert object_error(changed, truth, lit) > 0.01
