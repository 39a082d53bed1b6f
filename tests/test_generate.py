"""Generating the fixture from a source: subset, transpose, cast, write atomically, describe."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    BAD_SOURCES,
    SKIPPED_NAN,
    Bad,
    folder_entries,
    generate_unprivileged,
    needs_permissions,
    permissions,
    pickled_member,
    recompute_content_sha256,
    source_arrays,
    source_members,
    write_source,
    write_zip,
)
from hypothesis import given
from hypothesis import strategies as st

import pytest_ptycho_fixture
from pytest_ptycho_fixture.contract import ContractError, validate_fixture
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.reader import load_npz
from pytest_ptycho_fixture.spec import OptionError
from pytest_ptycho_fixture.subsets import subset_indices

N = 100


def stratified(n_positions: int, size: int) -> list[int]:
    return [i * n_positions // size for i in range(size)]


def sidecar_of(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(result.metadata_path).read_text(encoding="utf-8"))
    return data


# ------------------------------------------------------------------ arrays written


def test_it_returns_the_output_path_the_sidecar_path_and_the_npz_sha256(
    legacy: Path, out: Path
) -> None:
    output_path, metadata_path, sha256 = generate_fixture(legacy, out / "fixture.npz")
    assert output_path == out / "fixture.npz"
    assert metadata_path == out / "fixture.json"
    assert sha256 == hashlib.sha256(output_path.read_bytes()).hexdigest()
    assert folder_entries(out) == ["fixture.json", "fixture.npz"]


def test_subset_size_and_metadata_path_may_be_given_by_position(legacy: Path, out: Path) -> None:
    result = generate_fixture(legacy, out / "fixture.npz", 24, out / "described.json")
    assert result.metadata_path == out / "described.json"
    assert folder_entries(out) == ["described.json", "fixture.npz"]
    assert sidecar_of(result)["subset_size"] == 24
    assert load_npz(result.output_path).arrays["xcoords"].shape == (24,)


def test_from_a_legacy_float64_source_the_fixture_is_the_stratified_subset_cast_exactly(
    legacy: Path, out: Path
) -> None:
    source = source_arrays()
    fixture = load_npz(
        generate_fixture(legacy, out / "fixture.npz", compress=False).output_path
    ).arrays
    index = stratified(N, 64)
    expected = source["diffraction"][:, :, index].transpose(2, 0, 1).astype(np.float32)
    assert fixture["diffraction"].dtype == np.float32
    assert fixture["diffraction"].shape == (64, 64, 64)
    assert np.array_equal(fixture["diffraction"], expected)
    assert np.array_equal(fixture["diff3d"], expected)
    assert fixture["objectGuess"].dtype == np.complex64
    assert np.array_equal(fixture["objectGuess"], source["objectGuess"].astype(np.complex64))
    assert fixture["probeGuess"].dtype == np.complex64
    assert np.array_equal(fixture["probeGuess"], source["probeGuess"].astype(np.complex64))
    for key in ("xcoords", "ycoords", "xcoords_start", "ycoords_start"):
        assert fixture[key].dtype == np.float64
        assert np.array_equal(fixture[key], source[key][index])


def test_from_a_canonical_float32_source_the_fixture_is_the_subset_unchanged(
    tmp_path: Path, out: Path
) -> None:
    source = source_arrays(layout="NHW")
    canonical = {
        "diffraction": source["diffraction"].astype(np.float32),
        "objectGuess": source["objectGuess"].astype(np.complex64),
        "probeGuess": source["probeGuess"].astype(np.complex64),
        "xcoords": source["xcoords"].astype(np.float32),
        "ycoords": source["ycoords"].astype(np.float32),
    }
    path = write_source(tmp_path / "canonical.npz", canonical)
    fixture = load_npz(
        generate_fixture(path, out / "fixture.npz", compress=False).output_path
    ).arrays
    index = stratified(N, 64)
    assert np.array_equal(fixture["diffraction"], canonical["diffraction"][index])
    assert np.array_equal(fixture["objectGuess"], canonical["objectGuess"])
    assert np.array_equal(fixture["probeGuess"], canonical["probeGuess"])
    for key in ("xcoords", "ycoords"):
        assert fixture[key].dtype == np.float64
        assert np.array_equal(fixture[key], canonical[key][index].astype(np.float64))
    assert sorted(fixture) == [
        "diff3d",
        "diffraction",
        "objectGuess",
        "probeGuess",
        "xcoords",
        "ycoords",
    ]


def test_a_legacy_source_and_its_canonical_twin_give_the_same_fixture(
    legacy: Path, tmp_path: Path, out: Path
) -> None:
    twin = write_source(tmp_path / "twin.npz", source_arrays(layout="NHW"))
    first = load_npz(generate_fixture(legacy, out / "a.npz", compress=False).output_path)
    second = load_npz(generate_fixture(twin, out / "b.npz", compress=False).output_path)
    assert first.content_sha256 == second.content_sha256


def test_the_first_strategy_keeps_the_first_n_positions(legacy: Path, out: Path) -> None:
    result = generate_fixture(
        legacy, out / "fixture.npz", 40, strategy="first", min_coverage=0.0, compress=False
    )
    fixture = load_npz(result.output_path).arrays
    expected = source_arrays()["diffraction"][:, :, :40].transpose(2, 0, 1).astype(np.float32)
    assert np.array_equal(fixture["diffraction"], expected)
    assert np.array_equal(fixture["xcoords"], source_arrays()["xcoords"][:40])
    assert sidecar_of(result)["subset_indices"] == list(range(40))


def test_the_diff3d_alias_is_written_by_default_and_can_be_switched_off(
    legacy: Path, out: Path
) -> None:
    with_alias = generate_fixture(legacy, out / "with.npz", compress=False)
    without = generate_fixture(legacy, out / "without.npz", diff3d_alias=False, compress=False)
    assert "diff3d" in load_npz(with_alias.output_path).arrays
    assert "diff3d" not in load_npz(without.output_path).arrays
    assert "diff3d" not in sidecar_of(without)["arrays"]
    validate_fixture("without.npz", load_npz(without.output_path).arrays)


def test_it_keeps_the_optional_per_position_arrays_and_subsets_them(
    tmp_path: Path, out: Path
) -> None:
    scan_index = np.arange(1000, 1000 + N, dtype=np.int32)[::-1].copy()
    path = write_source(tmp_path / "source.npz", scan_index=scan_index)
    fixture = load_npz(
        generate_fixture(path, out / "fixture.npz", 20, compress=False).output_path
    ).arrays
    index = stratified(N, 20)
    assert np.array_equal(fixture["scan_index"], scan_index[index])
    assert np.array_equal(fixture["xcoords_start"], source_arrays()["xcoords_start"][index])
    assert np.array_equal(fixture["ycoords_start"], source_arrays()["ycoords_start"][index])


def test_it_writes_no_optional_array_the_source_lacks(tmp_path: Path, out: Path) -> None:
    path = write_source(tmp_path / "source.npz", xcoords_start=None, ycoords_start=None)
    fixture = load_npz(
        generate_fixture(path, out / "fixture.npz", compress=False).output_path
    ).arrays
    assert not {"xcoords_start", "ycoords_start", "scan_index"} & set(fixture)


def test_it_does_not_copy_unknown_keys_and_lists_them_as_dropped(tmp_path: Path, out: Path) -> None:
    path = write_source(
        tmp_path / "source.npz", intensity=np.ones(3), probe_positions=np.zeros((2, 2))
    )
    result = generate_fixture(path, out / "fixture.npz", compress=False)
    assert not {"intensity", "probe_positions"} & set(load_npz(result.output_path).arrays)
    assert sidecar_of(result)["dropped_keys"] == ["intensity", "probe_positions"]


def test_it_reads_diffraction_from_diff3d_when_that_is_the_only_name_used(
    legacy: Path, tmp_path: Path, out: Path
) -> None:
    path = write_source(
        tmp_path / "old.npz", diffraction=None, diff3d=source_arrays()["diffraction"]
    )
    old = generate_fixture(path, out / "old.npz", compress=False)
    assert load_npz(old.output_path).content_sha256 == (
        load_npz(
            generate_fixture(legacy, out / "new.npz", compress=False).output_path
        ).content_sha256
    )
    assert sidecar_of(old)["dropped_keys"] == []
    assert any("'diff3d'" in note for note in sidecar_of(old)["validation_notes"])


# ----------------------------------------------------------------- subset choice


@pytest.mark.parametrize("size", [16, 63, N])
def test_it_accepts_any_subset_size_from_16_to_the_number_of_positions(
    legacy: Path, out: Path, size: int
) -> None:
    result = generate_fixture(legacy, out / "fixture.npz", size, min_coverage=0.0, compress=False)
    assert load_npz(result.output_path).arrays["diffraction"].shape == (size, 64, 64)
    assert sidecar_of(result)["subset_indices"] == stratified(N, size)


@given(total=st.integers(1, 5000), data=st.data())
def test_stratified_indices_are_sorted_unique_and_in_range(total: int, data: Any) -> None:
    size = data.draw(st.integers(1, total))
    positions = np.zeros(total)
    indices = subset_indices("stratified", positions, positions, size)
    assert len(indices) == size
    assert indices == sorted(set(indices))
    assert indices[0] == 0 and indices[-1] < total
    assert indices == [(i * total) // size for i in range(size)]


def test_it_refuses_a_strategy_it_does_not_know(legacy: Path, out: Path) -> None:
    with pytest.raises(OptionError) as caught:
        generate_fixture(legacy, out / "fixture.npz", strategy="random")
    assert str(caught.value) == (
        "strategy: 'random' is not a subset strategy: expected stratified, first, spread or groups"
    )
    assert folder_entries(out) == []


def _raster(tmp_path: Path) -> Path:
    return write_source(tmp_path / "raster.npz", source_arrays(positions=300))


def _span(values: Any) -> float:
    return float(values.max() - values.min())


def test_it_refuses_a_subset_that_covers_too_little_and_suggests_stratified(
    tmp_path: Path, out: Path
) -> None:
    raster = _raster(tmp_path)
    with pytest.raises(ContractError) as caught:
        generate_fixture(raster, out / "fixture.npz", strategy="first")
    x, y = (source_arrays(positions=300)[key] for key in ("xcoords", "ycoords"))
    assert caught.value.key == "ycoords"
    assert (
        f"the first subset covers {_span(x[:64]) / _span(x):.1%} of the x range and"
        f" {_span(y[:64]) / _span(y):.1%} of the y range" in str(caught.value)
    )
    assert "at least 50% of each is required" in str(caught.value)
    assert "use --subset-strategy spread" in str(caught.value)
    assert folder_entries(out) == []


def test_a_lower_minimum_coverage_allows_the_first_positions_and_records_coverage(
    tmp_path: Path, out: Path
) -> None:
    raster = _raster(tmp_path)
    result = generate_fixture(
        raster, out / "fixture.npz", strategy="first", min_coverage=0.1, compress=False
    )
    y = source_arrays(positions=300)["ycoords"]
    x = source_arrays(positions=300)["xcoords"]
    coverage = sidecar_of(result)["coverage"]
    assert coverage["y"] == round(_span(y[:64]) / _span(y), 6)
    assert coverage["x"] == round(_span(x[:64]) / _span(x), 6)
    assert coverage["y"] < 0.5


def test_the_stratified_subset_of_a_raster_spans_nearly_all_of_it(
    tmp_path: Path, out: Path
) -> None:
    result = generate_fixture(_raster(tmp_path), out / "fixture.npz", compress=False)
    assert min(sidecar_of(result)["coverage"].values()) > 0.9


# --------------------------------------------------------------------- layout


@pytest.mark.parametrize("layout", ["HWN", "NHW"])
def test_an_explicit_layout_resolves_a_source_where_h_w_and_n_are_all_64(
    tmp_path: Path, out: Path, layout: str
) -> None:
    source = source_arrays(positions=64, layout=layout)
    path = write_source(tmp_path / "square.npz", source)
    with pytest.raises(ContractError, match="--layout HWN or NHW"):
        generate_fixture(path, out / "fixture.npz")
    result = generate_fixture(path, out / "fixture.npz", layout=layout, compress=False)
    canonical = (
        source["diffraction"].transpose(2, 0, 1) if layout == "HWN" else source["diffraction"]
    )
    fixture = load_npz(result.output_path).arrays
    assert np.array_equal(fixture["diffraction"], canonical.astype(np.float32))
    assert sidecar_of(result)["source_layout"] == layout


# ----------------------------------------------------------------------- sidecar

REQUIRED_FIELDS = {
    "version", "created", "generator", "generator_commit", "source_dataset",
    "source_content_sha256", "subset_strategy", "subset_size", "transformations",
    "sha256_checksum", "content_sha256", "arrays", "coverage", "dropped_keys",
    "validation_notes",
}  # fmt: skip


def test_the_sidecar_is_utf8_json_with_sorted_keys_and_an_indent_of_two(
    tmp_path: Path, out: Path
) -> None:
    source = write_source(tmp_path / "Quelle-Röntgen-µm.npz")
    result = generate_fixture(source, out / "fixture.npz", compress=False)
    raw = result.metadata_path.read_bytes()
    text = raw.decode("utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert "Röntgen-µm".encode() in raw
    assert REQUIRED_FIELDS <= set(data)


def test_the_sidecar_records_what_was_generated_and_from_what(legacy: Path, out: Path) -> None:
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    result = generate_fixture(str(legacy), out / "fixture.npz", 32, compress=False)
    after = dt.datetime.now(dt.timezone.utc)
    data = sidecar_of(result)
    assert data["version"] == "v1"
    created = dt.datetime.fromisoformat(data["created"])
    assert created.utcoffset() == dt.timedelta(0)
    assert before <= created <= after
    assert data["generator"] == {
        "name": importlib.metadata.metadata("pytest-ptycho-fixture")["Name"],
        "version": pytest_ptycho_fixture.__version__,
    }
    assert data["source_dataset"] == str(legacy)
    assert data["subset_strategy"] == "stratified"
    assert data["subset_size"] == 32
    assert data["subset_indices"] == stratified(N, 32)
    assert data["subset_rule"] == "floor(i * 100 / 32) for i in 0..31"
    assert data["dropped_keys"] == []
    assert all(isinstance(note, str) and note for note in data["validation_notes"])
    assert "layout HWN decided from 100 coordinate positions" in data["validation_notes"]


def test_the_sidecar_digests_are_those_of_the_file_and_of_each_array(
    legacy: Path, out: Path
) -> None:
    result = generate_fixture(legacy, out / "fixture.npz")
    data = sidecar_of(result)
    loaded = load_npz(result.output_path)
    assert data["sha256_checksum"] == hashlib.sha256(result.output_path.read_bytes()).hexdigest()
    assert data["sha256_checksum"] == result.sha256
    content, per_array = recompute_content_sha256(loaded.arrays)
    assert data["content_sha256"] == content == loaded.content_sha256
    assert data["arrays"] == {
        key: {
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "sha256": per_array[key],
        }
        for key, array in loaded.arrays.items()
    }


def test_a_verified_source_records_the_content_digest_of_its_arrays(
    legacy: Path, out: Path
) -> None:
    result = generate_fixture(legacy, out / "fixture.npz", verify_source=True)
    data = sidecar_of(result)
    assert data["source_content_sha256"] == recompute_content_sha256(source_arrays())[0]
    assert not any("read in part" in note for note in data["validation_notes"])


def _central_directory_fingerprint(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        lines = sorted(f"{i.filename} {i.CRC:08x} {i.file_size}\n" for i in archive.infolist())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


@pytest.mark.parametrize("verify_source", [False, True])
def test_the_source_fingerprint_comes_from_its_zip_directory_alone(
    legacy: Path, out: Path, verify_source: bool
) -> None:
    result = generate_fixture(legacy, out / "fixture.npz", verify_source=verify_source)
    assert sidecar_of(result)["source_fingerprint"] == _central_directory_fingerprint(legacy)


def test_by_default_the_source_is_read_in_part_and_its_digest_is_null(
    legacy: Path, out: Path
) -> None:
    data = sidecar_of(generate_fixture(legacy, out / "fixture.npz"))
    assert data["source_content_sha256"] is None
    assert "source read in part: only the 64 selected patterns were read and checked" in (
        "\n".join(data["validation_notes"])
    )


def test_a_nan_in_a_pattern_the_subset_skips_is_not_read_unless_the_source_is_verified(
    tmp_path: Path, out: Path
) -> None:
    clean = write_source(tmp_path / "clean.npz")
    (tmp_path / "bad").mkdir()
    bad = SKIPPED_NAN(tmp_path / "bad")
    from_bad = generate_fixture(bad, out / "bad.npz")
    from_clean = generate_fixture(clean, out / "clean.npz")
    assert load_npz(from_bad.output_path).content_sha256 == (
        load_npz(from_clean.output_path).content_sha256
    )
    with pytest.raises(ContractError, match="has 1 non-finite values"):
        generate_fixture(bad, out / "verified.npz", verify_source=True)


def _canonical_stored(path: Path, positions: int, detector: int) -> Path:
    """A stored (N,H,W) float64 source: amplitude ``n / positions`` in pattern ``n``."""
    arrays = source_arrays(positions=positions, layout="NHW")
    levels = np.arange(positions, dtype=np.float64) / positions
    arrays["diffraction"] = np.broadcast_to(
        levels[:, None, None], (positions, detector, detector)
    ).copy()
    arrays["probeGuess"] = np.ones((detector, detector), dtype=np.complex128)
    return write_source(path, arrays)


def test_from_a_stored_canonical_source_only_the_selected_patterns_are_read(
    tmp_path: Path, out: Path
) -> None:
    # 2000 patterns of 128x128 float64: 262 MB, of which the 64 selected are 8.4 MB.
    source = _canonical_stored(tmp_path / "big.npz", 2000, 128)
    io = Path("/proc/self/io")
    before = int(io.read_text().split("rchar:")[1].split()[0])
    result = generate_fixture(source, out / "fixture.npz", compress=False)
    read = int(io.read_text().split("rchar:")[1].split()[0]) - before
    # The selected patterns, the small arrays, and the written file once more (its digest).
    selected = 64 * 128 * 128 * 8
    bound = selected + result.output_path.stat().st_size + (4 << 20)
    assert read < bound, f"read {read} bytes of a {source.stat().st_size}-byte source"
    diffraction = load_npz(result.output_path).arrays["diffraction"]
    expected = np.asarray(stratified(2000, 64), dtype=np.float64) / 2000
    assert np.array_equal(diffraction[:, 5, 7], expected.astype(np.float32))


def test_bytes_outside_the_selected_patterns_of_a_stored_source_are_never_read(
    tmp_path: Path, out: Path
) -> None:
    source = _canonical_stored(tmp_path / "source.npz", 200, 64)
    clean = load_npz(generate_fixture(source, out / "clean.npz").output_path).content_sha256
    with zipfile.ZipFile(source) as archive:
        info = archive.getinfo("diffraction.npy")
    with open(source, "r+b") as handle:
        handle.seek(info.header_offset + 30 + len(info.filename))
        data = bytearray(handle.read(info.file_size))
        start = data.index(b"\n") + 1  # end of the .npy header
        pattern = 64 * 64 * 8
        skipped = 1  # stratified 64 of 200: 0, 3, 6, ...
        data[start + skipped * pattern : start + (skipped + 1) * pattern] = b"\xff" * pattern
        handle.seek(info.header_offset + 30 + len(info.filename))
        handle.write(data)
    again = generate_fixture(source, out / "again.npz")
    assert load_npz(again.output_path).content_sha256 == clean
    with pytest.raises(ContractError, match="CRC-32"):
        generate_fixture(source, out / "verified.npz", verify_source=True)


def test_it_records_the_transpose_and_each_cast_it_applied(legacy: Path, out: Path) -> None:
    steps = sidecar_of(generate_fixture(legacy, out / "fixture.npz", compress=False))[
        "transformations"
    ]
    assert steps[0] == "subset: stratified, positions floor(i * 100 / 64) for i in 0..63"
    joined = "\n".join(steps)
    assert "transposed from legacy (H,W,N) to (N,H,W)" in joined
    assert "diffraction: float64 -> float32" in joined
    assert "objectGuess: complex128 -> complex64" in joined
    assert "probeGuess: complex128 -> complex64" in joined
    assert "diff3d: copy of diffraction" in joined


def test_it_records_no_transpose_or_cast_for_a_canonical_single_precision_source(
    tmp_path: Path, out: Path
) -> None:
    source = source_arrays(layout="NHW")
    path = write_source(
        tmp_path / "canonical.npz",
        diffraction=source["diffraction"].astype(np.float32),
        objectGuess=source["objectGuess"].astype(np.complex64),
        probeGuess=source["probeGuess"].astype(np.complex64),
        xcoords=source["xcoords"],
        ycoords=source["ycoords"],
    )
    steps = sidecar_of(generate_fixture(path, out / "f.npz", diff3d_alias=False, compress=False))[
        "transformations"
    ]
    assert steps == ["subset: stratified, positions floor(i * 100 / 64) for i in 0..63"]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Fixture", "-c", "user.email=fixture@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_it_records_the_commit_of_the_git_repository_it_runs_in(
    legacy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    _git("commit", "-q", "--allow-empty", "-m", "start", cwd=repo)
    head = _git("rev-parse", "HEAD", cwd=repo)
    monkeypatch.chdir(repo)
    data = sidecar_of(generate_fixture(legacy, repo / "fixture.npz", compress=False))
    assert re.fullmatch("[0-9a-f]{40}", data["generator_commit"])
    assert data["generator_commit"] == head


def test_it_records_an_unknown_commit_outside_a_git_repository(
    legacy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.delenv("GIT_DIR", raising=False)
    data = sidecar_of(generate_fixture(legacy, plain / "fixture.npz", compress=False))
    assert data["generator_commit"] == "unknown"


# --------------------------------------------------------------- reproducibility


def test_generating_twice_gives_byte_identical_files(legacy: Path, out: Path) -> None:
    first = generate_fixture(legacy, out / "first.npz")
    second = generate_fixture(legacy, out / "second.npz")
    assert first.output_path.read_bytes() == second.output_path.read_bytes()
    assert first.sha256 == second.sha256


def test_it_compresses_by_default_and_stores_on_request_with_the_same_content(
    legacy: Path, out: Path
) -> None:
    deflated = generate_fixture(legacy, out / "deflated.npz")
    stored = generate_fixture(legacy, out / "stored.npz", compress=False)
    with zipfile.ZipFile(deflated.output_path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    with zipfile.ZipFile(stored.output_path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    assert deflated.sha256 != stored.sha256
    assert sidecar_of(deflated)["content_sha256"] == sidecar_of(stored)["content_sha256"]


def test_the_built_in_source_gives_a_valid_fixture_of_the_stratified_64_of_1087(
    out: Path,
) -> None:
    result = generate_fixture(None, out / "fixture.npz", compress=False)
    notes = validate_fixture(result.output_path, load_npz(result.output_path).arrays)
    assert "64 positions, detector 64x64, object (227, 226)" in notes
    data = sidecar_of(result)
    assert data["source_positions"] == 1087
    assert data["subset_indices"] == stratified(1087, 64)


# ------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", BAD_SOURCES, ids=str)
def test_it_refuses_a_bad_source_with_one_line_naming_file_and_key(
    bad: Bad, tmp_path: Path, out: Path
) -> None:
    source = bad.build(tmp_path)
    with pytest.raises(ContractError) as caught:
        # In a folder still to be made: a refused source must not leave it behind.
        generate_fixture(source, out / "new" / "fixture.npz", **bad.kwargs)
    error = caught.value
    assert error.path == str(source)
    assert error.key == bad.key
    assert "\n" not in str(error)
    assert str(error).startswith(f"{source}: ")
    for fragment in bad.says:
        assert fragment in str(error)
    if bad.key is not None and bad.key != "README.txt":
        assert repr(bad.key) in str(error)
    assert folder_entries(out) == []


def test_it_never_unpickles_an_object_array_in_a_source(tmp_path: Path, out: Path) -> None:
    marker = tmp_path / "unpickled"
    members = source_members()
    members["objectGuess.npy"] = pickled_member(marker)
    source = write_zip(tmp_path / "source.npz", members)
    with pytest.raises(ContractError, match="'objectGuess' holds Python objects"):
        generate_fixture(source, out / "fixture.npz")
    assert not marker.exists()
    assert folder_entries(out) == []


@needs_permissions
def test_it_refuses_a_source_it_may_not_read(legacy: Path, out: Path) -> None:
    with permissions(legacy, 0o000):
        outcome = generate_unprivileged(legacy, out / "fixture.npz")
    assert outcome["type"] == "ContractError"
    assert outcome["str"] == f"{legacy}: cannot be read (permission denied)"
    assert folder_entries(out) == []


@needs_permissions
def test_below_a_read_only_folder_it_names_the_output_and_the_folder_it_cannot_make(
    legacy: Path, out: Path
) -> None:
    output = out / "a" / "b" / "fixture.npz"
    with permissions(out, 0o555):
        outcome = generate_unprivileged(legacy, output)
    assert outcome["type"] == "PermissionError"
    assert outcome["filename"] == str(output)
    assert f"cannot create the folder {out / 'a'}: Permission denied" in outcome["str"]
    assert folder_entries(out) == []


@needs_permissions
def test_it_writes_nothing_into_a_read_only_folder_and_names_the_output(
    legacy: Path, out: Path
) -> None:
    with permissions(out, 0o555):
        outcome = generate_unprivileged(legacy, out / "fixture.npz")
    assert outcome["type"] == "PermissionError"
    assert outcome["filename"] == str(out / "fixture.npz")
    assert folder_entries(out) == []


def test_a_sidecar_path_with_a_file_in_its_way_is_refused_before_the_source_is_read(
    legacy: Path, out: Path
) -> None:
    (out / "file").write_bytes(b"")
    sidecar = out / "file" / "fixture.json"
    with pytest.raises(NotADirectoryError) as caught:
        generate_fixture(legacy, out / "new" / "fixture.npz", metadata_path=sidecar)
    assert caught.value.filename == str(sidecar)
    assert caught.value.strerror == (
        f"cannot create the folder {out / 'file'}: a file of that name is in the way;"
        " move it or choose another path"
    )
    assert folder_entries(out) == ["file"]


def test_a_sidecar_that_cannot_be_written_leaves_no_npz_and_no_temporary_file(
    legacy: Path, out: Path
) -> None:
    # A name of 250 bytes is allowed, but its temporary name (.NAME.XXXXXXXX.tmp) is not.
    sidecar = out / ("x" * 245 + ".json")
    with pytest.raises(OSError, match="File name too long") as caught:
        generate_fixture(legacy, out / "a" / "fixture.npz", metadata_path=sidecar)
    assert caught.value.filename == str(sidecar)
    assert folder_entries(out) == []


def test_a_failed_regeneration_leaves_the_previous_fixture_as_it_was(
    legacy: Path, out: Path
) -> None:
    first = generate_fixture(legacy, out / "fixture.npz", 32, compress=False)
    before = first.output_path.read_bytes(), first.metadata_path.read_bytes()
    with pytest.raises(OSError, match="File name too long"):
        generate_fixture(legacy, out / "fixture.npz", metadata_path=out / ("x" * 245 + ".json"))
    assert (first.output_path.read_bytes(), first.metadata_path.read_bytes()) == before
    assert folder_entries(out) == ["fixture.json", "fixture.npz"]


def test_an_output_path_that_is_a_directory_leaves_no_sidecar_behind(
    legacy: Path, out: Path
) -> None:
    (out / "fixture.npz").mkdir()
    with pytest.raises(ContractError, match="is a directory but a file path is required"):
        generate_fixture(legacy, out / "fixture.npz")
    assert folder_entries(out) == ["fixture.npz"]
    assert folder_entries(out / "fixture.npz") == []


def test_a_sidecar_path_equal_to_the_output_path_is_refused(legacy: Path, out: Path) -> None:
    with pytest.raises(ContractError, match="the sidecar needs a path of its own"):
        generate_fixture(legacy, out / "fixture.npz", metadata_path=out / "fixture.npz")
    assert folder_entries(out) == []


def test_it_makes_the_missing_folders_of_the_fixture_and_of_the_sidecar(
    legacy: Path, out: Path
) -> None:
    output, sidecar = out / "a" / "b" / "fixture.npz", out / "m" / "n" / "fixture.json"
    result = generate_fixture(legacy, output, metadata_path=sidecar)
    assert result.output_path == output and result.metadata_path == sidecar
    assert folder_entries(output.parent) == ["fixture.npz"]
    assert folder_entries(sidecar.parent) == ["fixture.json"]
    assert sidecar_of(result)["sha256_checksum"] == result.sha256
    beside = generate_fixture(legacy, out / "c" / "fixture.npz")
    assert folder_entries(beside.output_path.parent) == ["fixture.json", "fixture.npz"]


def test_the_folders_it_made_are_removed_when_writing_then_fails(legacy: Path, out: Path) -> None:
    (out / "sidecar.json").mkdir()
    with pytest.raises(ContractError, match="is a directory but a file path is required"):
        generate_fixture(
            legacy, out / "a" / "b" / "fixture.npz", metadata_path=out / "sidecar.json"
        )
    assert folder_entries(out) == ["sidecar.json"]


def test_the_folders_it_made_are_removed_when_a_deeper_one_cannot_be_made(
    legacy: Path, out: Path
) -> None:
    too_long = out / "a" / ("x" * 300)
    with pytest.raises(OSError, match="File name too long") as caught:
        generate_fixture(legacy, too_long / "fixture.npz")
    assert caught.value.filename == str(too_long / "fixture.npz")
    assert caught.value.strerror == f"cannot create the folder {too_long}: File name too long"
    assert folder_entries(out) == []
