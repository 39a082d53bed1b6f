"""Tests of the built-in synthetic scan and its bit-reproducible forward model."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import itertools
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from pytest_ptycho_fixture import simulate
from pytest_ptycho_fixture.simulate import (
    DETECTOR_SHAPE,
    OBJECT_SHAPE,
    SCAN_POSITIONS,
    SyntheticScan,
    forward,
    simulate_source,
    synthetic_scan,
)

STRATIFIED_64 = [(i * SCAN_POSITIONS) // 64 for i in range(64)]

# SHA-256 of forward() on the stratified 64 positions, as little-endian float32.
STRATIFIED_64_FLOAT32_SHA256 = "98a60330f11f13d75b4018588e43bdd8287b02bb5ad5ac0cca32550a85c42033"
# SHA-256 of the float64 bytes of those amplitudes, then object, probe, xcoords, ycoords.
SCAN_FLOAT64_SHA256 = "0d9a70173df3f1956e49b25de58a8610f6f5fd677c04c69f611e3fef758c4096"


@pytest.fixture(scope="module")
def scan() -> SyntheticScan:
    return synthetic_scan()


@pytest.fixture(scope="module")
def all_amplitudes(scan: SyntheticScan) -> NDArray[np.float64]:
    return forward(scan.probe, scan.object, scan.xcoords, scan.ycoords)


def _coverage(values: NDArray[np.float64], indices: list[int]) -> float:
    chosen = values[indices]
    return float((chosen.max() - chosen.min()) / (values.max() - values.min()))


def _reference_forward(
    probe: NDArray[np.complex128], obj: NDArray[np.complex128], x: float, y: float
) -> NDArray[np.float64]:
    """Straightforward model: per-pixel bilinear interpolation (x first) and numpy's FFT."""
    h, w = probe.shape
    patch = np.empty((h, w), dtype=np.complex128)
    for i in range(h):
        for j in range(w):
            yy = y - h / 2 + i
            xx = x - w / 2 + j
            r, c = int(np.floor(yy)), int(np.floor(xx))
            ty, tx = yy - r, xx - c
            top = obj[r, c] + tx * (obj[r, c + 1] - obj[r, c])
            bottom = obj[r + 1, c] + tx * (obj[r + 1, c + 1] - obj[r + 1, c])
            patch[i, j] = top + ty * (bottom - top)
    spectrum = np.fft.fftshift(np.fft.fft2(probe * patch, norm="ortho"))
    return np.abs(spectrum)


def test_own_sine_and_cosine_of_the_object_and_probe_match_numpy_to_1e_minus_15() -> None:
    # synthetic_scan() takes the object's and the probe's phases through _sin_cos_array.
    x = np.linspace(-10.0, 10.0, 100_001)
    sin, cos = simulate._sin_cos_array(x)
    assert np.max(np.abs(sin - np.sin(x))) <= 1e-15
    assert np.max(np.abs(cos - np.cos(x))) <= 1e-15


def test_own_sine_and_cosine_reject_non_finite_or_huge_arguments() -> None:
    with pytest.raises(ValueError, match="finite"):
        simulate._sin_cos_array(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="within"):
        simulate._sin_cos_array(1e9)


@pytest.mark.parametrize("n", [2, 8, 64, 1024])
def test_the_fft_twiddles_match_numpy_to_1e_minus_15_with_exact_quarter_turns(n: int) -> None:
    # forward() takes its FFT's twiddle factors exp(-2 pi i k / n) through _quadrant_sin_cos.
    real, imag = simulate._twiddles(n)
    angle = -2.0 * np.pi * np.arange(n // 2) / n
    assert np.max(np.abs(real - np.cos(angle))) <= 1e-15
    assert np.max(np.abs(imag - np.sin(angle))) <= 1e-15
    quarter_turns = np.arange(0, n // 2, max(n // 4, 1))
    assert list(real[quarter_turns]) == [1.0, 0.0][: quarter_turns.size]
    assert list(imag[quarter_turns]) == [0.0, -1.0][: quarter_turns.size]


@pytest.mark.parametrize("shape", [(5, 64, 64), (3, 8, 32), (2, 1, 2), (1, 128, 4)])
def test_own_fft_matches_numpy_fft2_to_1e_minus_12_relative(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    re = rng.standard_normal(shape)
    im = rng.standard_normal(shape)
    fr, fi = simulate._fft2(re, im)
    expected = np.fft.fft2(re + 1j * im)
    error = np.max(np.abs((fr + 1j * fi) - expected))
    assert error <= 1e-12 * np.max(np.abs(expected))


def test_own_fft_rejects_non_power_of_two_sizes() -> None:
    with pytest.raises(ValueError, match="power of two"):
        simulate._fft2(np.zeros((6, 8)), np.zeros((6, 8)))


def test_forward_matches_straightforward_numpy_fft_implementation_to_1e_minus_6(
    scan: SyntheticScan,
) -> None:
    indices = [0, 517, SCAN_POSITIONS - 1]
    xs = np.concatenate([scan.xcoords[indices], [50.0, 61.75]])
    ys = np.concatenate([scan.ycoords[indices], [60.0, 44.125]])
    got = forward(scan.probe, scan.object, xs, ys)
    for k in range(xs.size):
        expected = _reference_forward(scan.probe, scan.object, float(xs[k]), float(ys[k]))
        assert np.max(np.abs(got[k] - expected)) <= 1e-6 * np.max(expected)


def test_patch_pixel_at_half_shape_equals_object_at_integer_position(
    scan: SyntheticScan,
) -> None:
    h, w = DETECTOR_SHAPE
    xs = np.array([40.0, 33.0, 75.0])
    ys = np.array([50.0, 36.0, 79.0])
    pr, pi = simulate._extract_patches(
        scan.object.real.copy(), scan.object.imag.copy(), xs, ys, (h, w)
    )
    for k in range(xs.size):
        x, y = int(xs[k]), int(ys[k])
        assert pr[k, h // 2, w // 2] == scan.object[y, x].real
        assert pi[k, h // 2, w // 2] == scan.object[y, x].imag
        # Integer positions copy the object without interpolation.
        window = scan.object[y - h // 2 : y + h // 2, x - w // 2 : x + w // 2]
        assert np.array_equal(pr[k] + 1j * pi[k], window)


def test_delta_probe_yields_flat_pattern_of_object_modulus_over_64(
    scan: SyntheticScan,
) -> None:
    h, w = DETECTOR_SHAPE
    delta = np.zeros((h, w), dtype=np.complex128)
    delta[h // 2, w // 2] = 1.0
    amplitude = forward(delta, scan.object, np.array([70.0]), np.array([41.0]))[0]
    expected = abs(scan.object[41, 70]) / 64.0
    np.testing.assert_allclose(amplitude, expected, rtol=1e-14)


def test_forward_on_a_subset_equals_the_same_rows_of_the_full_scan_bit_for_bit(
    scan: SyntheticScan, all_amplitudes: NDArray[np.float64]
) -> None:
    subsets = [STRATIFIED_64, list(range(64)), [SCAN_POSITIONS - 1, 3, 700]]
    for indices in subsets:
        sub = forward(scan.probe, scan.object, scan.xcoords[indices], scan.ycoords[indices])
        assert np.array_equal(sub, all_amplitudes[indices])


def test_two_forward_calls_give_identical_bytes(scan: SyntheticScan) -> None:
    first = forward(scan.probe, scan.object, scan.xcoords[:200], scan.ycoords[:200])
    second = forward(scan.probe, scan.object, scan.xcoords[:200], scan.ycoords[:200])
    assert first.tobytes() == second.tobytes()


def test_forward_gives_identical_bytes_for_complex64_and_float32_inputs(
    scan: SyntheticScan,
) -> None:
    xs = scan.xcoords[STRATIFIED_64]
    ys = scan.ycoords[STRATIFIED_64]
    wide = forward(scan.probe, scan.object, xs, ys)
    narrow = forward(scan.probe.astype(np.complex64), scan.object.astype(np.complex64), xs, ys)
    assert wide.dtype == np.float64 and wide.shape == (64, *DETECTOR_SHAPE)
    assert wide.tobytes() == narrow.tobytes()
    xs32, ys32 = xs.astype(np.float32), ys.astype(np.float32)
    from_float32 = forward(scan.probe, scan.object, xs32, ys32)
    expected = forward(scan.probe, scan.object, xs32.astype(np.float64), ys32.astype(np.float64))
    assert from_float32.tobytes() == expected.tobytes()


def test_forward_raises_value_error_naming_the_position_outside_the_object(
    scan: SyntheticScan,
) -> None:
    xs = np.array([50.0, 50.0, 50.0])
    ys = np.array([50.0, 50.0, 31.5])
    with pytest.raises(ValueError, match="position 2"):
        forward(scan.probe, scan.object, xs, ys)
    # The bilinear neighbour one past the patch must fit as well.
    cols = OBJECT_SHAPE[1]
    with pytest.raises(ValueError, match="position 0"):
        forward(scan.probe, scan.object, np.array([cols - 32.0]), np.array([50.0]))
    forward(scan.probe, scan.object, np.array([cols - 33.0]), np.array([50.0]))
    with pytest.raises(ValueError, match="position 1"):
        forward(scan.probe, scan.object, np.array([50.0, np.nan]), np.array([50.0, 50.0]))


def test_object_and_probe_are_exactly_representable_in_complex64(scan: SyntheticScan) -> None:
    assert scan.object.dtype == np.complex128 and scan.object.shape == OBJECT_SHAPE
    assert scan.probe.dtype == np.complex128 and scan.probe.shape == DETECTOR_SHAPE
    for array in (scan.object, scan.probe):
        assert np.array_equal(array.astype(np.complex64).astype(np.complex128), array)


def test_object_amplitude_and_phase_have_texture_in_the_scanned_region(
    scan: SyntheticScan,
) -> None:
    amplitude = np.abs(scan.object)
    phase = np.angle(scan.object)
    assert 0.39 <= amplitude.min() and amplitude.max() <= 1.01
    assert -1.01 <= phase.min() and phase.max() <= 1.01
    region = (slice(3, 112), slice(2, 112))
    assert amplitude[region].std() > 0.04
    assert phase[region].std() > 0.1
    # Texture, not a ramp: neighbouring pixels differ noticeably somewhere.
    assert np.max(np.abs(np.diff(amplitude[region], axis=1))) > 0.05


def test_probe_phase_grows_quadratically_with_radius(scan: SyntheticScan) -> None:
    h, w = DETECTOR_SHAPE
    centre = scan.probe[h // 2, w // 2]
    radii = np.arange(2, 15)
    row = scan.probe[h // 2, w // 2 + radii]
    column = scan.probe[h // 2 + radii, w // 2]
    for ring in (row, column):
        delta = np.angle(ring * np.conj(centre))
        curvature = delta / radii**2
        assert abs(curvature[0]) > 1e-3
        np.testing.assert_allclose(curvature, curvature[0], rtol=1e-4)


def test_probe_is_brightest_in_the_centre_region_and_dark_at_the_edges(
    scan: SyntheticScan,
) -> None:
    h, w = DETECTOR_SHAPE
    amplitude = np.abs(scan.probe)
    peak_row, peak_col = np.unravel_index(int(np.argmax(amplitude)), amplitude.shape)
    assert (peak_row - h // 2) ** 2 + (peak_col - w // 2) ** 2 <= 16**2
    assert amplitude[h // 2, w // 2] == pytest.approx(amplitude.max(), rel=1e-6)
    assert amplitude[0, 0] == 0.0 and amplitude[h // 2, 0] == 0.0


def test_coordinates_have_1087_entries_and_exact_run1084_extremes(
    scan: SyntheticScan,
) -> None:
    for coords in (scan.xcoords, scan.ycoords):
        assert coords.shape == (SCAN_POSITIONS,) and coords.dtype == np.float64
    assert scan.xcoords.min() == 34.4 and scan.xcoords.max() == 79.3
    assert scan.ycoords.min() == 35.8 and scan.ycoords.max() == 79.1


@pytest.mark.parametrize("positions", [1, 2, 7, 64, 1000, 2000])
def test_coordinates_fit_the_ranges_for_any_number_of_positions(positions: int) -> None:
    s = synthetic_scan(positions)
    assert s.xcoords.shape == s.ycoords.shape == (positions,)
    assert 34.4 <= s.xcoords.min() and s.xcoords.max() <= 79.3
    assert 35.8 <= s.ycoords.min() and s.ycoords.max() <= 79.1
    if positions > 1:
        assert s.xcoords.min() == 34.4 and s.xcoords.max() == 79.3
        assert s.ycoords.min() == 35.8 and s.ycoords.max() == 79.1


def test_stratified_64_positions_cover_over_90_percent_of_both_ranges(
    scan: SyntheticScan,
) -> None:
    assert _coverage(scan.xcoords, STRATIFIED_64) > 0.9
    assert _coverage(scan.ycoords, STRATIFIED_64) > 0.9


def test_first_64_positions_cover_under_10_percent_of_the_y_range(scan: SyntheticScan) -> None:
    assert _coverage(scan.ycoords, list(range(64))) < 0.1


def test_maximum_amplitude_over_the_full_scan_is_between_1_5_and_1_9(
    all_amplitudes: NDArray[np.float64],
) -> None:
    assert all_amplitudes.shape == (SCAN_POSITIONS, *DETECTOR_SHAPE)
    assert np.all(np.isfinite(all_amplitudes))
    assert np.all(all_amplitudes >= 0.0)
    assert 1.5 <= all_amplitudes.max() <= 1.9


def test_synthetic_scan_is_deterministic_and_object_and_probe_ignore_positions(
    scan: SyntheticScan,
) -> None:
    again = synthetic_scan()
    small = synthetic_scan(10)
    for field in ("xcoords", "ycoords", "object", "probe"):
        assert getattr(again, field).tobytes() == getattr(scan, field).tobytes()
    assert small.object.tobytes() == scan.object.tobytes()
    assert small.probe.tobytes() == scan.probe.tobytes()


@pytest.mark.parametrize("positions", [0, -3])
def test_synthetic_scan_rejects_fewer_than_one_position(positions: int) -> None:
    with pytest.raises(ValueError):
        synthetic_scan(positions)


def test_simulate_source_has_the_stored_shapes_and_dtypes_in_both_layouts() -> None:
    positions = 150
    hwn = simulate_source(positions, "HWN")
    nhw = simulate_source(positions, layout="NHW")
    h, w = DETECTOR_SHAPE
    assert hwn["diffraction"].shape == (h, w, positions)
    assert nhw["diffraction"].shape == (positions, h, w)
    for source in (hwn, nhw):
        assert source["diffraction"].dtype == np.float64
        assert source["objectGuess"].dtype == np.complex128
        assert source["objectGuess"].shape == OBJECT_SHAPE
        assert source["probeGuess"].dtype == np.complex128
        assert source["probeGuess"].shape == DETECTOR_SHAPE
        for key in ("xcoords", "ycoords", "xcoords_start", "ycoords_start"):
            assert source[key].dtype == np.float64 and source[key].shape == (positions,)
        assert np.array_equal(source["xcoords_start"], source["xcoords"])
        assert np.array_equal(source["ycoords_start"], source["ycoords"])
    assert np.array_equal(hwn["diffraction"], nhw["diffraction"].transpose(1, 2, 0))
    for key in ("objectGuess", "probeGuess", "xcoords", "ycoords"):
        assert np.array_equal(hwn[key], nhw[key])
    scan = synthetic_scan(positions)
    assert np.array_equal(
        nhw["diffraction"], forward(scan.probe, scan.object, scan.xcoords, scan.ycoords)
    )


def test_simulate_source_rejects_an_unknown_layout() -> None:
    with pytest.raises(ValueError, match="layout"):
        simulate_source(4, layout="WHN")


@pytest.mark.golden
def test_stratified_forward_float32_digest_is_pinned(scan: SyntheticScan) -> None:
    amplitudes = forward(
        scan.probe, scan.object, scan.xcoords[STRATIFIED_64], scan.ycoords[STRATIFIED_64]
    )
    data = np.ascontiguousarray(amplitudes).astype("<f4").tobytes()
    assert hashlib.sha256(data).hexdigest() == STRATIFIED_64_FLOAT32_SHA256


def _scan_float64_digest() -> str:
    scan = synthetic_scan()
    idx = [(i * SCAN_POSITIONS) // 64 for i in range(64)]
    amplitudes = forward(scan.probe, scan.object, scan.xcoords[idx], scan.ycoords[idx])
    digest = hashlib.sha256()
    for array in (amplitudes, scan.object, scan.probe, scan.xcoords, scan.ycoords):
        digest.update(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


@pytest.mark.golden
def test_stratified_forward_and_scan_float64_digest_is_pinned() -> None:
    assert _scan_float64_digest() == SCAN_FLOAT64_SHA256


# The subprocess runs the very same digest function, without importing this test module.
_DIGEST_SCRIPT = (
    "from __future__ import annotations\n"
    "import hashlib\n"
    "import numpy as np\n"
    "from pytest_ptycho_fixture.simulate import SCAN_POSITIONS, forward, synthetic_scan\n"
    + inspect.getsource(_scan_float64_digest)
    + "print(_scan_float64_digest())\n"
)


def _dispatchable_cpu_features() -> list[str]:
    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            umath = importlib.import_module(name)
        except ImportError:  # numpy 1.x has no numpy._core
            continue
        return [str(feature) for feature in getattr(umath, "__cpu_dispatch__", [])]
    return []


def _digest_in_subprocess(extra_env: dict[str, str]) -> str:
    root = Path(simulate.__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NPY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    env.update(extra_env)
    done = subprocess.run(
        [sys.executable, "-c", _DIGEST_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_results_are_bit_identical_with_simd_dispatch_disabled() -> None:
    features = _dispatchable_cpu_features()
    if not features:
        pytest.skip("this numpy build dispatches to no optional CPU features")
    normal = _digest_in_subprocess({})
    baseline = _digest_in_subprocess({"NPY_DISABLE_CPU_FEATURES": " ".join(features)})
    assert len(normal) == 64
    assert baseline == normal


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_forward_reports_growing_counts_to_the_total_and_the_same_amplitudes_on_any_core_count(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    positions = 300
    scan = synthetic_scan(positions)
    plain: NDArray[np.float64] = forward(scan.probe, scan.object, scan.xcoords, scan.ycoords)
    # The batches follow the threads there are (one per core, up to eight).
    monkeypatch.setattr(simulate, "WORKERS", threads)
    reports: list[tuple[int, int]] = []
    reported = forward(
        scan.probe,
        scan.object,
        scan.xcoords,
        scan.ycoords,
        progress=lambda done, total: reports.append((done, total)),
    )
    assert {total for _, total in reports} == {positions}
    # Batches may finish in any order (they run in threads); the count only grows, to the
    # total, one batch at a time: never pattern by pattern.
    done = [seen for seen, _ in reports]
    assert done[0] > 0 and all(a < b for a, b in itertools.pairwise(done))
    assert done[-1] == positions
    assert len(reports) < positions
    assert reported.tobytes() == plain.tobytes()


def test_a_failing_batch_is_raised_after_the_threads_stop_and_no_new_batch_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scan = synthetic_scan(SCAN_POSITIONS)
    started: list[int] = []
    real = simulate._extract_patches

    def extract(*args: Any) -> Any:
        started.append(len(args[2]))
        if len(started) == 1:
            raise RuntimeError("batch 1")
        return real(*args)

    monkeypatch.setattr(simulate, "_extract_patches", extract)
    monkeypatch.setattr(simulate, "WORKERS", 1)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="batch 1"):
        forward(scan.probe, scan.object, scan.xcoords, scan.ycoords)
    assert len(started) == 1  # of nine batches of at most 128 positions
    assert threading.active_count() == before
