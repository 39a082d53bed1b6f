"""Reading an NPZ: headers first, whole members or selected positions, hostile files refused."""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    inflate_declared_size,
    npy_bytes,
    npy_header,
    pickled_member,
    recompute_content_sha256,
    some_arrays,
    write_zip,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.generate import generate_fixture
from pytest_ptycho_fixture.npz.digests import ContentHasher, content_digests
from pytest_ptycho_fixture.npz.reader import NpzReader, load_npz
from pytest_ptycho_fixture.npz.writer import write_npz

MB = 1 << 20


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "arrays.npz"
    write_npz(path, some_arrays())
    return path


# ------------------------------------------------------------------------- reader


@pytest.mark.parametrize("compress", [True, False], ids=["deflated", "stored"])
def test_load_npz_gives_what_numpy_gives_and_digests_on_the_same_pass(
    tmp_path: Path, compress: bool
) -> None:
    write_npz(tmp_path / "a.npz", some_arrays(), compress=compress)
    loaded = load_npz(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as reference:
        assert sorted(loaded.arrays) == sorted(reference.files)
        for key in reference.files:
            assert loaded.arrays[key].dtype == reference[key].dtype
            assert np.array_equal(loaded.arrays[key], reference[key])
    assert (loaded.content_sha256, loaded.array_sha256) == content_digests(loaded.arrays)


def test_a_member_repeating_an_earlier_one_is_loaded_as_a_copy_of_it(tmp_path: Path) -> None:
    patterns = np.random.default_rng(3).normal(size=(16, 32, 32)).astype(np.float32)
    arrays = {"diff3d": patterns, "diffraction": patterns.copy(), "probe": patterns[0] + 1}
    write_npz(tmp_path / "a.npz", arrays)
    with NpzReader(tmp_path / "a.npz") as reader:
        assert reader.same_data("diff3d", "diffraction")
        assert not reader.same_data("diff3d", "probe")
    loaded = load_npz(tmp_path / "a.npz")
    assert np.array_equal(loaded.arrays["diffraction"], patterns)
    assert not np.shares_memory(loaded.arrays["diff3d"], loaded.arrays["diffraction"])
    assert (loaded.content_sha256, loaded.array_sha256) == content_digests(arrays)


def test_a_repeating_member_whose_compressed_bytes_differ_is_read_and_refused(
    tmp_path: Path,
) -> None:
    patterns = np.random.default_rng(4).normal(size=(16, 32, 32))
    path = tmp_path / "a.npz"
    write_npz(path, {"a": patterns, "b": patterns})
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("b.npy")
    # The central directory still records the CRC and sizes of "a"'s twin.
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + len("b.npy") + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with NpzReader(path) as reader:
        assert not reader.same_data("a", "b")
    with pytest.raises(ContractError) as caught:
        load_npz(path)
    assert caught.value.key == "b"
    assert "the file is damaged" in str(caught.value)


@pytest.mark.parametrize("compress", [True, False], ids=["deflated", "stored"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("chunk_bytes", [7, 13, 4099, 8 << 20])
@pytest.mark.parametrize("digest", [True, False], ids=["digested", "seeking"])
def test_take_gives_what_numpy_take_gives(
    tmp_path: Path,
    compress: bool,
    dtype: Any,
    axis: int,
    chunk_bytes: int,
    digest: bool,
    inflater: str,
) -> None:
    # Without a digest, rows of a stored member are read where they lie.
    values = np.random.default_rng(3).uniform(0, 9, size=(41, 7, 13)).astype(dtype)
    write_npz(tmp_path / "a.npz", {"d": values}, compress=compress)
    indices = [40, 0, 5, 5, 12, 6] if axis == -1 else [0, 1, 13, 40, 7, 7, 39]
    indices = [i for i in indices if i < values.shape[axis]]
    hasher = ContentHasher() if digest else None
    with NpzReader(tmp_path / "a.npz") as reader:
        taken = reader.take("d", axis, indices, hasher, chunk_bytes=chunk_bytes)
    with np.load(tmp_path / "a.npz") as reference:
        expected = reference["d"].take(indices, axis=axis)
    assert taken.dtype == expected.dtype
    assert np.array_equal(taken, expected)
    if hasher is not None:
        assert hasher.arrays == content_digests({"d": values})[1]


@pytest.mark.parametrize(
    "stored",
    [
        np.asfortranarray(np.arange(2 * 3 * 5, dtype=np.float64).reshape(2, 3, 5)),
        np.arange(2 * 3 * 5, dtype=np.float64).reshape(2, 3, 5).astype(">f8"),
        np.asfortranarray(np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5).astype(">f4")),
    ],
    ids=["fortran", "big-endian", "fortran-big-endian"],
)
@pytest.mark.parametrize("axis", [0, -1])
def test_take_reads_fortran_and_big_endian_members_that_numpy_wrote(
    tmp_path: Path, stored: NDArray[Any], axis: int
) -> None:
    # np.savez keeps Fortran order and byte order; write_npz would normalise them.
    np.savez(tmp_path / "a.npz", d=stored)
    hasher = ContentHasher()
    with NpzReader(tmp_path / "a.npz") as reader:
        member = reader.member("d")
        taken = reader.take("d", axis, [1, 0, 1], hasher, chunk_bytes=13)
    assert member.fortran_order == stored.flags.f_contiguous
    assert np.array_equal(taken, stored.take([1, 0, 1], axis=axis))
    assert hasher.arrays == content_digests({"d": stored})[1]
    loaded = load_npz(tmp_path / "a.npz")
    assert np.array_equal(loaded.arrays["d"], stored)
    assert loaded.content_sha256 == content_digests({"d": np.ascontiguousarray(stored)})[0]


def test_take_sees_every_value_of_the_member_through_visit(tmp_path: Path) -> None:
    values = np.arange(6 * 4 * 9, dtype=np.float64).reshape(6, 4, 9)
    write_npz(tmp_path / "a.npz", {"d": values}, compress=False)
    for axis in (0, -1):
        seen: list[NDArray[Any]] = []

        def visit(block: NDArray[Any], seen: list[NDArray[Any]] = seen) -> None:
            seen.append(block.copy())

        with NpzReader(tmp_path / "a.npz") as reader:
            reader.take("d", axis, [2], chunk_bytes=100, visit=visit)
        assert len(seen) > 1
        assert np.array_equal(np.sort(np.concatenate([b.ravel() for b in seen])), values.ravel())


def test_take_refuses_a_middle_axis_and_indices_out_of_range(written: Path) -> None:
    with NpzReader(written) as reader:
        with pytest.raises(ValueError, match="axis 0 or the last axis"):
            reader.take("diffraction", 1, [0])
        with pytest.raises(IndexError, match="out of range"):
            reader.take("diffraction", 0, [37])


def test_it_names_the_missing_key_and_what_the_file_holds(written: Path) -> None:
    with NpzReader(written) as reader, pytest.raises(ContractError) as caught:
        reader.member("probeGuess")
    assert caught.value.key == "probeGuess"
    assert str(caught.value) == (
        f"{written}: 'probeGuess' is missing; found {sorted(some_arrays())}"
    )


# --------------------------------------------------------------------- properties

_DTYPES = st.sampled_from(
    ["|b1", "|i1", "<u2", "<i4", ">i4", "<i8", "<f2", "<f4", ">f4", "<f8", ">f8", "<c8", ">c16"]
)
_KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
_ARRAYS = _DTYPES.flatmap(
    lambda dtype: hnp.arrays(
        dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
    )
)


def _little_endian_bytes(array: NDArray[Any]) -> bytes:
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


@settings(max_examples=40, deadline=None)
@given(arrays=st.dictionaries(_KEYS, _ARRAYS, min_size=1, max_size=4), compress=st.booleans())
def test_any_small_array_dict_round_trips_with_the_same_content_digest(
    arrays: dict[str, NDArray[Any]], compress: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.npz"
        write_npz(path, arrays, compress=compress)
        loaded = load_npz(path)
        with np.load(path) as reference:
            for key, array in arrays.items():
                assert reference[key].shape == array.shape
                assert _little_endian_bytes(reference[key]) == _little_endian_bytes(array)
    assert sorted(loaded.arrays) == sorted(arrays)
    for key, array in arrays.items():
        assert loaded.arrays[key].shape == array.shape
        assert loaded.arrays[key].dtype == array.dtype.newbyteorder("<")
        assert _little_endian_bytes(loaded.arrays[key]) == _little_endian_bytes(array)
    assert loaded.content_sha256 == content_digests(arrays)[0]
    assert loaded.content_sha256 == recompute_content_sha256(arrays)[0]


@settings(max_examples=40, deadline=None)
@given(
    shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=9),
    axis=st.sampled_from([0, -1]),
    chunk_bytes=st.integers(1, 600),
    compress=st.booleans(),
    digest=st.booleans(),
    data=st.data(),
)
def test_take_matches_numpy_for_any_shape_indices_and_chunk_size(
    shape: tuple[int, ...], axis: int, chunk_bytes: int, compress: bool, digest: bool, data: Any
) -> None:
    values = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    indices = data.draw(st.lists(st.integers(0, shape[axis] - 1), max_size=8))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.npz"
        write_npz(path, {"d": values}, compress=compress)
        hasher = ContentHasher() if digest else None
        with NpzReader(path) as reader:
            taken = reader.take("d", axis, indices, hasher, chunk_bytes=chunk_bytes)
    assert np.array_equal(taken, values.take(indices, axis=axis))
    if hasher is not None:
        assert hasher.content_sha256 == content_digests({"d": values})[0]


# ------------------------------------------------------------------ bounded memory

BIG_POSITIONS = 6400  # 6400 x 64 x 64 float64: 210 MB


@pytest.fixture(scope="module")
def big_sources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Two ~200 MB stored sources, legacy (H,W,N) and canonical (N,H,W)."""
    folder = tmp_path_factory.mktemp("big")
    small = {
        "objectGuess": np.ones((128, 128), dtype=np.complex128),
        "probeGuess": np.ones((64, 64), dtype=np.complex128),
        "xcoords": np.linspace(34.0, 80.0, BIG_POSITIONS),
        "ycoords": np.linspace(34.0, 80.0, BIG_POSITIONS)[::-1].copy(),
    }
    paths = {}
    position = np.arange(BIG_POSITIONS, dtype=np.float64) * (64 * 64)
    pixel = np.arange(64 * 64, dtype=np.float64).reshape(64, 64)
    for layout in ("NHW", "HWN"):
        # Every value distinct (position * 4096 + pixel) * 1e-7, all below 3.
        if layout == "HWN":
            patterns = (position[None, None, :] + pixel[:, :, None]) * 1e-7
        else:
            patterns = (position[:, None, None] + pixel[None, :, :]) * 1e-7
        paths[layout] = folder / f"big-{layout}.npz"
        write_npz(paths[layout], {**small, "diffraction": patterns}, compress=False)
        del patterns
    yield paths
    for path in paths.values():
        path.unlink()


def _expected_patterns(indices: list[int]) -> NDArray[np.float64]:
    position = np.asarray(indices, dtype=np.float64)[:, None, None] * (64 * 64)
    return (position + np.arange(64 * 64, dtype=np.float64).reshape(64, 64)) * 1e-7


@pytest.mark.parametrize("layout", ["HWN", "NHW"])
@pytest.mark.parametrize("digest", [True, False], ids=["digested", "read-in-part"])
def test_taking_64_patterns_from_a_200_mb_source_peaks_under_64_mb(
    big_sources: dict[str, Path], layout: str, digest: bool
) -> None:
    path = big_sources[layout]
    assert path.stat().st_size > 200 * MB
    indices = [i * BIG_POSITIONS // 64 for i in range(64)]
    axis = -1 if layout == "HWN" else 0
    tracemalloc.start()
    try:
        hasher = ContentHasher() if digest else None
        with NpzReader(path) as reader:
            taken = reader.take("diffraction", axis, indices, hasher)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * MB, f"peak {peak / MB:.1f} MB"
    patterns = taken.transpose(2, 0, 1) if layout == "HWN" else taken
    assert np.array_equal(patterns, _expected_patterns(indices))


def test_generating_from_a_200_mb_legacy_source_peaks_under_64_mb(
    big_sources: dict[str, Path], tmp_path: Path
) -> None:
    tracemalloc.start()
    try:
        result = generate_fixture(big_sources["HWN"], tmp_path / "fixture.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * MB, f"peak {peak / MB:.1f} MB"
    indices = [i * BIG_POSITIONS // 64 for i in range(64)]
    fixture = load_npz(result.output_path).arrays
    assert np.array_equal(fixture["diffraction"], _expected_patterns(indices).astype(np.float32))


@pytest.fixture(params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Inflate with ISA-L (a dependency on x86-64 and ARM64) or with zlib."""
    if request.param == "zlib":
        monkeypatch.setitem(sys.modules, "isal", None)
    name: str = request.param
    return name


def test_deflated_members_are_inflated_by_isal_when_it_is_installed(inflater: str) -> None:
    from pytest_ptycho_fixture.npz.reader import _inflater

    decompressor, error = _inflater()
    expected = "isal" if inflater == "isal" else "zlib"
    assert expected in type(decompressor).__module__ + error.__module__


@pytest.fixture(scope="module")
def deflated_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NDArray[Any]]:
    """A 48 MB (64,64,1536) float64 member deflated to 8.5 MB: inflated in a thread."""
    levels = np.random.default_rng(0).integers(0, 40, size=(64, 64, 1536)) / 8.0
    path = tmp_path_factory.mktemp("deflated") / "deflated.npz"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("diffraction.npy", "w") as member,
    ):
        np.lib.format.write_array(member, levels, allow_pickle=False)
    return path, levels


def _inflating() -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name == "ptycho-fixture-inflate"]


@pytest.mark.parametrize("digest", [True, False])
def test_a_large_deflated_member_is_streamed_in_bounded_memory(
    deflated_source: tuple[Path, NDArray[Any]], digest: bool, inflater: str
) -> None:
    path, levels = deflated_source
    indices = [i * 1536 // 64 for i in range(64)]
    tracemalloc.start()
    try:
        hasher = ContentHasher() if digest else None
        with NpzReader(path) as reader:
            assert reader.member("diffraction").info.compress_size > 4 * MB
            taken = reader.take("diffraction", -1, indices, hasher, chunk_bytes=MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MB"
    assert np.array_equal(taken, levels[:, :, indices])
    if hasher is not None:
        assert hasher.arrays == content_digests({"diffraction": levels})[1]
    assert _inflating() == []


def test_an_error_while_streaming_stops_the_inflating_thread(
    deflated_source: tuple[Path, NDArray[Any]],
) -> None:
    class Seen(Exception):
        pass

    def refuse(block: NDArray[Any]) -> None:
        raise Seen

    with NpzReader(deflated_source[0]) as reader, pytest.raises(Seen):
        reader.take("diffraction", -1, [0], visit=refuse)
    assert _inflating() == []


def test_a_damaged_deflate_stream_is_reported_from_the_inflating_thread(
    deflated_source: tuple[Path, NDArray[Any]], tmp_path: Path, inflater: str
) -> None:
    data = bytearray(deflated_source[0].read_bytes())
    with zipfile.ZipFile(deflated_source[0]) as archive:
        info = archive.getinfo("diffraction.npy")
    middle = info.header_offset + info.compress_size // 2
    data[middle : middle + 64] = bytes(64)
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data))
    with NpzReader(path) as reader, pytest.raises(ContractError) as caught:
        reader.take("diffraction", -1, [0])
    assert caught.value.key == "diffraction"
    assert "the file is damaged" in str(caught.value)
    assert _inflating() == []


# ----------------------------------------------------------------- hostile files


def test_it_refuses_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ContractError) as caught:
        NpzReader(path)
    assert (caught.value.path, caught.value.key) == (str(path), None)
    assert "is not a readable NPZ (zip) archive" in str(caught.value)


def test_it_refuses_a_header_declaring_a_trillion_elements_without_allocating(
    tmp_path: Path,
) -> None:
    path = write_zip(tmp_path / "a.npz", {"d.npy": npy_header("<f8", (10**6, 10**6)) + bytes(8)})
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ContractError) as caught:
            load_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2.0
    assert peak < 4 * MB
    assert caught.value.key == "d"
    assert "'d' declares shape (1000000, 1000000) float64 (8000000000000 bytes)" in str(
        caught.value
    )
    assert "but the member holds 8 bytes" in str(caught.value)


def test_it_trusts_the_compressed_bytes_not_a_central_directory_that_claims_more(
    tmp_path: Path,
) -> None:
    path = write_zip(tmp_path / "a.npz", {"d.npy": npy_header("<f8", (500_000_000,)) + bytes(8)})
    inflate_declared_size(path, "d.npy", 4_000_000_128)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("d.npy").file_size == 4_000_000_128
    tracemalloc.start()
    try:
        with pytest.raises(ContractError, match="the member holds 8 bytes") as caught:
            load_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MB
    assert caught.value.key == "d"


def test_it_never_unpickles_an_object_array(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    path = write_zip(tmp_path / "a.npz", {"xcoords.npy": pickled_member(marker)})
    # The hostile member is real: numpy would run it if allowed to.
    with np.load(path) as reference, pytest.raises(ValueError, match="allow_pickle"):
        reference["xcoords"]
    for attempt in (lambda: load_npz(path), lambda: NpzReader(path)):
        with pytest.raises(ContractError) as caught:
            attempt()
        assert caught.value.key == "xcoords"
        assert "holds Python objects (dtype object)" in str(caught.value)
    assert not marker.exists()


def test_it_refuses_a_member_that_is_not_a_npy_array(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.npz", {"d.npy": npy_bytes(np.ones(3)), "notes.txt": b"hi"})
    with pytest.raises(ContractError, match="member 'notes.txt' is not a .npy array"):
        NpzReader(path)


@pytest.mark.parametrize(
    "member",
    [
        b"\x93NUMPY\x09\x00" + bytes(120),
        b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}\n",
        b"not a numpy file at all",
    ],
    ids=["unknown-version", "bad-descr", "no-magic"],
)
def test_it_refuses_a_damaged_npy_header(tmp_path: Path, member: bytes) -> None:
    path = write_zip(tmp_path / "a.npz", {"d.npy": member})
    with pytest.raises(ContractError, match="'d' has no valid .npy header") as caught:
        NpzReader(path)
    assert caught.value.key == "d"


def test_it_refuses_a_member_shorter_than_its_header_declares(tmp_path: Path) -> None:
    whole = npy_bytes(np.ones((10, 10)))
    path = write_zip(tmp_path / "a.npz", {"d.npy": whole[:-8]})
    with pytest.raises(ContractError) as caught:
        load_npz(path)
    assert "'d' declares shape (10, 10) float64 (800 bytes) but the member holds 792 bytes" in (
        str(caught.value)
    )


def test_it_refuses_a_member_whose_data_was_altered_after_writing(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    write_npz(path, {"d": np.zeros((50, 50))}, compress=False)
    data = bytearray(path.read_bytes())
    data[2000] ^= 0xFF  # inside the stored data of the only member
    path.write_bytes(bytes(data))
    with pytest.raises(ContractError, match="'d' cannot be read .*the file is damaged"):
        load_npz(path)


def test_it_refuses_a_member_over_the_size_limit_before_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    write_npz(path, {"d": np.zeros(1000)})
    with pytest.raises(ContractError, match="'d' declares 8000 bytes, over the limit of 4096"):
        load_npz(path, max_bytes=4096)
    assert load_npz(path, max_bytes=8000).arrays["d"].shape == (1000,)


def test_the_size_limit_bounds_whole_reads_not_the_positions_taken(tmp_path: Path) -> None:
    values = np.arange(100 * 8, dtype=np.float64).reshape(100, 8)
    write_npz(tmp_path / "a.npz", {"d": values})
    with NpzReader(tmp_path / "a.npz", max_bytes=1024) as reader:
        taken = reader.take("d", 0, [3, 97])
        with pytest.raises(ContractError, match="over the limit of 1024 for an array read whole"):
            reader.read("d")
    assert np.array_equal(taken, values[[3, 97]])


def test_it_refuses_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="does not exist"):
        NpzReader(tmp_path / "absent.npz")
    with pytest.raises(ContractError, match="is a directory"):
        NpzReader(tmp_path)


def test_a_hand_written_header_matches_what_numpy_writes() -> None:
    # Guards the helper the hostile tests rely on.
    assert npy_bytes(np.zeros((2, 3)))[: len(npy_header("<f8", (2, 3)))] == npy_header(
        "<f8", (2, 3)
    )
