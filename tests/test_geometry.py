"""The geometry: parsed once, recorded in the sidecar (never in the NPZ), read from the
sources that hold one, declared for the built-in source, and checked against a committed
sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from h5files import DETECTOR_PIXEL_M, DISTANCE_M, OBJECT_PIXEL_M, write_cxi
from helpers import one_error_line, run_cli, write_source
from hypothesis import given
from hypothesis import strategies as st

from pytest_ptycho_fixture import geometry as g
from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.spec import SHIPPED_SIDECAR, OptionError, parameters_key, parse_geometry

pytest_plugins = ["pytester"]

#: The photon energy times the wavelength, h c, in eV m (exact constants of the SI).
HC_EV_M = 6.62607015e-34 * 299792458 / 1.602176634e-19


def test_the_object_pixel_is_lambda_z_over_n_p() -> None:
    geometry = g.Geometry(8000.0, 2.0, (75e-6, 55e-6))
    wavelength = HC_EV_M / 8000.0
    assert geometry.wavelength_m == pytest.approx(wavelength, rel=1e-15)
    x, y = geometry.object_pixel_m((32, 64))
    assert x == pytest.approx(wavelength * 2.0 / (64 * 75e-6), rel=1e-15)
    assert y == pytest.approx(wavelength * 2.0 / (32 * 55e-6), rel=1e-15)


def test_geometry_text_is_parsed_once_with_one_line_for_a_bad_value() -> None:
    parsed = parse_geometry("energy_ev=8000, distance_m=2,pixel_m=75e-6")
    assert parsed == g.Geometry(8000.0, 2.0, (75e-6, 75e-6))
    assert parse_geometry("  ") is None
    for bad, says in (
        ("energy_ev=8000,distance_m=2", "complete geometry (it lacks pixel_m)"),
        ("energy_ev=-1,distance_m=2,pixel_m=1e-4", "energy_ev of a number > 0"),
        ("energy_ev=8000,distance_m=inf,pixel_m=1e-4", "distance_m of a number > 0"),
        ("energy=8000", "geometry entry KEY=VALUE with a known KEY"),
        ("energy_ev=1,energy_ev=2", "geometry that gives each key once"),
    ):
        with pytest.raises(OptionError) as raised:
            parse_geometry(bad, "--geometry")
        assert says in str(raised.value) and "energy_ev=E,distance_m=Z,pixel_m=P" in str(raised.value)


@given(
    position=st.floats(-1e3, 1e3),
    pixel=st.floats(1e-9, 1e-6),
    centre=st.floats(-1e-4, 1e-4),
    object_side=st.integers(128, 2048),
    probe_side=st.integers(8, 256),
)
def test_metres_and_fixture_coordinates_are_each_others_inverse(
    position: float, pixel: float, centre: float, object_side: int, probe_side: int
) -> None:
    x = np.array([position])
    metres = g.to_metres(x, pixel, centre, object_side, probe_side)
    back = g.to_pixels(metres, pixel, centre, object_side, probe_side)
    assert abs(float(back[0]) - position) <= 1e-9


def test_the_probe_is_placed_where_ptychodus_places_it() -> None:
    # ptychodus: x_px = (x_m - c) / p + (Wo - 1) / 2, probe pixel (Wp - 1) / 2 there; the
    # fixture: probe pixel Wp // 2 at x. The probe's corners must coincide.
    for probe_side in (64, 63):
        x = np.array([150.25])
        metres = g.to_metres(x, 5e-8, 1e-6, 227, probe_side)
        ptychodus_px = (metres - 1e-6) / 5e-8 + (227 - 1) / 2
        corner = ptychodus_px - (probe_side - 1) / 2
        assert abs(float(corner[0]) - (150.25 - probe_side // 2)) <= 1e-9


def test_the_built_in_source_declares_its_geometry_in_the_shipped_sidecar() -> None:
    shipped = json.loads(SHIPPED_SIDECAR.read_text())
    entry = shipped["geometry"]
    assert g.from_record(entry) == g.BUILTIN
    assert entry["object_pixel_size_m"] == list(g.BUILTIN.object_pixel_m((64, 64)))
    assert entry["from"] == "declared for the built-in source"


def test_an_npz_source_records_the_geometry_it_is_given_and_only_in_the_sidecar(
    tmp_path: Path,
) -> None:
    source = write_source(tmp_path / "s.npz")
    generate_fixture(source, tmp_path / "plain.npz", 64)
    generate_fixture(source, tmp_path / "placed.npz", 64, geometry="energy_ev=9000,distance_m=1.5,pixel_m=55e-6")
    plain = json.loads((tmp_path / "plain.json").read_text())
    placed = json.loads((tmp_path / "placed.json").read_text())
    assert "geometry" not in plain
    assert placed["geometry"]["photon_energy_eV"] == 9000.0
    assert placed["geometry"]["from"] == "ptycho_fixture_geometry (--geometry)"
    # The arrays, and so the content digest, are the same with or without it.
    assert load_npz(tmp_path / "plain.npz").content_sha256 == placed["content_sha256"]


def test_a_cxi_source_records_its_own_geometry_and_refuses_another(tmp_path: Path) -> None:
    source = write_cxi(tmp_path / "s.cxi")
    generate_fixture(source, tmp_path / "f.npz", 64)
    entry = json.loads((tmp_path / "f.json").read_text())["geometry"]
    assert entry["detector_distance_m"] == DISTANCE_M
    assert entry["detector_pixel_size_m"] == [DETECTOR_PIXEL_M, DETECTOR_PIXEL_M]
    assert entry["photon_energy_eV"] == pytest.approx(8000.0, rel=1e-12)
    assert entry["object_pixel_size_m"][0] == pytest.approx(OBJECT_PIXEL_M, rel=1e-12)
    line = one_error_line(
        run_cli(
            "generate", "--source", source, "--geometry", "energy_ev=1,distance_m=1,pixel_m=1",
            "--output", tmp_path / "g.npz",
        )
    )  # fmt: skip
    assert line.endswith("holds its own geometry (/entry_1/instrument_1/detector_1/distance,"
                         " /entry_1/instrument_1/detector_1/x_pixel_size,"
                         " /entry_1/instrument_1/source_1/energy); drop --geometry")


def test_the_built_in_source_refuses_a_geometry_of_its_own() -> None:
    with pytest.raises(ContractError, match="takes no --diffraction, --keys, --geometry or --probe"):
        generate_fixture(None, Path("unused.npz"), 64, geometry="energy_ev=1,distance_m=1,pixel_m=1")


def test_a_variant_with_another_geometry_is_another_variant() -> None:
    one = parse_geometry("energy_ev=8000,distance_m=2,pixel_m=75e-6")
    other = parse_geometry("energy_ev=9000,distance_m=2,pixel_m=75e-6")
    source = Path("s.npz")
    assert parameters_key(source, 64, "stratified") == parameters_key(source, 64, "stratified", geometry=None)
    assert parameters_key(source, 64, "stratified", geometry=one) != parameters_key(
        source, 64, "stratified", geometry=other
    )


def test_a_configured_geometry_the_committed_sidecar_does_not_record_fails_with_the_fix(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    write_source(pytester.path / "scan.npz")
    pytester.makeini(
        "[pytest]\n"
        "ptycho_fixture_path = tests/fixtures/scan.npz\n"
        "ptycho_fixture_source = scan.npz\n"
        "ptycho_fixture_geometry = energy_ev=8000,distance_m=2,pixel_m=75e-6\n"
    )
    pytester.makepyfile(
        test_project_geometry="def test_it(ptycho_metadata):\n"
        "    assert ptycho_metadata['geometry']['photon_energy_eV'] == 8000.0\n"
    )
    pytester.runpytest("--regen-fixture", "-p", "no:randomly").assert_outcomes(passed=1)
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)
    changed = pytester.runpytest(
        "-o", "ptycho_fixture_geometry=energy_ev=9000,distance_m=2,pixel_m=75e-6", "-p", "no:randomly"
    )
    changed.assert_outcomes(errors=1)
    expected = (
        "*ptycho-fixture: the sidecar tests/fixtures/scan.json of tests/fixtures/scan.npz"
        " records the geometry energy_ev=8000,distance_m=2,pixel_m=7.5e-05, but"
        " ptycho_fixture_geometry gives energy_ev=9000,distance_m=2,pixel_m=7.5e-05; if the new"
        " geometry is intended, run pytest --regen-fixture and commit tests/fixtures/scan.json"
    )
    changed.stdout.fnmatch_lines([expected])


def test_a_set_line_gives_its_fixture_a_geometry(pytester: pytest.Pytester) -> None:
    write_source(pytester.path / "scan.npz")
    pytester.makeini(
        "[pytest]\n"
        "ptycho_fixture_path = tests/fixtures/main.npz\n"
        "ptycho_fixture_source = scan.npz\n"
        "ptycho_fixture_sets = placed geometry=energy_ev=7000,distance_m=3,pixel_m=1e-4\n"
    )
    pytester.makepyfile(
        test_set_geometry="def test_it(ptycho_sets, ptycho_metadata):\n"
        "    assert 'geometry' not in ptycho_metadata\n"
        "    entry = ptycho_sets['placed'].metadata['geometry']\n"
        "    assert entry['photon_energy_eV'] == 7000.0 and entry['detector_distance_m'] == 3.0\n"
    )
    pytester.runpytest("--regen-fixture", "-p", "no:randomly").assert_outcomes(passed=1)
