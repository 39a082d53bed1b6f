"""Write an NPZ whose bytes depend only on its arrays: ``.npy`` members in a fixed zip.

Members are sorted by key, with ``.npy`` 1.0 headers, C order, little-endian. Every zip
member gets the same fixed fields: 1980-01-01 00:00 timestamps, Unix permissions 0644, no
data descriptor, no comment, so the same members give the same bytes on every machine
with the same zlib. Zip64 records are written only where a size or offset needs them, as
zipfile does.

Members are deflated with Huffman coding only (zlib's ``Z_HUFFMAN_ONLY``): floating-point
data holds almost no repeated strings for LZ77 to find, so this is as small as level 6
on a fixture (0.920 against 0.922 of the diffraction's size) at a third of level 1's
time. Deflation is split into blocks of ``BLOCK_BYTES``: each is deflated on its own and
ended with a sync flush, so the blocks join into one valid deflate stream (with Huffman
coding only, no block refers back to another). A member whose elements are all the same
bytes (the unit object made for a source without one, say) is the exception: Huffman
coding alone shrinks it only 6:1 at about 70 MB/s, so it is deflated with LZ77 at level 1
(about 190:1, four times as fast), each block still on its own. The blocks are fixed by the data, not by
the number of threads, so the bytes do not depend on the machine; the threads deflate
blocks at once (zlib releases the GIL). A member whose bytes equal an earlier one's
(``diff3d``, the alias of ``diffraction``) reuses its compressed bytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..atomic import atomic_writer
from ..contract import check_not_object
from .digests import little_endian

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: Threads that deflate blocks at once: one per core, up to eight.
WORKERS = min(os.cpu_count() or 1, 8)
STORED = 0
DEFLATED = 8
#: zipfile's limit too: sizes and offsets above it are written as Zip64.
ZIP64_LIMIT = (1 << 31) - 1
#: Bytes of a member deflated as one block.
BLOCK_BYTES = 256 << 10
#: Any level from 1 to 9 gives the same bytes with Huffman-only coding; level 1 for LZ77.
_LEVEL = 1

#: A member's local header (the reader in :mod:`.npzread` parses it with these too).
LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
LOCAL_MAGIC = b"PK\x03\x04"
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")
_DOS_TIME = 0
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
_UNIX_FILE = 0o100644 << 16
_MADE_ON_UNIX = 3
_NPY_MAGIC = b"\x93NUMPY"
_NPY_ALIGN = 64


# ---------------------------------------------------------------------------
# the .npy members


def npy_header(dtype: np.dtype[Any], shape: Sequence[int]) -> bytes:
    """A ``.npy`` version 1.0 header, the same on every numpy version."""
    dims = tuple(int(n) for n in shape)
    text = f"{{'descr': {dtype.str!r}, 'fortran_order': False, 'shape': {dims!r}, }}"
    pad = _NPY_ALIGN - (len(_NPY_MAGIC) + 4 + len(text) + 1) % _NPY_ALIGN
    text += " " * (pad % _NPY_ALIGN) + "\n"
    return _NPY_MAGIC + b"\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def write_npz(path: Path, arrays: Mapping[str, NDArray[Any]], *, compress: bool = True) -> str:
    """Atomically write a byte-reproducible NPZ; return the SHA-256 of its bytes."""
    with atomic_writer(Path(path)) as handle:
        return write_npz_to(handle, arrays, compress=compress, path=path)


def write_npz_to(
    handle: BinaryIO,
    arrays: Mapping[str, NDArray[Any]],
    *,
    compress: bool = True,
    path: object = "<npz>",
) -> str:
    """Write a byte-reproducible NPZ to an empty ``handle``; return its SHA-256.

    Members are deflated with Huffman coding only, or stored; see :func:`write_zip`.
    """
    import numpy as np

    entries = []
    for key in sorted(arrays):
        array = np.asarray(arrays[key])
        check_not_object(path, key, array.dtype)
        # Not ascontiguousarray: that turns a 0-d array into shape (1,).
        array = np.asarray(array, dtype=little_endian(array.dtype), order="C")
        data = memoryview(array.reshape(-1).view(np.uint8).data)
        header = npy_header(array.dtype, array.shape)
        entries.append(Entry(f"{key}.npy", header, data, _repeated(array)))
    return write_zip(handle, entries, compress=compress)


# ---------------------------------------------------------------------------
# the zip container


@dataclass(frozen=True)
class Entry:
    """One member: its name and its bytes, given as a header and a data buffer."""

    name: str
    header: bytes
    data: memoryview
    #: Every element holds the same bytes: deflated with LZ77 rather than Huffman only.
    repeated: bool = False


def _repeated(array: NDArray[Any]) -> bool:
    """Whether an array of two or more elements repeats its first element's bytes."""
    import numpy as np

    if array.size < 2 or array.itemsize == 0:
        return False
    rows = array.reshape(-1).view(np.uint8).reshape(array.size, array.itemsize)
    # A few rows first: most arrays differ at once, and are not compared whole.
    return bool((rows[:64] == rows[0]).all() and (rows == rows[0]).all())


@dataclass
class _Packed:
    crc: int
    size: int
    method: int
    parts: list[bytes | memoryview]

    @property
    def packed_size(self) -> int:
        return sum(len(part) for part in self.parts)


def write_zip(handle: BinaryIO, entries: Sequence[Entry], *, compress: bool = True) -> str:
    """Write ``entries``, in order, as a zip archive to ``handle``; return its SHA-256."""
    packed = _pack(entries, compress)
    digest = hashlib.sha256()
    offset = 0

    def emit(*parts: bytes | memoryview) -> None:
        nonlocal offset
        for part in parts:
            handle.write(part)
            digest.update(part)
            offset += len(part)

    directory: list[bytes] = []
    for entry, member in zip(entries, packed):
        name, flags = _encode(entry.name)
        start = offset
        big = member.size > ZIP64_LIMIT or member.packed_size > ZIP64_LIMIT
        far = start > ZIP64_LIMIT
        version = 45 if big or far else 20
        local_extra = struct.pack("<2H2Q", 1, 16, member.size, member.packed_size) if big else b""
        sizes = (0xFFFFFFFF, 0xFFFFFFFF) if big else (member.packed_size, member.size)
        emit(
            LOCAL_HEADER.pack(
                LOCAL_MAGIC, version, 0, flags, member.method, _DOS_TIME, _DOS_DATE,
                member.crc, *sizes, len(name), len(local_extra),
            ),
            name,
            local_extra,
            *member.parts,
        )  # fmt: skip
        wide = ([member.size, member.packed_size] if big else []) + ([start] if far else [])
        extra = struct.pack(f"<2H{len(wide)}Q", 1, 8 * len(wide), *wide) if wide else b""
        directory.append(
            _CENTRAL.pack(
                b"PK\x01\x02", version, _MADE_ON_UNIX, version, 0, flags, member.method,
                _DOS_TIME, _DOS_DATE, member.crc, *sizes, len(name), len(extra), 0, 0, 0,
                _UNIX_FILE, 0xFFFFFFFF if far else start,
            )
            + name
            + extra
        )  # fmt: skip
    start = offset
    emit(*directory)
    size = offset - start
    count = len(entries)
    if count >= 0xFFFF or start > ZIP64_LIMIT or size > ZIP64_LIMIT:
        end64 = offset
        emit(
            _END64.pack(b"PK\x06\x06", _END64.size - 12, 45, 45, 0, 0, count, count, size, start),
            _LOCATOR64.pack(b"PK\x06\x07", 0, end64, 1),
        )
        count, size, start = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF)
    emit(_END.pack(b"PK\x05\x06", 0, 0, count, count, size, start, 0))
    handle.flush()
    return digest.hexdigest()


def _encode(name: str) -> tuple[bytes, int]:
    """The name's bytes and flags: ASCII as it is, anything else as UTF-8 (bit 11)."""
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), 0x800


def _pack(entries: Sequence[Entry], compress: bool) -> list[_Packed]:
    """Each entry's CRC-32, size and stored or deflated bytes; equal entries share them."""
    packed: list[_Packed] = []
    first: dict[tuple[bytes, int, int], int] = {}
    blocks: list[tuple[_Packed, int, Entry]] = []
    for index, entry in enumerate(entries):
        crc = zlib.crc32(entry.data, zlib.crc32(entry.header))
        size = len(entry.header) + len(entry.data)
        if not compress:
            packed.append(_Packed(crc, size, STORED, [entry.header, entry.data]))
            continue
        seen = first.setdefault((entry.header, crc, size), index)
        if seen != index and entries[seen].data == entry.data:
            packed.append(packed[seen])
            continue
        count = max(1, -(-len(entry.data) // BLOCK_BYTES))
        member = _Packed(crc, size, DEFLATED, [b""] * count)
        packed.append(member)
        blocks.extend((member, block, entry) for block in range(count))
    _deflate_all(blocks)
    return packed


def _deflate_all(blocks: list[tuple[_Packed, int, Entry]]) -> None:
    """Deflate every block into its member's parts, in up to :data:`WORKERS` threads."""

    failed = threading.Event()

    def deflate(job: tuple[_Packed, int, Entry]) -> None:
        if failed.is_set():
            return  # once a block has failed, no other starts
        member, block, entry = job
        try:
            member.parts[block] = _deflate_block(entry, block)
        except BaseException:
            failed.set()
            raise

    # An error is raised here once the with has waited for the threads.
    with ThreadPoolExecutor(max(1, min(WORKERS, len(blocks)))) as pool:
        for _ in pool.map(deflate, blocks):
            pass


def _deflate_block(entry: Entry, block: int) -> bytes:
    """Block ``block`` of the entry's deflate stream (the first one holds the header)."""
    data = entry.data
    start = block * BLOCK_BYTES
    stop = min(start + BLOCK_BYTES, len(data))
    strategy = zlib.Z_DEFAULT_STRATEGY if entry.repeated else zlib.Z_HUFFMAN_ONLY
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, strategy)
    head = packer.compress(entry.header) if block == 0 else b""
    body = packer.compress(data[start:stop])
    tail = packer.flush(zlib.Z_FINISH if stop >= len(data) else zlib.Z_SYNC_FLUSH)
    return head + body + tail
