"""``ptycho-fixture export``: a fixture written as ptychodus' product and diffraction
files and as one CXI file, then read back by this package's own sources, through the API
and the command line; and every export that is refused, leaving nothing behind."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5files
import h5py
import numpy as np
import pytest
from helpers import folder_entries, one_error_line, run_cli, with_value, write_source
from numpy.typing import NDArray

from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.export import Mismatch, export_fixture
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.geometry import Geometry
from pytest_ptycho_fixture.npz import writer as npzwrite
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.spec import OptionError

FORMATS = ("ptychodus", "cxi")
SUBSET = 64
#: The geometry given on the command line to a fixture whose sidecar records none.
GIVEN = "energy_ev=8000,distance_m=2,pixel_m=75e-6"
GIVEN_GEOMETRY = Geometry(8000.0, 2.0, (75e-6, 75e-6))
#: Planck's constant, the speed of light and the electronvolt: exact in the SI since 2019.
PLANCK, LIGHT_SPEED, ELECTRON_VOLT = 6.62607015e-34, 299792458.0, 1.602176634e-19
#: What the built-in fixture's NPZ holds beyond what ptychodus and CXI files can carry.
STARTS = frozenset({"xcoords_start", "ycoords_start"})
#: The sidecar's geometry fields that a round trip must keep.
GEOMETRY_FIELDS = (
    "photon_energy_eV",
    "detector_distance_m",
    "detector_pixel_size_m",
    "object_pixel_size_m",
    "object_center_m",
)


def wavelength_m(energy_ev: float) -> float:
    """``h c / (E e)``, from the SI's constants, not the package's."""
    return PLANCK * LIGHT_SPEED / (energy_ev * ELECTRON_VOLT)


def arrays(path: Path) -> dict[str, NDArray[Any]]:
    return dict(load_npz(path).arrays)


def sidecar(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    return meta


def given_geometry_entry(detector: int) -> dict[str, Any]:
    """The sidecar entry :data:`GIVEN` stands for, computed here from its three numbers."""
    pixel = wavelength_m(8000.0) * 2.0 / (detector * 75e-6)
    return {
        "photon_energy_eV": 8000.0,
        "detector_distance_m": 2.0,
        "detector_pixel_size_m": [75e-6, 75e-6],
        "object_pixel_size_m": [pixel, pixel],
        "object_center_m": [0.0, 0.0],
    }


def export_args(fixture: Path, format: str, output: Path, *more: object) -> list[object]:
    return ["export", fixture, "--format", format, "--output", output, *more]


def output_of(folder: Path, format: str) -> Path:
    """Where an export in ``format`` goes: a folder for ptychodus, a file for CXI."""
    return folder / ("p" if format == "ptychodus" else "f.cxi")


def written(output: Path, format: str) -> list[Path]:
    """The files an export to ``output`` writes."""
    if format == "ptychodus":
        return [output / "product.h5", output / "diffraction.h5"]
    return [output]


def generate_back(files: list[Path], output: Path, strategy: str = "first", **options: Any) -> Path:
    """A fixture generated from exported ``files`` by the package's own sources."""
    if len(files) == 2:
        product, diffraction = files
        generate_fixture(
            product, output, SUBSET, strategy=strategy, diffraction=diffraction, **options
        )
    else:
        generate_fixture(files[0], output, SUBSET, strategy=strategy, **options)
    return output


# ------------------------------------------------------------------------ fixtures


@dataclass(frozen=True)
class Made:
    """A fixture to export, and what its round trip is expected to lose."""

    fixture: Path
    #: The keys of its NPZ that neither format carries.
    lost: frozenset[str]
    #: The geometry to export it with, where its sidecar records none.
    geometry: Geometry | None = None


def _made(folder: Path) -> dict[str, Made]:
    folder.mkdir()
    builtin = generate_fixture(None, folder / "builtin.npz", SUBSET).output_path
    grouped = generate_fixture(
        None, folder / "groups.npz", SUBSET, strategy="groups", gridsize=2
    ).output_path
    # An NPZ source with scan indexes, in an order of their own; NPZ sources hold no geometry.
    indexed = write_source(
        folder / "indexed-source.npz", scan_index=np.arange(99, -1, -1, dtype=np.int64)
    )
    scanned = generate_fixture(indexed, folder / "scan_index.npz", SUBSET).output_path
    # A ptychodus product whose object's centre is off 0 and whose object pixel is its own.
    product = h5files.write_product(folder / "product-source.h5")
    patterns = write_source(folder / "product-patterns.npz", h5files.nhw_arrays())
    from_product = generate_fixture(
        product, folder / "product.npz", SUBSET, diffraction=patterns
    ).output_path
    return {
        "builtin": Made(builtin, STARTS),
        "groups": Made(grouped, STARTS | {"groups"}),
        "scan_index": Made(scanned, STARTS | {"scan_index"}, GIVEN_GEOMETRY),
        "product": Made(from_product, frozenset()),
    }


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Made]:
    """The fixtures exported here, generated once for the module."""
    return _made(tmp_path_factory.mktemp("export") / "fixtures")


@pytest.fixture(scope="module")
def builtin(made: dict[str, Made]) -> Path:
    """The built-in fixture (64 positions), whose sidecar records the built-in geometry."""
    return made["builtin"].fixture


@pytest.fixture(scope="module")
def plain(made: dict[str, Made]) -> Path:
    """A fixture from an NPZ source, whose sidecar records no geometry."""
    return made["scan_index"].fixture


@dataclass(frozen=True)
class Trip:
    """A fixture exported in one format and generated back from the files written."""

    made: Made
    format: str
    files: list[Path]
    back: Path


@pytest.fixture(
    scope="module",
    params=[
        (case, format)
        for case in ("builtin", "groups", "scan_index", "product")
        for format in FORMATS
    ],
    ids=lambda param: "-".join(param),
)
def trip(
    request: pytest.FixtureRequest, made: dict[str, Made], tmp_path_factory: pytest.TempPathFactory
) -> Trip:
    case, format = request.param
    this = made[case]
    folder = tmp_path_factory.mktemp(f"{case}-{format}")
    files = export_fixture(this.fixture, format, output_of(folder, format), geometry=this.geometry)
    return Trip(this, format, files, generate_back(files, folder / "back.npz"))


# --------------------------------------------------------------------- round trips


def test_the_export_writes_the_files_of_its_format(trip: Trip) -> None:
    output = trip.files[0].parent if trip.format == "ptychodus" else trip.files[0]
    assert trip.files == written(output, trip.format)
    assert all(path.is_file() for path in trip.files)
    assert not [name for name in folder_entries(output.parent) if name.endswith(".tmp")]


def test_a_round_trip_gives_the_patterns_probe_and_object_back_bit_for_bit(trip: Trip) -> None:
    before, after = arrays(trip.made.fixture), arrays(trip.back)
    for key in ("diffraction", "probeGuess", "objectGuess"):
        assert after[key].dtype == before[key].dtype, key
        assert after[key].shape == before[key].shape, key
        assert after[key].tobytes() == before[key].tobytes(), key


def test_a_round_trip_gives_the_positions_back_within_1e_9_pixel(trip: Trip) -> None:
    before, after = arrays(trip.made.fixture), arrays(trip.back)
    for key in ("xcoords", "ycoords"):
        assert after[key].dtype == np.float64
        assert after[key].shape == before[key].shape
        assert np.max(np.abs(after[key] - before[key])) <= 1e-9, key


def test_a_round_trip_keeps_every_position_in_its_order(trip: Trip) -> None:
    meta = sidecar(trip.back)
    assert meta["source_positions"] == SUBSET
    assert meta["subset_indices"] == list(range(SUBSET))


def test_a_round_trip_records_the_geometry_the_fixture_was_exported_with(trip: Trip) -> None:
    if trip.made.geometry is None:
        expected = sidecar(trip.made.fixture)["geometry"]
    else:
        expected = given_geometry_entry(arrays(trip.made.fixture)["probeGuess"].shape[0])
    found = sidecar(trip.back)["geometry"]
    for field in GEOMETRY_FIELDS:
        np.testing.assert_allclose(found[field], expected[field], rtol=1e-12, atol=0, err_msg=field)


def test_a_round_trip_loses_exactly_the_keys_that_neither_format_carries(trip: Trip) -> None:
    before, after = set(arrays(trip.made.fixture)), set(arrays(trip.back))
    assert before - after == trip.made.lost
    assert after - before == set()


@pytest.mark.parametrize("strategy", ["stratified", "spread"])
def test_every_subset_strategy_keeps_all_64_of_64_positions_in_order(
    trip: Trip, strategy: str, tmp_path: Path
) -> None:
    again = generate_back(trip.files, tmp_path / "again.npz", strategy)
    assert sidecar(again)["subset_indices"] == list(range(SUBSET))
    assert sidecar(again)["content_sha256"] == sidecar(trip.back)["content_sha256"]


def test_diff3d_is_rebuilt_by_generation_not_carried_by_the_files(
    trip: Trip, tmp_path: Path
) -> None:
    names: list[str] = []
    for path in trip.files:
        with h5py.File(path, "r") as f:
            f.visit(names.append)
    assert not [name for name in names if "diff3d" in name]
    without = generate_back(trip.files, tmp_path / "without.npz", diff3d_alias=False)
    assert "diff3d" not in arrays(without)
    rebuilt = arrays(trip.back)
    assert rebuilt["diff3d"].tobytes() == rebuilt["diffraction"].tobytes()


# ----------------------------------------------------------------- command line


@pytest.mark.parametrize("format", FORMATS)
def test_export_then_generate_on_the_command_line_gives_the_fixture_back(
    builtin: Path, format: str, tmp_path: Path
) -> None:
    output = output_of(tmp_path, format)
    result = run_cli(*export_args(builtin, format, output))
    assert result.returncode == 0, result.stderr
    files = written(output, format)
    assert result.stdout.splitlines() == [
        *(f"wrote {path}" for path in files),
        f"format          {format}",
    ]
    assert result.stderr == ""
    source = ["--source", files[0]]
    if format == "ptychodus":
        source += ["--diffraction", files[1]]
    back = tmp_path / "back.npz"
    result = run_cli(
        "generate", *source, "--output", back, "--subset-size", SUBSET, "--subset-strategy", "first"
    )
    assert result.returncode == 0, result.stderr
    before, after = arrays(builtin), arrays(back)
    assert set(before) - set(after) == STARTS
    for key in ("diffraction", "diff3d", "probeGuess", "objectGuess"):
        assert after[key].tobytes() == before[key].tobytes(), key
    for key in ("xcoords", "ycoords"):
        assert np.max(np.abs(after[key] - before[key])) <= 1e-9, key


# ----------------------------------------------------------------------- geometry


@pytest.mark.parametrize("format", FORMATS)
def test_a_fixture_whose_sidecar_records_no_geometry_is_refused_naming_the_fix(
    plain: Path, format: str, tmp_path: Path
) -> None:
    result = run_cli(*export_args(plain, format, output_of(tmp_path, format)))
    assert one_error_line(result) == (
        f"ptycho-fixture: error: {plain.with_suffix('.json')}: records no geometry, which"
        " places the fixture in metres; give one with --geometry"
        " energy_ev=E,distance_m=Z,pixel_m=P (or generate the fixture with it)"
    )
    assert result.stdout == ""
    assert folder_entries(tmp_path) == []


def test_export_fixture_refuses_a_missing_geometry_naming_the_sidecar_and_the_key(
    plain: Path, tmp_path: Path
) -> None:
    with pytest.raises(ContractError) as refused:
        export_fixture(plain, "cxi", tmp_path / "f.cxi")
    assert refused.value.path == str(plain.with_suffix(".json"))
    assert refused.value.key == "geometry"
    assert folder_entries(tmp_path) == []


def test_export_with_geometry_writes_it_into_the_product_and_diffraction_files(
    plain: Path, tmp_path: Path
) -> None:
    output = tmp_path / "p"
    result = run_cli(*export_args(plain, "ptychodus", output, "--geometry", GIVEN))
    assert result.returncode == 0, result.stderr
    fixture = arrays(plain)
    n, (rows, cols) = SUBSET, fixture["objectGuess"].shape
    pixel = wavelength_m(8000.0) * 2.0 / (64 * 75e-6)
    with h5py.File(output / "product.h5", "r") as product:
        assert product.attrs["detector_object_distance_m"] == 2.0
        assert product.attrs["photon_energy_eV"] == 8000.0
        assert product["probe_position_indexes"][()].tolist() == list(range(n))
        np.testing.assert_allclose(
            product["probe_position_x_m"][()], (fixture["xcoords"] - cols / 2) * pixel, rtol=1e-12
        )
        np.testing.assert_allclose(
            product["probe_position_y_m"][()], (fixture["ycoords"] - rows / 2) * pixel, rtol=1e-12
        )
        obj = product["object"]
        assert obj.shape == (1, rows, cols)
        assert obj[0].tobytes() == fixture["objectGuess"].tobytes()
        np.testing.assert_allclose(
            [obj.attrs["pixel_width_m"], obj.attrs["pixel_height_m"]], [pixel, pixel], rtol=1e-12
        )
        assert [obj.attrs["center_x_m"], obj.attrs["center_y_m"]] == [0.0, 0.0]
        assert product["probe"].shape == (1, 1, 64, 64)
        assert product["probe"][0, 0].tobytes() == fixture["probeGuess"].tobytes()
    with h5py.File(output / "diffraction.h5", "r") as diffraction:
        patterns = diffraction["patterns"]
        assert patterns.dtype == np.float32
        assert patterns.attrs["detector_pixel_width_m"] == 75e-6
        assert patterns.attrs["detector_pixel_height_m"] == 75e-6
        expected = np.square(fixture["diffraction"].astype(np.float32))
        assert patterns[()].tobytes() == expected.tobytes()
        assert diffraction["indexes"][()].tolist() == list(range(n))


def test_export_with_geometry_writes_it_into_the_cxi_file(plain: Path, tmp_path: Path) -> None:
    output = tmp_path / "f.cxi"
    result = run_cli(*export_args(plain, "cxi", output, "--geometry", GIVEN))
    assert result.returncode == 0, result.stderr
    fixture = arrays(plain)
    rows, cols = fixture["objectGuess"].shape
    pixel = wavelength_m(8000.0) * 2.0 / (64 * 75e-6)
    with h5py.File(output, "r") as f:
        assert f["/entry_1/instrument_1/source_1/energy"][()] == 8000 * 1.602176634e-19
        np.testing.assert_allclose(
            f["/entry_1/instrument_1/source_1/wavelength"][()], wavelength_m(8000.0), rtol=1e-12
        )
        detector = f["/entry_1/instrument_1/detector_1"]
        assert detector["distance"][()] == 2.0
        assert detector["x_pixel_size"][()] == 75e-6
        assert detector["y_pixel_size"][()] == 75e-6
        link = f["/entry_1/data_1"].get("data", getlink=True)
        assert isinstance(link, h5py.SoftLink)
        assert link.path == "/entry_1/instrument_1/detector_1/data"
        data = f["/entry_1/data_1/data"]
        assert data.dtype == np.float32
        expected = np.square(fixture["diffraction"].astype(np.float32))
        assert data[()].tobytes() == expected.tobytes()
        translation = f["/entry_1/sample_1/geometry_1/translation"][()]
        assert translation.shape == (SUBSET, 3)
        np.testing.assert_allclose(
            translation[:, 0], (fixture["xcoords"] - cols / 2) * pixel, rtol=1e-12
        )
        np.testing.assert_allclose(
            translation[:, 1], (fixture["ycoords"] - rows / 2) * pixel, rtol=1e-12
        )
        assert not translation[:, 2].any()
        illumination = f["/entry_1/instrument_1/source_1"].get("illumination", getlink=True)
        assert isinstance(illumination, h5py.SoftLink)
        assert illumination.path == "/entry_1/image_1/data"
        assert f["/entry_1/image_1/data"][0, 0].tobytes() == fixture["probeGuess"].tobytes()
        assert f["/entry_1/image_2/data"][0].tobytes() == fixture["objectGuess"].tobytes()
        kept = f["/entry_1/ptychodus"]
        np.testing.assert_allclose(
            [kept["object_pixel_width_m"][()], kept["object_pixel_height_m"][()]],
            [pixel, pixel],
            rtol=1e-12,
        )
        assert [kept["object_center_x_m"][()], kept["object_center_y_m"][()]] == [0.0, 0.0]


@pytest.mark.parametrize("format", FORMATS)
def test_geometry_given_for_a_fixture_whose_sidecar_records_one_is_refused(
    builtin: Path, format: str, tmp_path: Path
) -> None:
    result = run_cli(
        *export_args(builtin, format, output_of(tmp_path, format), "--geometry", GIVEN)
    )
    assert one_error_line(result) == (
        f"ptycho-fixture: error: {builtin.with_suffix('.json')}: records the fixture's geometry"
        " already; drop --geometry (or regenerate the fixture with another one)"
    )
    assert folder_entries(tmp_path) == []


# ----------------------------------------------------------------------- refusals


def _one_value_changed(fixture: Path, folder: Path, other: Path) -> Path:
    changed = arrays(fixture)
    changed["diffraction"] = with_value(changed["diffraction"], (3, 20, 20), 0.5)
    copy = write_npz(folder / "f.npz", changed)
    shutil.copy(fixture.with_suffix(".json"), copy.with_suffix(".json"))
    return copy


def _another_fixtures_npz(fixture: Path, folder: Path, other: Path) -> Path:
    copy = Path(shutil.copy(other, folder / "f.npz"))
    shutil.copy(fixture.with_suffix(".json"), copy.with_suffix(".json"))
    return copy


def write_npz(path: Path, contents: dict[str, NDArray[Any]]) -> Path:
    npzwrite.write_npz(path, contents)
    return path


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize(
    "swap", [_one_value_changed, _another_fixtures_npz], ids=lambda f: f.__name__
)
def test_a_fixture_that_does_not_match_its_sidecar_is_not_exported(
    made: dict[str, Made], format: str, swap: Callable[[Path, Path, Path], Path], tmp_path: Path
) -> None:
    fixture = swap(made["builtin"].fixture, tmp_path, made["groups"].fixture)
    before = folder_entries(tmp_path)
    output = output_of(tmp_path, format)
    result = run_cli(*export_args(fixture, format, output))
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"MISMATCH {fixture}: content_sha256 expected ")
    assert "arrays that differ: " in lines[0]
    assert lines[0].endswith(f"; sidecar {fixture.with_suffix('.json')}; nothing was exported")
    assert not output.exists()
    assert folder_entries(tmp_path) == before


def test_export_fixture_raises_mismatch_for_a_fixture_that_does_not_match(
    made: dict[str, Made], tmp_path: Path
) -> None:
    builtin = made["builtin"].fixture
    fixture = _one_value_changed(builtin, tmp_path, builtin)
    expected = sidecar(builtin)["content_sha256"]
    with pytest.raises(Mismatch, match=f"content_sha256 expected {expected}, got [0-9a-f]{{64}}"):
        export_fixture(fixture, "ptychodus", tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_a_sidecar_whose_digest_was_edited_by_hand_is_refused_with_one_line(
    builtin: Path, tmp_path: Path
) -> None:
    fixture = Path(shutil.copy(builtin, tmp_path / "f.npz"))
    meta = sidecar(builtin)
    meta["content_sha256"] = "0" * 64
    fixture.with_suffix(".json").write_text(json.dumps(meta))
    before = folder_entries(tmp_path)
    result = run_cli(*export_args(fixture, "cxi", tmp_path / "f.cxi"))
    line = one_error_line(result)
    assert line.startswith(
        f"ptycho-fixture: error: {fixture.with_suffix('.json')}: does not add up"
    )
    assert folder_entries(tmp_path) == before


def test_a_cxi_output_that_is_a_directory_is_refused_with_one_line(
    builtin: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "here.cxi"
    folder.mkdir()
    result = run_cli(*export_args(builtin, "cxi", folder))
    assert one_error_line(result) == (
        f"ptycho-fixture: error: {folder}: is a directory, but a CXI file path is required"
    )
    assert folder_entries(folder) == []


def test_a_ptychodus_output_with_a_directory_for_a_file_is_refused_with_one_line(
    builtin: Path, tmp_path: Path
) -> None:
    (tmp_path / "p" / "diffraction.h5").mkdir(parents=True)
    result = run_cli(*export_args(builtin, "ptychodus", tmp_path / "p"))
    assert one_error_line(result) == (
        f"ptycho-fixture: error: {tmp_path / 'p' / 'diffraction.h5'}: is a directory, not a file"
    )
    assert folder_entries(tmp_path / "p") == ["diffraction.h5"]


def test_an_unknown_format_is_refused_quoting_the_value_and_the_choices(
    builtin: Path, tmp_path: Path
) -> None:
    result = run_cli(*export_args(builtin, "hdf5", tmp_path / "f.h5"))
    assert result.returncode == 2
    assert result.stdout == ""
    # argparse shows the usage first, as for every option value it refuses.
    last = result.stderr.splitlines()[-1]
    assert last == (
        "ptycho-fixture export: error: argument --format: 'hdf5' is not a format to export:"
        " expected ptychodus or cxi"
    )
    assert folder_entries(tmp_path) == []


def test_export_fixture_refuses_an_unknown_format_naming_the_choices(
    builtin: Path, tmp_path: Path
) -> None:
    with pytest.raises(
        OptionError, match="^format: 'hdf5' is not a format to export: expected ptychodus or cxi$"
    ):
        export_fixture(builtin, "hdf5", tmp_path / "f.h5")
    assert folder_entries(tmp_path) == []


def test_metadata_names_a_sidecar_kept_elsewhere(builtin: Path, tmp_path: Path) -> None:
    fixture = Path(shutil.copy(builtin, tmp_path / "f.npz"))
    kept = Path(shutil.copy(builtin.with_suffix(".json"), tmp_path / "kept.json"))
    output = tmp_path / "f.cxi"
    refused = run_cli(*export_args(fixture, "cxi", output))
    assert one_error_line(refused).startswith(f"ptycho-fixture: error: {tmp_path / 'f.json'}: ")
    result = run_cli(*export_args(fixture, "cxi", output, "--metadata", kept))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"wrote {output}"


# --------------------------------------------------------------- failed writes


def _file_size_limit() -> None:
    # The kernel refuses writes past 100 kB with EFBIG (SIGXFSZ ignored, so not a kill):
    # below either format's first file, so the export fails while writing it.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("exists", [False, True], ids=["new output", "output folder there"])
def test_an_export_that_runs_out_of_space_leaves_nothing_behind(
    builtin: Path, format: str, exists: bool, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    output = output_of(folder, format)
    if exists:
        (output if format == "ptychodus" else folder).mkdir(parents=True)
    result = run_cli(*export_args(builtin, format, output), preexec_fn=_file_size_limit)
    line = one_error_line(result)
    assert line.startswith(f"ptycho-fixture: error: {output}")
    assert line.endswith(": cannot write it: File too large")
    assert result.stdout == ""
    if not exists:
        assert folder_entries(tmp_path) == []
    elif format == "ptychodus":
        assert folder_entries(output) == []
    else:
        assert folder_entries(folder) == []


def _limit(size: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


@pytest.mark.parametrize(
    ("limit", "failing"),
    [(100_000, "product.h5"), (1_000_000, "diffraction.h5")],
    ids=["the product", "the patterns, the product written"],
)
def test_a_ptychodus_export_that_runs_out_of_space_names_the_file_and_publishes_neither(
    builtin: Path, tmp_path: Path, limit: int, failing: str
) -> None:
    output = tmp_path / "out"
    result = run_cli(*export_args(builtin, "ptychodus", output), preexec_fn=_limit(limit))
    assert one_error_line(result) == (
        f"ptycho-fixture: error: {output / failing}: cannot write it: File too large"
    )
    assert result.returncode == 2 and folder_entries(tmp_path) == []


# --------------------------------------------------------------- without h5py

WITHOUT_H5PY = """
import sys
sys.modules["h5py"] = None  # as if it were not installed
from pytest_ptycho_fixture.cli import run
run()
"""


@pytest.mark.parametrize("format", FORMATS)
def test_export_without_h5py_is_one_line_with_the_install_command(
    builtin: Path, format: str, tmp_path: Path
) -> None:
    output = output_of(tmp_path, format)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_H5PY, *map(str, export_args(builtin, format, output))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert one_error_line(result) == (
        f"ptycho-fixture: error: {output}: is to be written as {format}, an HDF5 format,"
        " which needs h5py: pip install 'pytest-ptycho-fixture[hdf5]'"
    )
    assert folder_entries(tmp_path) == []


def test_the_square_root_of_every_float32_intensity_is_its_amplitude_again() -> None:
    # What the exports rest on: amplitude**2 stored in float32, then the sources' square
    # root (in float64, cast back to float32), gives every amplitude back bit for bit.
    # Every float32 in [1, 4) (two binades: the mantissas repeat in every other binade),
    # and a spread of values across the contract's range [0, 10).
    mantissas = np.arange(1 << 23, dtype=np.uint32)
    ones = ((np.uint32(127) << 23) | mantissas).view(np.float32)
    twos = ((np.uint32(128) << 23) | mantissas).view(np.float32)
    spread = np.random.default_rng(0).uniform(0, 10, 1 << 20).astype(np.float32)
    for amplitudes in (ones, twos, spread):
        back = np.sqrt(np.square(amplitudes).astype(np.float64)).astype(np.float32)
        assert np.array_equal(back, amplitudes)
