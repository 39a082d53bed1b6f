"""HDF5 sources: CXI files, ptychodus product files and mapped layouts, written with h5py,
through the API, the command line and the plugin; the hostile ones are in the shared
table of bad sources (tests/helpers.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from h5files import (
    DATA,
    DETECTOR,
    DETECTOR_PIXEL_M,
    DISTANCE_M,
    MAPPED,
    MAPPED_TEXT,
    OBJECT_PIXEL_M,
    PRODUCT_CENTRE_M,
    WAVELENGTH_M,
    nhw_arrays,
    write_cxi,
    write_mapped,
    write_product,
)
from h5files import ILLUMINATION as ILLUMINATION_PATH
from h5files import TRANSLATION as TRANSLATION_PATH
from helpers import folder_entries, one_error_line, run_cli, write_source
from processes import USES_THE_FIXTURE

from pytest_ptycho_fixture.contract import ContractError, validate_fixture
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz

#: content_sha256 of the fixture generated with the defaults from ``golden_cxi``: a CXI
#: file of the simulator's first 200 positions, gzip-compressed, intensities 400 * a**2.
#: Recompute with ``generate_fixture(golden_cxi(folder), out)`` and read the sidecar.
GOLDEN_CXI_CONTENT_SHA256 = "da125a48ef0100e69e8678db83d8935fad7b60d65e69083b64c58d032331e0c1"


def load(path: Path) -> dict[str, Any]:
    return dict(load_npz(path).arrays)


def sidecar(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    return meta


def scan_npz(path: Path, arrays: dict[str, Any] | None = None) -> Path:
    """The scan as an NPZ of what CXI holds too (no ``*_start`` coordinates)."""
    a = nhw_arrays() if arrays is None else arrays
    return write_source(path, a, xcoords_start=None, ycoords_start=None)


def golden_cxi(folder: Path) -> Path:
    return write_cxi(folder / "golden.cxi", nhw_arrays(200), kind="gzip", scale=400.0)


# ----------------------------------------------------------------------------- CXI


@pytest.mark.parametrize("kind", ["contiguous", "chunked", "gzip", "lzf"])
def test_a_cxi_file_gives_the_npz_fixture_of_the_same_scan_to_float32_rounding(
    kind: str, tmp_path: Path
) -> None:
    npz = generate_fixture(scan_npz(tmp_path / "scan.npz"), tmp_path / "a.npz")
    cxi = generate_fixture(write_cxi(tmp_path / "scan.cxi", kind=kind), tmp_path / "b.npz")
    a, b = load(npz.output_path), load(cxi.output_path)
    assert sorted(a) == sorted(b)
    # The amplitudes come back as sqrt(a**2): the same float32 value, or the next one.
    spacing = np.spacing(a["diffraction"])
    assert np.all(np.abs(b["diffraction"] - a["diffraction"]) <= spacing)
    np.testing.assert_array_equal(b["objectGuess"], a["objectGuess"])
    np.testing.assert_array_equal(b["probeGuess"], a["probeGuess"])
    for key in ("xcoords", "ycoords"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-12)
    assert sidecar(cxi.output_path)["subset_indices"] == sidecar(npz.output_path)["subset_indices"]


def test_the_cxi_storage_does_not_change_the_fixture(tmp_path: Path) -> None:
    digests = {
        sidecar(
            generate_fixture(
                write_cxi(tmp_path / f"{kind}.cxi", kind=kind), tmp_path / f"{kind}.npz"
            ).output_path
        )["content_sha256"]
        for kind in ("contiguous", "chunked", "gzip", "lzf")
    }
    assert len(digests) == 1


@pytest.mark.golden
def test_the_cxi_golden_digest_is_stable(tmp_path: Path) -> None:
    generated = generate_fixture(golden_cxi(tmp_path), tmp_path / "f.npz")
    assert sidecar(generated.output_path)["content_sha256"] == GOLDEN_CXI_CONTENT_SHA256


def test_intensities_are_scaled_by_the_power_of_two_that_keeps_them_below_ten(
    tmp_path: Path,
) -> None:
    plain = generate_fixture(write_cxi(tmp_path / "a.cxi"), tmp_path / "a.npz")
    # 1000x the intensity is about 31.6x the amplitude: 2**-5 brings it back below 10.
    bright = generate_fixture(write_cxi(tmp_path / "b.cxi", scale=1000.0), tmp_path / "b.npz")
    a, b = load(plain.output_path)["diffraction"], load(bright.output_path)["diffraction"]
    peak = float(np.sqrt(1000.0) * a.max())
    k = int(np.ceil(np.log2(peak / 10)))
    assert b.max() < 10 <= b.max() * 2
    np.testing.assert_allclose(b, a * np.sqrt(1000.0) * 2.0**-k, rtol=1e-6)
    steps = sidecar(bright.output_path)["transformations"]
    assert any(f"amplitude = sqrt(intensity) * 2**-{k}" in step for step in steps), steps


def test_the_sidecar_records_the_format_the_datasets_and_the_object_pixel(tmp_path: Path) -> None:
    meta = sidecar(generate_fixture(write_cxi(tmp_path / "s.cxi"), tmp_path / "f.npz").output_path)
    assert meta["source_format"] == "cxi"
    assert meta["source_datasets"]["diffraction"] == f"{DATA} (intensities, counts)"
    assert meta["source_datasets"]["energy"].endswith("(J)")
    assert any(f"{OBJECT_PIXEL_M:.6g} m (x)" in step for step in meta["transformations"])


def test_a_cxi_file_without_an_object_guess_gets_a_unit_object_and_the_sidecar_says_so(
    tmp_path: Path,
) -> None:
    generated = generate_fixture(write_cxi(tmp_path / "s.cxi", image=False), tmp_path / "f.npz")
    arrays, meta = load(generated.output_path), sidecar(generated.output_path)
    obj = arrays["objectGuess"]
    np.testing.assert_array_equal(obj, np.ones_like(obj))
    notes = " ".join(meta["validation_notes"] + meta["transformations"])
    assert "no object guess" in notes and "unit-amplitude object" in notes
    # Every patch lies inside the made object, as the simulator's scan lies in its own.
    half = DETECTOR // 2
    rows, cols = obj.shape
    for key, side in (("xcoords", cols), ("ycoords", rows)):
        assert arrays[key].min() - half >= 0 and arrays[key].max() + half <= side


# ------------------------------------------------------------------------- product


@pytest.mark.parametrize("patterns", ["cxi", "npz"])
def test_a_product_file_maps_its_positions_as_ptychodus_does(patterns: str, tmp_path: Path) -> None:
    a = nhw_arrays()
    product = write_product(tmp_path / "product.h5", a)
    data = (
        write_cxi(tmp_path / "data.cxi", a)
        if patterns == "cxi"
        else write_source(tmp_path / "data.npz", {"diffraction": a["diffraction"]})
    )
    generated = generate_fixture(product, tmp_path / "f.npz", diffraction=data)
    arrays, meta = load(generated.output_path), sidecar(generated.output_path)
    index = np.asarray(meta["subset_indices"])
    with h5py.File(product) as f:
        x_m = f["probe_position_x_m"][()][index]
        rows, cols = f["object"].shape[-2:]
    # ptychodus' ObjectGeometry.map_coordinates_probe_to_object, written out here.
    expected = (x_m - PRODUCT_CENTRE_M[0]) / OBJECT_PIXEL_M + cols / 2
    np.testing.assert_allclose(arrays["xcoords"], expected, rtol=1e-12)
    np.testing.assert_allclose(arrays["xcoords"], a["xcoords"][index], rtol=1e-9)
    np.testing.assert_array_equal(arrays["objectGuess"], a["objectGuess"].astype(np.complex64))
    assert (rows, cols) == arrays["objectGuess"].shape
    assert meta["source_format"] == "ptychodus-product"
    assert meta["source_diffraction"] == str(data)
    spacing = np.spacing(a["diffraction"][index].astype(np.float32))
    assert np.all(np.abs(arrays["diffraction"] - a["diffraction"][index]) <= spacing)


def test_a_product_file_without_its_patterns_is_refused_with_the_fix(tmp_path: Path) -> None:
    product = write_product(tmp_path / "product.h5")
    with pytest.raises(ContractError, match="holds no diffraction patterns; give them with"):
        generate_fixture(product, tmp_path / "out" / "f.npz")
    assert not (tmp_path / "out").exists()


def test_a_product_and_patterns_of_another_scan_are_refused(tmp_path: Path) -> None:
    product = write_product(tmp_path / "product.h5")
    data = write_cxi(tmp_path / "data.cxi", nhw_arrays(120))
    with pytest.raises(ContractError, match="holds 120 patterns but the product .* has 100"):
        generate_fixture(product, tmp_path / "f.npz", diffraction=data)


def test_a_product_with_several_probe_modes_is_refused(tmp_path: Path) -> None:
    def two_modes(f: h5py.File) -> None:
        probe = f["probe"][()]
        del f["probe"]
        f["probe"] = np.concatenate([probe, probe], axis=1)

    product = write_product(tmp_path / "product.h5", edit=two_modes)
    data = write_cxi(tmp_path / "data.cxi")
    with pytest.raises(ContractError, match=r"has shape \(1, 2, 64, 64\) but one 2-D probe"):
        generate_fixture(product, tmp_path / "f.npz", diffraction=data)


# ---------------------------------------------------------------------- --keys


@pytest.mark.parametrize("kind", ["contiguous", "chunked"])
def test_a_mapped_layout_in_the_legacy_order_gives_the_npz_fixture(
    kind: str, tmp_path: Path
) -> None:
    npz = generate_fixture(scan_npz(tmp_path / "scan.npz"), tmp_path / "a.npz")
    mapped = generate_fixture(
        write_mapped(tmp_path / "scan.h5", kind=kind), tmp_path / "b.npz", keys=MAPPED
    )
    a, b = load(npz.output_path), load(mapped.output_path)
    for key in a:
        np.testing.assert_array_equal(b[key], a[key])
    meta = sidecar(mapped.output_path)
    assert meta["source_layout"] == "HWN" and meta["source_keys"] == MAPPED


def test_keys_may_name_intensities_instead_of_amplitudes(tmp_path: Path) -> None:
    path = write_mapped(tmp_path / "scan.h5")
    with h5py.File(path, "a") as f:
        f["intensities"] = f[MAPPED["diffraction"]][()] ** 2
    keys = {**MAPPED, "intensities": "/intensities"}
    del keys["diffraction"]
    generated = generate_fixture(path, tmp_path / "f.npz", keys=keys)
    plain = generate_fixture(path, tmp_path / "g.npz", keys=MAPPED)
    a, b = load(plain.output_path)["diffraction"], load(generated.output_path)["diffraction"]
    assert np.all(np.abs(a - b) <= np.spacing(a))


def test_keys_for_an_npz_source_are_refused(tmp_path: Path) -> None:
    source = write_source(tmp_path / "s.npz")
    with pytest.raises(ContractError, match="is not an HDF5 file, and --keys applies only"):
        generate_fixture(source, tmp_path / "f.npz", keys=MAPPED)


# ------------------------------------------------------------------ verify, memory


def test_verify_source_digests_the_whole_cxi_file_and_keeps_the_fixture(tmp_path: Path) -> None:
    source = write_cxi(tmp_path / "s.cxi", kind="gzip")
    quick = generate_fixture(source, tmp_path / "a.npz")
    whole = generate_fixture(source, tmp_path / "b.npz", verify_source=True)
    a, b = sidecar(quick.output_path), sidecar(whole.output_path)
    assert a["content_sha256"] == b["content_sha256"]
    assert a["source_content_sha256"] is None
    assert len(b["source_content_sha256"]) == 64
    again = generate_fixture(source, tmp_path / "c.npz", verify_source=True)
    assert sidecar(again.output_path)["source_content_sha256"] == b["source_content_sha256"]
    assert a["source_fingerprint"] == b["source_fingerprint"]


#: lambda z / p: the object pixel times the detector's side.
ENERGY_DISTANCE_OVER_PIXEL = WAVELENGTH_M * DISTANCE_M / DETECTOR_PIXEL_M

#: The high-water mark of the child's own memory, KiB. Not ru_maxrss: a child that
#: subprocess starts with vfork reports its parent's peak there until it grows past it.
HIGH_WATER = """
def high_water():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
"""

PEAK_RSS = (
    HIGH_WATER
    + """
import sys
from pytest_ptycho_fixture.generate import generate_fixture
generate_fixture(sys.argv[1], sys.argv[2])
print(high_water())
"""
)

BASELINE_RSS = (
    HIGH_WATER
    + """
import h5py, numpy, pytest_ptycho_fixture.generate, pytest_ptycho_fixture.sources.cxi
print(high_water())
"""
)


WHOLE_READ = (
    HIGH_WATER
    + """
import sys
import h5py, numpy, pytest_ptycho_fixture.generate, pytest_ptycho_fixture.sources.cxi
with h5py.File(sys.argv[1]) as f:
    f["/entry_1/data_1/data"][()]
print(high_water())
"""
)


def write_big_cxi(path: Path, kind: str) -> Path:
    """2048 patterns of 128 x 128 float64 intensities: 256 MiB, on a 32 x 64 raster."""
    n, side = 2048, 128
    grid = np.stack(np.meshgrid(np.arange(64), np.arange(32)), -1).reshape(-1, 2)
    pixel = ENERGY_DISTANCE_OVER_PIXEL / side
    translation = np.zeros((n, 3))
    translation[:, :2] = grid * 4 * pixel
    options: dict[str, Any] = {}
    if kind == "gzip":
        options = {"chunks": (8, side, side), "compression": "gzip", "compression_opts": 1}

    def data(f: h5py.File) -> None:
        dset = f.create_dataset(DATA, shape=(n, side, side), dtype="<f8", **options)
        block = np.random.default_rng(7).uniform(0, 50, size=(128, side, side))
        for start in range(0, n, 128):
            dset[start : start + 128] = block

    def geometry(f: h5py.File) -> None:
        for name, value in ((TRANSLATION_PATH, translation), (ILLUMINATION_PATH, None)):
            del f[name]
            f[name] = value if value is not None else np.ones((side, side), np.complex64)

    return write_cxi(path, image=False, data=data, edit=geometry)


@pytest.mark.parametrize("kind", ["contiguous", "gzip"])
def test_generating_from_a_256_mib_cxi_file_reads_only_the_selected_frames(
    kind: str, tmp_path: Path
) -> None:
    """Peak RSS stays within 48 MiB of a process that has only imported what it needs."""
    source = write_big_cxi(tmp_path / "big.cxi", kind)
    with h5py.File(source) as f:
        assert f[DATA].nbytes == 256 << 20
    out = tmp_path / "f.npz"
    peak = _kib(PEAK_RSS, str(source), str(out))
    floor = _kib(BASELINE_RSS)
    assert peak - floor < 48 << 10, (peak, floor)
    validate_fixture(out, load(out))
    # The measure sees a whole read: a script that reads the dataset is 256 MiB above.
    whole = _kib(WHOLE_READ, str(source))
    assert whole - floor > 200 << 10, (whole, floor)


def _kib(script: str, *argv: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[-1])


# --------------------------------------------------------------------- command line


def test_generate_takes_a_product_and_its_patterns_on_the_command_line(tmp_path: Path) -> None:
    product = write_product(tmp_path / "product.h5")
    data = write_cxi(tmp_path / "data.cxi")
    out = tmp_path / "out" / "f.npz"
    result = run_cli(
        "generate", "--source", product, "--diffraction", data, "--output", out, "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert f"source          {product}" in result.stdout
    assert sidecar(out)["source_diffraction"] == str(data)


def test_generate_takes_a_compressed_cxi_file_on_the_command_line(tmp_path: Path) -> None:
    source = write_cxi(tmp_path / "scan.cxi", kind="gzip")
    out = tmp_path / "f.npz"
    result = run_cli("generate", "--source", source, "--output", out, "--verify-source")
    assert result.returncode == 0, result.stderr
    assert "subset          64 of 100 positions (stratified)" in result.stdout
    meta = sidecar(out)
    assert meta["source_format"] == "cxi" and len(meta["source_content_sha256"]) == 64
    assert run_cli("verify", out).returncode == 0


def test_generate_takes_keys_on_the_command_line(tmp_path: Path) -> None:
    source = write_mapped(tmp_path / "scan.h5")
    out = tmp_path / "f.npz"
    result = run_cli("generate", "--source", source, "--keys", MAPPED_TEXT, "--output", out)
    assert result.returncode == 0, result.stderr
    assert sidecar(out)["source_keys"] == MAPPED


def test_generate_refuses_bad_keys_with_one_line_before_reading(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "generate", "--source", tmp_path / "absent.h5", "--keys", "xcoords=/x", "--output", out
    )
    assert result.returncode == 2 and result.stdout == ""
    line = result.stderr.splitlines()[-1]
    assert "--keys" in line and "it lacks ycoords, probeGuess, objectGuess, diffraction" in line
    assert not out.exists()


def test_info_names_the_datasets_of_a_cxi_file_and_their_units(tmp_path: Path) -> None:
    source = write_cxi(tmp_path / "s.cxi", kind="gzip")
    result = run_cli("info", source)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == str(source)
    assert "  patterns        100 of 64x64 (100x64x64 <f8, layout NHW)" in lines
    text = result.stdout
    for fragment in (
        f"diffraction  {DATA} (intensities, counts)",
        "/entry_1/sample_1/geometry_1/translation[:, 0] (m)",
        "/entry_1/instrument_1/source_1/energy (J)",
        "object pixel: lambda*z/(N*p)",
    ):
        assert fragment in text


def test_info_names_the_datasets_of_a_product_and_its_patterns(tmp_path: Path) -> None:
    product = write_product(tmp_path / "product.h5")
    data = write_source(tmp_path / "data.npz", {"diffraction": nhw_arrays()["diffraction"]})
    result = run_cli("info", product, "--diffraction", data)
    assert result.returncode == 0, result.stderr
    assert f"{data}:diffraction (amplitudes)" in result.stdout
    assert "/probe_position_x_m (m)" in result.stdout


def test_show_draws_a_cxi_fixture_with_the_source_positions(tmp_path: Path) -> None:
    source = write_cxi(tmp_path / "s.cxi")
    generate_fixture(source, tmp_path / "f.npz")
    result = run_cli("show", tmp_path / "f.npz", "--output", tmp_path / "f.png")
    assert result.returncode == 0, result.stderr
    assert f"source positions: {source}" in result.stdout
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


WITHOUT_H5PY = """
import sys
sys.modules["h5py"] = None  # as if it were not installed
from pytest_ptycho_fixture.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_an_hdf5_source_without_h5py_is_one_line_with_the_install_command(
    tmp_path: Path,
) -> None:
    source = write_cxi(tmp_path / "s.cxi")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_H5PY,
            "generate",
            "--source",
            str(source),
            "--output",
            str(out / "f.npz"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert one_error_line(result) == (
        f"ptycho-fixture: error: {source}: is an HDF5 file, and reading one needs h5py:"
        " pip install 'pytest-ptycho-fixture[hdf5]'"
    )
    assert not out.exists()


# ------------------------------------------------------------------------- plugin


def test_a_run_generates_its_fixture_from_a_cxi_source(pytester: pytest.Pytester) -> None:
    write_cxi(pytester.path / "scan.cxi", kind="gzip")
    pytester.makeini("[pytest]\nptycho_fixture_source = scan.cxi\n")
    pytester.makepyfile(USES_THE_FIXTURE.format(n=2))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*source scan.cxi (64 positions*", "*: 1 generation (main*"])


def test_a_run_generates_from_a_product_with_its_patterns_and_from_mapped_keys(
    pytester: pytest.Pytester,
) -> None:
    a = nhw_arrays()
    write_product(pytester.path / "product.h5", a)
    write_cxi(pytester.path / "data.cxi", a)
    write_mapped(pytester.path / "mapped.h5", a)
    pytester.makeini(
        "[pytest]\n"
        "ptycho_fixture_source = product.h5\n"
        "ptycho_fixture_diffraction = data.cxi\n"
        "ptycho_fixture_sets =\n"
        f"    mapped source=mapped.h5 keys={MAPPED_TEXT}\n"
    )
    pytester.makepyfile(
        """
        import numpy as np

        def test_both(ptycho_metadata, ptycho_arrays, ptycho_sets):
            assert ptycho_metadata["source_format"] == "ptychodus-product"
            assert ptycho_metadata["source_diffraction"] == "data.cxi"
            mapped = ptycho_sets["mapped"]
            assert mapped.metadata["source_keys"]["objectGuess"] == "/guess/object"
            np.testing.assert_allclose(
                mapped.arrays["xcoords"], ptycho_arrays["xcoords"], rtol=1e-9
            )
        """
    )
    # A set is committed: its sidecar is written by --regen-fixture, then verified.
    pytester.runpytest("-p", "no:randomly", "--regen-fixture").assert_outcomes(passed=1)
    assert (pytester.path / "tests" / "fixtures" / "ptycho" / "mapped.json").is_file()
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*: 0 generations, 2 verifications*"])


def test_a_run_with_a_hostile_cxi_source_fails_each_test_with_one_line(
    pytester: pytest.Pytester,
) -> None:
    from h5files import external_link

    external_link(pytester.path)
    pytester.makeini("[pytest]\nptycho_fixture_source = source.cxi\n")
    pytester.makepyfile(USES_THE_FIXTURE.format(n=2))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            (
                "ptycho-fixture: cannot generate * from source.cxi: '/entry_1/data_1/data' is"
                " an external link to other.h5:/data but only data inside the file is read*"
            )
        ]
    )
    assert "Traceback" not in result.stdout.str()
    folder = pytester.path / ".pytest_cache" / "d" / "ptycho-fixture"
    assert [name for name in folder_entries(folder) if not name.endswith(".lock")] == []


def test_a_bad_keys_ini_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nptycho_fixture_keys = diffraction=/d, weird=/w\n")
    pytester.makepyfile(USES_THE_FIXTURE.format(n=1))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*ini option ptycho_fixture_keys*'weird=/w' is not a KEY=/path entry with a known KEY*"]
    )


def test_a_group_that_contains_itself_is_read_as_the_tree_it_is(tmp_path: Path) -> None:
    """A hard-link cycle: only the named paths are walked, so it ends and generates."""

    def cycle(f: h5py.File) -> None:
        f["/entry_1/data_1/again"] = f["/entry_1"]

    plain = generate_fixture(write_cxi(tmp_path / "a.cxi"), tmp_path / "a.npz")
    looped = generate_fixture(write_cxi(tmp_path / "b.cxi", edit=cycle), tmp_path / "b.npz")
    assert (
        sidecar(looped.output_path)["content_sha256"]
        == sidecar(plain.output_path)["content_sha256"]
    )


def test_an_in_file_virtual_dataset_is_read(tmp_path: Path) -> None:
    """Virtual datasets are refused only when they reach outside the file."""

    def virtual(f: h5py.File) -> None:
        f.move(DATA, "/entry_1/data_1/stored")
        shape = f["/entry_1/data_1/stored"].shape
        layout = h5py.VirtualLayout(shape=shape, dtype="<f8")
        layout[:] = h5py.VirtualSource(".", "/entry_1/data_1/stored", shape=shape)
        f.create_virtual_dataset(DATA, layout)

    plain = generate_fixture(write_cxi(tmp_path / "a.cxi"), tmp_path / "a.npz")
    inside = generate_fixture(write_cxi(tmp_path / "b.cxi", edit=virtual), tmp_path / "b.npz")
    assert (
        sidecar(inside.output_path)["content_sha256"]
        == sidecar(plain.output_path)["content_sha256"]
    )


@pytest.mark.parametrize("dtype", ["<u2", ">f4", ">f8", "<i4"])
def test_detector_counts_of_any_integer_or_byte_order_give_the_same_fixture(
    dtype: str, tmp_path: Path
) -> None:
    """Integer counts as detectors write them, and big-endian floats, read as their values."""
    a = dict(nhw_arrays())
    counts = np.rint(a["diffraction"] ** 2 * 16)
    a["diffraction"] = np.sqrt(counts / 16)
    reference = generate_fixture(write_cxi(tmp_path / "f8.cxi", a, scale=16.0), tmp_path / "a.npz")

    def stored(f: h5py.File) -> None:
        f.create_dataset(DATA, data=counts.astype(dtype), chunks=(4, DETECTOR, DETECTOR))

    other = generate_fixture(write_cxi(tmp_path / "x.cxi", a, data=stored), tmp_path / "b.npz")
    assert (
        sidecar(other.output_path)["content_sha256"]
        == sidecar(reference.output_path)["content_sha256"]
    )


@pytest.mark.parametrize(
    ("attr", "value", "says"),
    [
        ("pixel_width_m", "wide", "'/object@pixel_width_m' is 'wide' but a finite number > 0"),
        ("pixel_height_m", -5e-8, "'/object@pixel_height_m' is -5e-08 but a finite number > 0"),
        ("center_x_m", None, "'/object@center_x_m' is None but a finite number (metres)"),
    ],
)
def test_a_product_with_a_bad_object_geometry_is_refused_naming_the_attribute(
    attr: str, value: Any, says: str, tmp_path: Path
) -> None:
    def edit(f: h5py.File) -> None:
        if value is None:
            del f["object"].attrs[attr]
        else:
            f["object"].attrs[attr] = value

    product = write_product(tmp_path / "product.h5", edit=edit)
    with pytest.raises(ContractError) as caught:
        generate_fixture(
            product, tmp_path / "out" / "f.npz", diffraction=write_cxi(tmp_path / "d.cxi")
        )
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.key == f"/object@{attr}"
    assert not (tmp_path / "out").exists()


def test_a_source_rewritten_in_place_is_checked_again(tmp_path: Path) -> None:
    """The size checks are remembered per file identity: a new file at the same path is not
    taken for the one checked before."""
    from h5files import declared_beyond_stored

    path = write_cxi(tmp_path / "source.cxi")
    generate_fixture(path, tmp_path / "a.npz")
    assert declared_beyond_stored(chunked=True)(tmp_path) == path
    with pytest.raises(ContractError, match="but stores only 0 bytes"):
        generate_fixture(path, tmp_path / "b.npz")
