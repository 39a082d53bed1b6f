"""The data contract: keys, dtypes, layouts, and the errors that name file, key and rule."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from pytest_ptycho_fixture.contract import (
    AmplitudeStats,
    ContractError,
    check_amplitudes,
    check_diffraction_dtype,
    check_object,
    check_per_position,
    check_probe,
    decide_layout,
    validate_fixture,
)


def a_valid_fixture(n: int = 16, detector: tuple[int, int] = (8, 8)) -> dict[str, NDArray[Any]]:
    rng = np.random.default_rng(7)
    diffraction = rng.uniform(0.0, 2.0, size=(n, *detector)).astype(np.float32)
    obj = (rng.normal(size=(128, 130)) + 1j * rng.normal(size=(128, 130))).astype(np.complex64)
    probe = (rng.normal(size=detector) + 1j * rng.normal(size=detector)).astype(np.complex64)
    return {
        "diffraction": diffraction,
        "diff3d": diffraction.copy(),
        "objectGuess": obj,
        "probeGuess": probe,
        "xcoords": rng.uniform(34, 80, size=n),
        "ycoords": rng.uniform(34, 80, size=n),
        "xcoords_start": rng.uniform(34, 80, size=n),
        "ycoords_start": rng.uniform(34, 80, size=n),
        "scan_index": np.arange(n, dtype=np.int64),
    }


def changed(arrays: dict[str, NDArray[Any]], **changes: Any) -> dict[str, NDArray[Any]]:
    result = dict(arrays)
    for key, value in changes.items():
        if value is None:
            del result[key]
        else:
            result[key] = value
    return result


# ------------------------------------------------------------------ ContractError


def test_it_keeps_path_key_and_message_as_attributes() -> None:
    error = ContractError(Path("data/source.npz"), "diffraction", "'diffraction' is bad")
    assert error.path == "data/source.npz"
    assert error.key == "diffraction"
    assert error.message == "'diffraction' is bad"


def test_its_str_is_the_file_then_the_message_on_one_line() -> None:
    error = ContractError("source.npz", "xcoords", "'xcoords' has shape (3,) but (4,) is required")
    assert str(error) == "source.npz: 'xcoords' has shape (3,) but (4,) is required"
    assert "\n" not in str(error)


def test_it_allows_an_error_about_the_whole_file_with_no_key() -> None:
    error = ContractError("source.npz", None, "does not exist")
    assert error.key is None
    assert str(error) == "source.npz: does not exist"


def test_it_is_a_value_error_so_callers_can_catch_either() -> None:
    with pytest.raises(ValueError, match="^source.npz: broken$"):
        raise ContractError("source.npz", None, "broken")


@pytest.mark.parametrize("key", ["diffraction", None])
def test_it_survives_pickling_with_its_attributes_str_and_repr(key: str | None) -> None:
    error = ContractError(Path("/data/source.npz"), key, "'diffraction' has maximum 31 but ...")
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is ContractError
    assert (restored.path, restored.key, restored.message) == (error.path, key, error.message)
    assert str(restored) == str(error)
    assert repr(restored) == repr(error)


def test_it_survives_copying() -> None:
    error = ContractError("source.npz", "objectGuess", "too small")
    duplicate = copy.deepcopy(error)
    assert (duplicate.path, duplicate.key, str(duplicate)) == (
        "source.npz",
        "objectGuess",
        str(error),
    )


# ------------------------------------------------------------------------- layout


def test_it_reads_the_legacy_layout_when_the_positions_are_on_the_last_axis() -> None:
    assert decide_layout("source.npz", (64, 64, 1087), 1087, None) == "HWN"


def test_it_reads_the_canonical_layout_when_the_positions_are_on_the_first_axis() -> None:
    assert decide_layout("source.npz", (1087, 64, 64), 1087, None) == "NHW"


def test_it_refuses_to_guess_when_the_positions_match_both_axes() -> None:
    with pytest.raises(ContractError) as caught:
        decide_layout("source.npz", (64, 64, 64), 64, None)
    assert caught.value.key == "diffraction"
    assert str(caught.value) == (
        "source.npz: 'diffraction' has shape (64, 64, 64) and 64 positions match both axis 0"
        " and axis 2; say which layout it is: --layout HWN or NHW (in pytest: the"
        " ptycho_fixture_layout ini option)"
    )


@pytest.mark.parametrize("layout", ["HWN", "NHW"])
def test_an_explicit_layout_settles_an_ambiguous_shape(layout: str) -> None:
    assert decide_layout("source.npz", (64, 64, 64), 64, layout) == layout


def test_it_refuses_an_explicit_layout_that_puts_the_positions_on_the_wrong_axis() -> None:
    with pytest.raises(ContractError, match="layout HWN puts the 1087 positions") as caught:
        decide_layout("source.npz", (1087, 64, 64), 1087, "HWN")
    assert "on axis 2, which has 64" in str(caught.value)


def test_it_refuses_a_layout_name_it_does_not_know() -> None:
    with pytest.raises(ContractError, match="layout 'hwn' is not one of HWN, NHW"):
        decide_layout("source.npz", (64, 64, 100), 100, "hwn")


def test_it_refuses_a_shape_whose_axes_match_no_coordinate_count() -> None:
    with pytest.raises(ContractError) as caught:
        decide_layout("source.npz", (64, 64, 100), 90, None)
    assert str(caught.value) == (
        "source.npz: 'diffraction' has shape (64, 64, 100) but 'xcoords' has 90 positions;"
        " expected them on axis 2 (H,W,N) or axis 0 (N,H,W)"
    )


@pytest.mark.parametrize("shape", [(64, 64), (1, 64, 64, 100), (100,)])
def test_it_refuses_diffraction_that_is_not_three_dimensional(shape: tuple[int, ...]) -> None:
    with pytest.raises(ContractError) as caught:
        decide_layout("source.npz", shape, 100, None)
    assert str(caught.value) == (
        f"source.npz: 'diffraction' has shape {shape} but a 3-D (H,W,N) or (N,H,W) array"
        " is required"
    )


# -------------------------------------------------------------------- amplitudes


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.dtype(">f8")])
def test_it_accepts_real_floating_point_diffraction(dtype: Any) -> None:
    check_diffraction_dtype("source.npz", "diffraction", np.dtype(dtype))


def test_it_refuses_complex_diffraction_and_says_to_store_the_modulus() -> None:
    with pytest.raises(ContractError) as caught:
        check_diffraction_dtype("source.npz", "diffraction", np.dtype(np.complex64))
    assert "'diffraction' is complex (complex64) but real amplitudes" in str(caught.value)
    assert "store |psi|" in str(caught.value)


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.float16, np.bool_])
def test_it_refuses_diffraction_that_is_not_float32_or_float64(dtype: Any) -> None:
    with pytest.raises(ContractError) as caught:
        check_diffraction_dtype("source.npz", "diffraction", np.dtype(dtype))
    assert f"has dtype {np.dtype(dtype)} but float32 or float64 is required" in str(caught.value)


def test_it_refuses_diffraction_of_python_objects_without_loading_them() -> None:
    with pytest.raises(ContractError, match="holds Python objects"):
        check_diffraction_dtype("source.npz", "diffraction", np.dtype(object))


def test_it_accepts_amplitudes_from_zero_to_just_below_ten_and_notes_the_range() -> None:
    values = np.array([0.0, 1.5, 9.999], dtype=np.float32)
    note = check_amplitudes("source.npz", "diffraction", values)
    assert note == f"diffraction: finite, min 0, max {float(values.max()):.6g} (< 10)"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_it_refuses_non_finite_amplitudes_and_counts_them(bad: float) -> None:
    values = np.ones((4, 3, 3))
    values[1, 2, 0] = bad
    values[3, 0, 1] = bad
    with pytest.raises(ContractError) as caught:
        check_amplitudes("source.npz", "diffraction", values)
    assert caught.value.key == "diffraction"
    assert "'diffraction' has 2 non-finite values (NaN or inf)" in str(caught.value)


def test_it_refuses_negative_amplitudes_and_gives_the_minimum() -> None:
    with pytest.raises(ContractError, match=r"has minimum -0\.5 but amplitudes must be >= 0"):
        check_amplitudes("source.npz", "diffraction", np.array([[[1.0, -0.5]]]))


@pytest.mark.parametrize("peak", [10.0, 3.0e4])
def test_it_refuses_intensities_at_or_above_ten_and_says_to_take_the_square_root(
    peak: float,
) -> None:
    with pytest.raises(ContractError) as caught:
        check_amplitudes("source.npz", "diffraction", np.array([[[1.0, peak]]]))
    assert f"has maximum {peak:g} but amplitudes must be < 10" in str(caught.value)
    assert "store sqrt(intensity)" in str(caught.value)


def test_it_refuses_an_empty_diffraction_array() -> None:
    with pytest.raises(ContractError, match="is empty"):
        check_amplitudes("source.npz", "diffraction", np.zeros((0, 8, 8)))


def test_statistics_gathered_block_by_block_reach_the_verdict_of_the_whole_array() -> None:
    values = np.linspace(0.0, 3.0, 600).reshape(10, 60)
    stats = AmplitudeStats()
    for block in np.array_split(values, 7):
        stats.add(block)
    assert stats.check("s.npz", "diffraction") == check_amplitudes("s.npz", "diffraction", values)
    values[8, 3] = np.nan
    stats = AmplitudeStats()
    for block in np.array_split(values, 7):
        stats.add(block)
    with pytest.raises(ContractError, match="has 1 non-finite values"):
        stats.check("s.npz", "diffraction")


# ---------------------------------------------------------------- object and probe


def test_a_source_object_may_be_complex128_but_a_fixture_object_must_be_complex64() -> None:
    obj = np.ones((128, 128), dtype=np.complex128)
    check_object("source.npz", obj, exact=False)
    with pytest.raises(ContractError) as caught:
        check_object("fixture.npz", obj, exact=True)
    assert str(caught.value) == (
        "fixture.npz: 'objectGuess' has dtype complex128 but complex64 is required"
    )


@pytest.mark.parametrize("shape", [(127, 300), (300, 127)])
def test_it_refuses_an_object_with_a_side_under_128(shape: tuple[int, int]) -> None:
    with pytest.raises(ContractError) as caught:
        check_object("source.npz", np.ones(shape, dtype=np.complex64), exact=True)
    assert caught.value.key == "objectGuess"
    assert f"has shape {shape} but both sides must be >= 128" in str(caught.value)


def test_it_refuses_an_object_that_is_not_two_dimensional() -> None:
    with pytest.raises(ContractError, match=r"has shape \(1, 128, 128\) but a 2-D array"):
        check_object("source.npz", np.ones((1, 128, 128), dtype=np.complex64), exact=True)


def test_it_refuses_a_real_object() -> None:
    with pytest.raises(ContractError, match="has dtype float32 but complex64 or complex128"):
        check_object("source.npz", np.ones((128, 128), dtype=np.float32), exact=False)


def test_it_refuses_an_object_with_non_finite_values() -> None:
    obj = np.ones((128, 128), dtype=np.complex64)
    obj[5, 5] = complex(np.nan, 0)
    with pytest.raises(ContractError, match="'objectGuess' has non-finite values"):
        check_object("source.npz", obj, exact=True)


def test_it_refuses_a_probe_whose_shape_is_not_the_detector_shape() -> None:
    with pytest.raises(ContractError) as caught:
        check_probe("source.npz", np.ones((64, 32), dtype=np.complex64), (64, 64), exact=True)
    assert str(caught.value) == (
        "source.npz: 'probeGuess' has shape (64, 32) but the detector shape (64, 64) is required"
    )


# ----------------------------------------------------------------- per position


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_it_accepts_float64_or_float32_coordinates(dtype: Any) -> None:
    check_per_position("source.npz", "xcoords", np.zeros(5, dtype=dtype), 5)


@pytest.mark.parametrize("shape", [(4,), (6,), (5, 1)])
def test_it_refuses_coordinates_without_one_value_per_position(shape: tuple[int, ...]) -> None:
    with pytest.raises(ContractError) as caught:
        check_per_position("source.npz", "ycoords", np.zeros(shape), 5)
    assert caught.value.key == "ycoords"
    assert f"'ycoords' has shape {shape} but (5,) is required" in str(caught.value)


def test_it_refuses_integer_coordinates() -> None:
    with pytest.raises(ContractError, match="has dtype int64 but float64 \\(or float32\\)"):
        check_per_position("source.npz", "xcoords", np.arange(5, dtype=np.int64), 5)


def test_it_refuses_a_nan_coordinate() -> None:
    with pytest.raises(ContractError, match="'xcoords_start' has non-finite values"):
        check_per_position("source.npz", "xcoords_start", np.array([1.0, np.nan]), 2)


def test_the_scan_index_must_hold_integers() -> None:
    check_per_position("source.npz", "scan_index", np.arange(5, dtype=np.uint32), 5)
    with pytest.raises(ContractError, match="'scan_index' has dtype float64 but integers"):
        check_per_position("source.npz", "scan_index", np.arange(5.0), 5)


# ---------------------------------------------------------------- whole fixture


def test_a_valid_fixture_passes_and_the_notes_say_what_was_checked() -> None:
    notes = validate_fixture("fixture.npz", a_valid_fixture())
    assert any(note.startswith("diffraction: finite, min") for note in notes)
    assert "diff3d: identical to diffraction" in notes
    assert "16 positions, detector 8x8, object (128, 130)" in notes


def test_a_fixture_needs_neither_the_alias_nor_the_optional_keys() -> None:
    arrays = changed(
        a_valid_fixture(), diff3d=None, xcoords_start=None, ycoords_start=None, scan_index=None
    )
    validate_fixture("fixture.npz", arrays)


@pytest.mark.parametrize("key", ["diffraction", "objectGuess", "probeGuess", "xcoords", "ycoords"])
def test_it_refuses_a_fixture_missing_a_required_key(key: str) -> None:
    with pytest.raises(ContractError) as caught:
        validate_fixture("fixture.npz", changed(a_valid_fixture(), **{key: None}))
    assert caught.value.key == key
    assert str(caught.value).startswith(f"fixture.npz: {key!r} is missing; a fixture holds")


def test_it_refuses_a_fixture_with_a_key_outside_the_contract() -> None:
    arrays = changed(a_valid_fixture(), intensity=np.ones(3))
    with pytest.raises(ContractError) as caught:
        validate_fixture("fixture.npz", arrays)
    assert caught.value.key == "intensity"
    assert "'intensity' is not a fixture key" in str(caught.value)


def test_it_refuses_float64_diffraction_in_a_fixture() -> None:
    arrays = a_valid_fixture()
    arrays = changed(arrays, diffraction=arrays["diffraction"].astype(np.float64), diff3d=None)
    with pytest.raises(ContractError, match="has dtype float64 but float32 is required"):
        validate_fixture("fixture.npz", arrays)


def test_it_refuses_canonical_diffraction_that_is_not_three_dimensional() -> None:
    arrays = a_valid_fixture()
    arrays = changed(arrays, diffraction=arrays["diffraction"][0], diff3d=None)
    with pytest.raises(ContractError, match=r"has shape \(8, 8\) but a 3-D \(N,H,W\) array"):
        validate_fixture("fixture.npz", arrays)


def test_it_refuses_an_alias_that_differs_from_diffraction_by_one_element() -> None:
    arrays = a_valid_fixture()
    alias = arrays["diff3d"].copy()
    alias[3, 4, 5] = np.nextafter(alias[3, 4, 5], np.float32(10))
    with pytest.raises(ContractError) as caught:
        validate_fixture("fixture.npz", changed(arrays, diff3d=alias))
    assert caught.value.key == "diff3d"
    assert "must be an exact copy" in str(caught.value)


def test_it_refuses_a_complex128_probe_in_a_fixture() -> None:
    arrays = a_valid_fixture()
    arrays = changed(arrays, probeGuess=arrays["probeGuess"].astype(np.complex128))
    with pytest.raises(ContractError, match="'probeGuess' has dtype complex128 but complex64"):
        validate_fixture("fixture.npz", arrays)


def test_it_refuses_an_optional_array_with_the_wrong_length() -> None:
    arrays = changed(a_valid_fixture(), scan_index=np.arange(15))
    with pytest.raises(ContractError, match=r"'scan_index' has shape \(15,\) but \(16,\)"):
        validate_fixture("fixture.npz", arrays)


@pytest.mark.parametrize(
    "changes",
    [
        {"diffraction": None},
        {"xcoords": np.zeros(3)},
        {"objectGuess": np.ones((64, 64), dtype=np.complex64)},
        {"probeGuess": np.ones((4, 4), dtype=np.complex64)},
        {"diff3d": np.zeros((16, 8, 8), dtype=np.float32)},
    ],
    ids=["missing", "short-coordinates", "small-object", "probe-shape", "alias"],
)
def test_every_refusal_is_one_line_that_starts_with_the_file(changes: dict[str, Any]) -> None:
    with pytest.raises(ContractError) as caught:
        validate_fixture("some/dir/fixture.npz", changed(a_valid_fixture(), **changes))
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("some/dir/fixture.npz: ")
    assert caught.value.key is not None and repr(caught.value.key) in text
