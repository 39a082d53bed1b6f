"""Writing an NPZ: sorted ``.npy`` 1.0 members in a fixed zip, the same bytes everywhere."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import some_arrays

from pytest_ptycho_fixture.contract import ContractError
from pytest_ptycho_fixture.npz import writer as npzwrite
from pytest_ptycho_fixture.npz.digests import file_sha256
from pytest_ptycho_fixture.npz.writer import Entry, write_npz, write_zip


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "arrays.npz"
    write_npz(path, some_arrays())
    return path


# ------------------------------------------------------------------------ the .npy members


def test_it_writes_the_members_sorted_by_key(written: Path) -> None:
    with zipfile.ZipFile(written) as archive:
        names = archive.namelist()
    assert names == sorted(f"{key}.npy" for key in some_arrays())


def test_every_member_has_the_fixed_timestamp_system_and_permissions(written: Path) -> None:
    with zipfile.ZipFile(written) as archive:
        infos = archive.infolist()
    assert infos
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.create_system == 3
        assert (info.external_attr >> 16) & 0o777 == 0o644
        assert (info.external_attr >> 16) & 0o170000 == 0o100000


def test_every_member_has_a_version_1_0_header_padded_to_64_bytes(written: Path) -> None:
    with zipfile.ZipFile(written) as archive:
        for name in archive.namelist():
            data = archive.read(name)
            assert data[:8] == b"\x93NUMPY\x01\x00", name
            header_length = int.from_bytes(data[8:10], "little")
            assert (10 + header_length) % 64 == 0
            assert data[10 + header_length - 1 : 10 + header_length] == b"\n"


def test_it_compresses_by_default_and_stores_when_asked(tmp_path: Path) -> None:
    write_npz(tmp_path / "deflated.npz", some_arrays())
    write_npz(tmp_path / "stored.npz", some_arrays(), compress=False)
    with zipfile.ZipFile(tmp_path / "deflated.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    with zipfile.ZipFile(tmp_path / "stored.npz") as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


@pytest.mark.parametrize("compress", [True, False])
def test_numpy_reads_back_exactly_what_was_written(tmp_path: Path, compress: bool) -> None:
    write_npz(tmp_path / "a.npz", some_arrays(), compress=compress)
    with np.load(tmp_path / "a.npz") as loaded:
        assert sorted(loaded.files) == sorted(some_arrays())
        for key, array in some_arrays().items():
            assert loaded[key].dtype == array.dtype
            assert np.array_equal(loaded[key], array)


def test_the_same_arrays_in_reversed_key_order_give_the_same_bytes(tmp_path: Path) -> None:
    arrays = some_arrays()
    write_npz(tmp_path / "forward.npz", arrays)
    write_npz(tmp_path / "reversed.npz", dict(reversed(list(arrays.items()))))
    assert (tmp_path / "forward.npz").read_bytes() == (tmp_path / "reversed.npz").read_bytes()


def test_it_writes_big_endian_and_fortran_arrays_as_little_endian_c_order(
    tmp_path: Path,
) -> None:
    values = np.arange(12.0).reshape(3, 4)
    write_npz(
        tmp_path / "a.npz", {"big": values.astype(">f8"), "fortran": np.asfortranarray(values)}
    )
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        for name in archive.namelist():
            header = archive.read(name)[:128].decode("latin1")
            assert "'descr': '<f8'" in header and "'fortran_order': False" in header
    with np.load(tmp_path / "a.npz") as loaded:
        assert np.array_equal(loaded["big"], values) and np.array_equal(loaded["fortran"], values)


def test_it_returns_the_sha256_of_the_bytes_it_wrote(tmp_path: Path) -> None:
    returned = write_npz(tmp_path / "a.npz", some_arrays())
    assert returned == hashlib.sha256((tmp_path / "a.npz").read_bytes()).hexdigest()
    assert file_sha256(tmp_path / "a.npz") == returned


def test_it_refuses_to_write_python_objects_and_leaves_nothing_behind(tmp_path: Path) -> None:
    hostile = np.array([{"a": 1}, None], dtype=object)
    with pytest.raises(ContractError, match="'notes' holds Python objects"):
        write_npz(tmp_path / "a.npz", {"notes": hostile, "x": np.zeros(2)})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------- the zip container


def _entries() -> list[Entry]:
    rng = np.random.default_rng(7)
    big = rng.integers(0, 40, size=400_000, dtype=np.uint8).tobytes()  # deflated in a thread
    return [
        Entry("b.bin", b"head", memoryview(big)),
        Entry("a.txt", b"", memoryview(b"alpha " * 100)),
        Entry("copy.bin", b"head", memoryview(bytes(big))),  # equal to b.bin
        Entry("empty", b"", memoryview(b"")),
    ]


def _contents(entries: list[Entry]) -> dict[str, bytes]:
    return {e.name: e.header + bytes(e.data) for e in entries}


def _archive(entries: list[Entry], *, compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    digest = write_zip(buffer, entries, compress=compress)
    data = buffer.getvalue()
    assert digest == hashlib.sha256(data).hexdigest()
    return data


@pytest.mark.parametrize("compress", [True, False], ids=["deflated", "stored"])
def test_zipfile_reads_back_every_member_with_a_valid_crc(compress: bool) -> None:
    entries = _entries()
    with zipfile.ZipFile(io.BytesIO(_archive(entries, compress=compress))) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [e.name for e in entries]
        assert {name: archive.read(name) for name in archive.namelist()} == _contents(entries)
        method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        for info in archive.infolist():
            assert info.compress_type == method
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert (info.create_system, info.external_attr) == (3, 0o100644 << 16)
            assert info.flag_bits == 0
            assert not info.extra


def test_equal_members_share_one_deflated_stream() -> None:
    data = _archive(_entries())
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        first, copy = archive.getinfo("b.bin"), archive.getinfo("copy.bin")
    assert first.compress_size == copy.compress_size
    assert first.compress_size < first.file_size


@pytest.mark.parametrize("workers", [1, 3])
def test_the_bytes_do_not_depend_on_the_number_of_threads(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    expected = _archive(_entries())
    monkeypatch.setattr(npzwrite, "WORKERS", workers)
    assert _archive(_entries()) == expected


def test_a_failing_block_is_raised_after_the_threads_stop_and_no_new_block_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deflated: list[int] = []
    real = npzwrite._deflate_block

    def deflate_block(entry: Entry, block: int) -> bytes:
        deflated.append(block)
        if block == 5:
            raise ValueError("block 5")
        return real(entry, block)

    monkeypatch.setattr(npzwrite, "_deflate_block", deflate_block)
    monkeypatch.setattr(npzwrite, "BLOCK_BYTES", 16)
    monkeypatch.setattr(npzwrite, "WORKERS", 4)
    before = threading.active_count()
    with pytest.raises(ValueError, match="block 5"):
        write_zip(io.BytesIO(), [Entry("d", b"", memoryview(bytes(16 * 1000)))])
    assert len(deflated) < 1000
    assert threading.active_count() == before


def test_a_member_deflated_in_blocks_is_one_stream_that_zlib_inflates() -> None:
    noise = np.random.default_rng(1).integers(0, 256, size=3 * npzwrite.BLOCK_BYTES + 5)
    payload = noise.astype(np.uint8).tobytes()
    archive = _archive([Entry("d", b"header", memoryview(payload))])
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        info = opened.getinfo("d")
    raw = archive[30 + len("d") : 30 + len("d") + info.compress_size]
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    assert inflater.decompress(raw) == b"header" + payload
    assert inflater.eof
    assert raw.count(b"\x00\x00\xff\xff") >= 3  # the sync flush ending each block but the last


def test_an_array_of_one_repeated_value_is_deflated_with_lz77_in_blocks(tmp_path: Path) -> None:
    """A made unit object: Huffman coding alone would keep 1/6 of it, LZ77 about 1/190."""
    ones = np.ones((660, 660), dtype=np.complex64)
    almost = ones.copy()
    almost[-1, -1] = 2  # one element differs: Huffman only, as for any other data
    write_npz(tmp_path / "f.npz", {"objectGuess": ones, "other": almost})
    with zipfile.ZipFile(tmp_path / "f.npz") as archive:
        packed = {info.filename: info.compress_size for info in archive.infolist()}
        assert np.array_equal(np.load(io.BytesIO(archive.read("objectGuess.npy"))), ones)
    assert packed["objectGuess.npy"] < ones.nbytes // 100
    assert packed["other.npy"] > ones.nbytes // 10
    again = tmp_path / "g.npz"
    write_npz(again, {"other": almost, "objectGuess": ones})
    assert file_sha256(again) == file_sha256(tmp_path / "f.npz")


def test_float_amplitudes_are_deflated_as_small_as_zlib_level_6_makes_them(
    tmp_path: Path,
) -> None:
    from pytest_ptycho_fixture.generate import generate_fixture

    fixture = generate_fixture(None, tmp_path / "f.npz").output_path
    with zipfile.ZipFile(fixture) as archive:
        info = archive.getinfo("diffraction.npy")
        level_6 = len(zlib.compress(archive.read(info), 6))
    assert info.compress_size <= level_6


def test_sizes_and_offsets_past_the_limit_are_written_as_zip64(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(npzwrite, "ZIP64_LIMIT", 100)
    entries = _entries()
    data = _archive(entries)
    assert b"PK\x06\x06" in data  # the Zip64 end of central directory record
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert {name: archive.read(name) for name in archive.namelist()} == _contents(entries)
        assert any(info.extra for info in archive.infolist())
    arrays = {"d": np.arange(300, dtype=np.float64).reshape(3, 100), "s": np.arange(3)}
    write_npz(tmp_path / "a.npz", arrays)
    with np.load(tmp_path / "a.npz") as loaded:
        assert all(np.array_equal(loaded[key], arrays[key]) for key in arrays)


def test_a_name_beyond_ascii_is_written_as_utf8_and_read_back() -> None:
    entries = [Entry("objet_é.npy", b"", memoryview(b"x"))]
    with zipfile.ZipFile(io.BytesIO(_archive(entries))) as archive:
        info = archive.infolist()[0]
        assert (info.filename, info.flag_bits & 0x800) == ("objet_é.npy", 0x800)
        assert archive.read(info) == b"x"


def test_zlib_ng_deflates_the_default_fixture_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Distributions that build Python against zlib-ng (Fedora, say) must write the same
    # file: Huffman-only deflate leaves no choice of matches to the implementation.
    from zlib_ng import zlib_ng

    from pytest_ptycho_fixture.generate import generate_fixture

    generate_fixture(None, tmp_path / "zlib.npz", 64)
    monkeypatch.setattr(npzwrite, "zlib", zlib_ng)
    generate_fixture(None, tmp_path / "zlib-ng.npz", 64)
    assert (tmp_path / "zlib.npz").read_bytes() == (tmp_path / "zlib-ng.npz").read_bytes()
