"""Reading what ptychodus writes: its CXI product and combined CXI (probe at image_1,
object at image_2), its NPZ product, its diffraction.h5 and NPZ of patterns (intensities,
paired with the positions by scan index); and CXI files without a probe, given one with
--probe or with one estimated from their patterns.

The files are made by tests/ptychodus_files.py in ptychodus' layouts; the clients'
environment checks the same readers on files ptychodus writes itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from h5files import nhw_arrays, write_cxi, write_product
from helpers import one_error_line, run_cli
from numpy.typing import NDArray
from ptychodus_files import (
    CENTRE_M,
    write_combined_cxi,
    write_cxi_patterns,
    write_cxi_product,
    write_diffraction_h5,
    write_npz_patterns,
    write_npz_product,
)

from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.npz.writer import write_npz
from pytest_ptycho_fixture.sources.hdf5 import ESTIMATE_RULE

#: The content digest of the fixture of a CXI file without a probe, its probe estimated:
#: the same on numpy 1.26 and 2.x (the tox envs numpy1 and numpy2 run this module's golden
#: tests). Recompute: python -m pytest tests/test_ptychodus_files.py -k golden, and read
#: the digest from the failure.
ESTIMATED_PROBE_CONTENT_SHA256 = "f8f4df36ebf5c1c04581fc90d607640c99151854813de74dedcd4585b07c4c31"


@pytest.fixture(scope="module")
def scan() -> dict[str, NDArray[Any]]:
    return nhw_arrays()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, scan: dict[str, Any]) -> dict[str, Any]:
    """The fixture of the same scan from an NPZ of amplitudes in object pixels."""
    folder = tmp_path_factory.mktemp("reference")
    write_npz(folder / "scan.npz", scan, compress=False)
    generate_fixture(folder / "scan.npz", folder / "f.npz", 64)
    return dict(load_npz(folder / "f.npz").arrays)


def assert_same_fixture(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal object and probe, coordinates to 1e-9 px, amplitudes equal or one float32
    step apart (a square root was taken)."""
    np.testing.assert_array_equal(got["objectGuess"], want["objectGuess"])
    np.testing.assert_array_equal(got["probeGuess"], want["probeGuess"])
    for key in ("xcoords", "ycoords"):
        assert np.abs(got[key] - want[key]).max() <= 1e-9, key
    step = np.spacing(want["diffraction"].astype(np.float32))
    assert (np.abs(got["diffraction"] - want["diffraction"]) <= step).all()


def generated(tmp_path: Path, source: Path, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    out = tmp_path / "out" / "f.npz"
    generate_fixture(source, out, 64, **options)
    return dict(load_npz(out).arrays), json.loads(out.with_suffix(".json").read_text())


# -- the probe and the object are told apart by content ---------------------------------


def test_a_combined_cxi_yields_its_object_from_image_2_and_its_probe_from_image_1(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    arrays, meta = generated(tmp_path, write_combined_cxi(tmp_path / "c.cxi"))
    assert_same_fixture(arrays, reference)
    assert meta["source_datasets"]["objectGuess"] == "/entry_1/image_2/data (complex)"
    geometry = meta["geometry"]
    assert geometry["object_center_m"] == list(CENTRE_M)
    assert geometry["photon_energy_eV"] == pytest.approx(8000.0, rel=1e-12)


def test_a_probe_large_enough_to_be_an_object_is_never_taken_for_the_object(
    tmp_path: Path,
) -> None:
    # A 128-pixel probe at image_1 (the old reading took image_1 for the object, and 128
    # passes the object's minimum side), the object at image_2, no illumination link.
    rng = np.random.default_rng(7)
    n, side = 20, 128
    probe = (rng.random((side, side)) + 1j * rng.random((side, side))).astype(np.complex64)
    obj = np.exp(1j * rng.random((300, 300))).astype(np.complex64)
    pixel = 5e-8
    with h5py.File(tmp_path / "s.cxi", "w") as f:
        f["/entry_1/data_1/data"] = rng.random((n, side, side))
        translation = np.zeros((n, 3))
        translation[:, 0] = rng.uniform(-40, 40, n) * pixel
        translation[:, 1] = rng.uniform(-40, 40, n) * pixel
        f["/entry_1/sample_1/geometry_1/translation"] = translation
        f["/entry_1/instrument_1/detector_1/distance"] = 2.0
        f["/entry_1/instrument_1/detector_1/x_pixel_size"] = 75e-6
        f["/entry_1/instrument_1/detector_1/y_pixel_size"] = 75e-6
        f["/entry_1/instrument_1/source_1/energy"] = 8000 * 1.602176634e-19
        f["/entry_1/image_1/data"] = probe
        f["/entry_1/image_2/data"] = obj
    out = tmp_path / "f.npz"
    generate_fixture(tmp_path / "s.cxi", out, 16)
    arrays = load_npz(out).arrays
    np.testing.assert_array_equal(arrays["probeGuess"], probe)
    np.testing.assert_array_equal(arrays["objectGuess"], obj)


def test_an_image_of_the_detectors_shape_is_never_the_object_so_one_is_made(
    tmp_path: Path,
) -> None:
    def probe_as_image(f: h5py.File) -> None:
        f["/entry_1/image_1/data"] = f["/entry_1/instrument_1/source_1/illumination"][()]

    source = write_cxi(tmp_path / "s.cxi", image=False, edit=probe_as_image)
    arrays, meta = generated(tmp_path, source)
    assert arrays["objectGuess"].shape[0] >= 128
    assert np.all(arrays["objectGuess"] == 1)
    assert meta["source_datasets"]["objectGuess"].startswith("none in the file")


# -- products in each container, with their patterns in each form -------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda folder: write_cxi_patterns(folder / "d.cxi"), id="CXI patterns"),
        pytest.param(lambda folder: write_diffraction_h5(folder / "diffraction.h5"), id="diffraction.h5"),
        pytest.param(lambda folder: write_npz_patterns(folder / "d.npz"), id="NPZ patterns"),
    ],
)
@pytest.mark.parametrize(
    "product",
    [
        pytest.param(lambda folder: write_cxi_product(folder / "p.cxi"), id="CXI product"),
        pytest.param(lambda folder: write_npz_product(folder / "p.npz"), id="NPZ product"),
        pytest.param(lambda folder: write_product(folder / "p.h5"), id="HDF5 product"),
    ],
)
def test_each_product_with_each_form_of_patterns_gives_the_same_fixture(
    tmp_path: Path, reference: dict[str, Any], make: Any, product: Any
) -> None:
    source, patterns = product(tmp_path), make(tmp_path)
    arrays, meta = generated(tmp_path, source, diffraction=patterns)
    assert_same_fixture(arrays, reference)
    assert meta["source_format"].startswith("ptychodus-product")
    assert meta["geometry"]["detector_distance_m"] > 0


def test_patterns_stored_in_another_order_are_paired_with_their_positions_by_index(
    tmp_path: Path, scan: dict[str, Any]
) -> None:
    order = np.random.default_rng(3).permutation(100)
    patterns = write_diffraction_h5(tmp_path / "diffraction.h5", order=order)
    arrays, meta = generated(tmp_path, write_cxi_product(tmp_path / "p.cxi"), diffraction=patterns)
    # The source is read in the patterns' order, each pattern with its own position.
    picked = np.asarray(meta["subset_indices"])
    for key in ("xcoords", "ycoords"):
        assert np.abs(arrays[key] - scan[key][order][picked]).max() <= 1e-9, key
    want = scan["diffraction"][order][picked].astype(np.float32)
    assert (np.abs(arrays["diffraction"] - want) <= np.spacing(want)).all()
    assert any("paired with the patterns" in note for note in meta["validation_notes"])


def test_patterns_of_other_scan_indexes_are_refused_naming_both_files(tmp_path: Path) -> None:
    patterns = write_diffraction_h5(tmp_path / "diffraction.h5")
    with h5py.File(patterns, "a") as f:
        f["indexes"][0] = 1000
    product = write_cxi_product(tmp_path / "p.cxi")
    with pytest.raises(ContractError) as caught:
        generate_fixture(product, tmp_path / "f.npz", 64, diffraction=patterns)
    line = str(caught.value)
    assert line.startswith(f"{patterns}: the patterns' scan indexes")
    assert f"are not those of the product {product}'s positions" in line
    assert "\n" not in line and not (tmp_path / "f.npz").exists()


def test_a_product_without_patterns_names_the_forms_they_may_take(tmp_path: Path) -> None:
    line = one_error_line(
        run_cli("generate", "--source", write_npz_product(tmp_path / "p.npz"), "--output", tmp_path / "f.npz")
    )
    assert "is a ptychodus product file, which holds no diffraction patterns" in line
    assert "--diffraction DATA.cxi, diffraction.h5 or DATA.npz" in line


def test_an_npz_product_without_its_distance_is_refused_as_ptychodus_refuses_it(
    tmp_path: Path,
) -> None:
    product = write_npz_product(tmp_path / "p.npz")
    with np.load(product) as f:
        kept = {key: f[key] for key in f.files if key != "detector_object_distance_m"}
    np.savez(product, **kept)
    with pytest.raises(ContractError, match="without 'detector_object_distance_m'"):
        generate_fixture(product, tmp_path / "f.npz", 64, diffraction=write_npz_patterns(tmp_path / "d.npz"))


# -- a CXI file without a probe ------------------------------------------------------------


def test_a_cxi_file_without_a_probe_gets_one_estimated_from_its_patterns(
    tmp_path: Path,
) -> None:
    arrays, meta = generated(tmp_path, write_cxi(tmp_path / "s.cxi", probe=False))
    probe = arrays["probeGuess"].astype(np.complex128)
    # The rule: its far field through a flat object has the patterns' mean intensity.
    far = np.abs(np.fft.fftshift(np.fft.fft2(probe, norm="ortho")))
    mean = np.sqrt(np.mean(arrays["diffraction"].astype(np.float64) ** 2, axis=0))
    np.testing.assert_allclose(far, mean, rtol=0, atol=1e-5 * mean.max())
    assert ESTIMATE_RULE.format(n=64) in meta["transformations"]
    assert meta["source_datasets"]["probeGuess"].endswith("estimated from the patterns")


@pytest.mark.golden
def test_the_estimated_probe_has_the_same_bits_on_every_numpy(tmp_path: Path) -> None:
    source = write_cxi(tmp_path / "s.cxi", probe=False)
    out = tmp_path / "f.npz"
    generate_fixture(source, out, 64)
    assert load_npz(out).content_sha256 == ESTIMATED_PROBE_CONTENT_SHA256


@pytest.mark.parametrize("form", ["npy", "npz"])
def test_a_probe_given_with_probe_is_used_as_it_is(
    tmp_path: Path, scan: dict[str, Any], form: str
) -> None:
    probe = (scan["probeGuess"] * 0.5).astype(np.complex64)
    if form == "npy":
        given = tmp_path / "probe.npy"
        np.save(given, probe)
    else:
        given = tmp_path / "probe.npz"
        write_npz(given, {"probeGuess": probe})
    arrays, meta = generated(tmp_path, write_cxi(tmp_path / "s.cxi", probe=False), probe=given)
    np.testing.assert_array_equal(arrays["probeGuess"], probe)
    assert meta["source_datasets"]["probeGuess"] == f"{given} (complex, given with --probe)"


def test_a_probe_given_for_a_file_that_holds_one_is_refused(
    tmp_path: Path, scan: dict[str, Any]
) -> None:
    given = tmp_path / "probe.npy"
    np.save(given, scan["probeGuess"])
    line = one_error_line(
        run_cli(
            "generate", "--source", write_cxi(tmp_path / "s.cxi"), "--probe", given,
            "--output", tmp_path / "out" / "f.npz",
        )
    )  # fmt: skip
    assert "holds its own probe at '/entry_1/instrument_1/source_1/illumination'; drop --probe" in line
    assert not (tmp_path / "out").exists()


def test_a_pickled_probe_file_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    given = tmp_path / "probe.npy"
    np.save(given, np.array([{"not": "a probe"}], dtype=object), allow_pickle=True)
    with pytest.raises(ContractError, match="is not an NPY file"):
        generate_fixture(write_cxi(tmp_path / "s.cxi", probe=False), tmp_path / "f.npz", 64, probe=given)
