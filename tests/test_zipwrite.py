"""The zip container: read back by zipfile and numpy, Zip64 where needed, reproducible."""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from pytest_ptycho_fixture import parallel, zipwrite
from pytest_ptycho_fixture.npzio import write_npz
from pytest_ptycho_fixture.zipwrite import Entry, write_zip


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
    monkeypatch.setattr(parallel, "WORKERS", workers)
    assert _archive(_entries()) == expected


def test_a_member_deflated_in_blocks_is_one_stream_that_zlib_inflates() -> None:
    noise = np.random.default_rng(1).integers(0, 256, size=3 * zipwrite.BLOCK_BYTES + 5)
    payload = noise.astype(np.uint8).tobytes()
    archive = _archive([Entry("d", b"header", memoryview(payload))])
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        info = opened.getinfo("d")
    raw = archive[30 + len("d") : 30 + len("d") + info.compress_size]
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    assert inflater.decompress(raw) == b"header" + payload
    assert inflater.eof
    assert raw.count(b"\x00\x00\xff\xff") >= 3  # the sync flush ending each block but the last


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
    monkeypatch.setattr(zipwrite, "ZIP64_LIMIT", 100)
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
