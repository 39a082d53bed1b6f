"""Read an NPZ safely and in bounded memory: headers first, data on request.

Members are parsed from their ``.npy`` headers without loading data; arrays of Python
objects are refused (nothing is ever unpickled) and a header that declares more bytes
than its member holds is refused before any allocation, as is a member read whole that
declares more than ``max_bytes``. :meth:`NpzReader.take` streams one member in bounded
chunks and keeps only the selected positions.
"""

from __future__ import annotations

import hashlib
import math
import queue
import struct
import threading
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from ..contract import ContractError, check_not_object
from .digests import ContentHasher, fingerprint, little_endian
from .writer import LOCAL_HEADER, LOCAL_MAGIC

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: Bytes read from a member; valid until the next chunk is asked for.
Chunk = bytes | memoryview
#: Refuse members whose header declares more than this many bytes (64 GiB).
DEFAULT_MAX_BYTES = 64 << 30
CHUNK_BYTES = 8 << 20
#: Compressed bytes read from the file at a time when inflating.
_READ_BYTES = 4 << 20
#: Members with more compressed bytes than this are inflated in a thread of their own,
#: while the caller checks, digests and gathers the previous chunk.
_THREAD_BYTES = 4 << 20
#: Deflate cannot expand data by more than this factor.
_MAX_DEFLATE_RATIO = 1032
#: What zipfile, zlib and numpy's header parser raise on damaged bytes, besides OSError:
#: a flipped bit can make a member look encrypted (RuntimeError) or compressed with an
#: unknown method (NotImplementedError), break the deflate stream (zlib.error) or the
#: header's Python literal (SyntaxError, tokenize.TokenError), or move an offset past
#: what seek accepts (OverflowError).
_DAMAGED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    ValueError,
    SyntaxError,
    tokenize.TokenError,
    zlib.error,
    RuntimeError,
    OverflowError,
    struct.error,
)


@dataclass(frozen=True)
class Member:
    """One ``.npy`` member of an NPZ, as declared by its header."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran_order: bool
    header_size: int
    info: zipfile.ZipInfo

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


class NpzReader:
    """Read an NPZ safely: headers first, data on request, never unpickling."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        try:
            self._archive_size = self.path.stat().st_size
            self._zip = zipfile.ZipFile(self.path)
        except IsADirectoryError:
            raise ContractError(self.path, None, "is a directory but an NPZ file is required")
        except FileNotFoundError:
            raise ContractError(self.path, None, "does not exist") from None
        except PermissionError:
            raise ContractError(self.path, None, "cannot be read (permission denied)") from None
        except _DAMAGED as exc:
            raise ContractError(
                self.path, None, f"is not a readable NPZ (zip) archive: {exc}"
            ) from None
        try:
            self.members = self._read_members()
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> NpzReader:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    def _read_members(self) -> dict[str, Member]:
        members: dict[str, Member] = {}
        for info in self._zip.infolist():
            # Not info.is_dir(): a damaged entry may have an empty name.
            if info.filename.endswith("/"):
                continue
            if not info.filename.endswith(".npy"):
                raise ContractError(
                    self.path,
                    info.filename,
                    f"member {info.filename!r} is not a .npy array; an NPZ holds only .npy members",
                )
            key = info.filename[: -len(".npy")]
            members[key] = self._read_header(key, info)
        return members

    def _fail(self, key: str, message: str) -> ContractError:
        return ContractError(self.path, key, message)

    def _read_header(self, key: str, info: zipfile.ZipInfo) -> Member:
        from numpy.lib import format as npformat

        try:
            with self._zip.open(info) as stream:
                version = npformat.read_magic(stream)
                if version == (1, 0):
                    shape, fortran, dtype = npformat.read_array_header_1_0(stream)
                elif version == (2, 0):
                    shape, fortran, dtype = npformat.read_array_header_2_0(stream)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                header_size = stream.tell()
        except (*_DAMAGED, OSError) as exc:
            raise self._fail(
                key, f"{key!r} has no valid .npy header ({exc}); the file is damaged"
            ) from None
        check_not_object(self.path, key, dtype)
        shape = tuple(int(n) for n in shape)
        member = Member(key, shape, dtype, bool(fortran), header_size, info)
        held = self._plausible_size(info) - header_size
        if any(n < 0 for n in shape) or member.nbytes > held:
            raise self._fail(
                key,
                f"{key!r} declares shape {shape} {dtype} ({member.nbytes} bytes) but the"
                f" member holds {held} bytes; the file is truncated or hostile, nothing was"
                " allocated",
            )
        return member

    def _plausible_size(self, info: zipfile.ZipInfo) -> int:
        """The member's declared size, capped by what its compressed bytes can hold.

        The size in the central directory is the file's own claim; a hostile file can
        inflate it to make a reader allocate what the data will never fill.
        """
        packed = min(info.compress_size, self._archive_size)
        if info.compress_type == zipfile.ZIP_STORED:
            return min(info.file_size, packed)
        if info.compress_type == zipfile.ZIP_DEFLATED:
            return min(info.file_size, packed * _MAX_DEFLATE_RATIO)
        return info.file_size

    def __contains__(self, key: object) -> bool:
        return key in self.members

    def member(self, key: str) -> Member:
        try:
            return self.members[key]
        except KeyError:
            raise self._fail(
                key, f"{key!r} is missing; found {sorted(self.members) or 'no arrays'}"
            ) from None

    def fingerprint(self) -> str:
        """:func:`fingerprint` of every member, from the central directory."""
        entries = [
            (info.filename, info.CRC, info.file_size)
            for info in self._zip.infolist()
            if not info.filename.endswith("/")
        ]
        return fingerprint(entries)

    # Own code: a fixture's diff3d repeats its diffraction, and inflating it again is a
    # quarter of the warm path's read and of a fetch's verifying read.
    def same_data(self, key: str, other: str) -> bool:
        """Whether two deflated members hold the same compressed bytes, so that inflating
        them gives the same member (header and data)."""
        first, second = self.members[key].info, self.members[other].info
        if not (
            first.compress_type == second.compress_type == zipfile.ZIP_DEFLATED
            and (first.CRC, first.compress_size, first.file_size)
            == (second.CRC, second.compress_size, second.file_size)
        ):
            return False
        try:
            with open(self.path, "rb") as one, open(self.path, "rb") as two:
                one.seek(_payload_start(one, first))
                two.seek(_payload_start(two, second))
                left = first.compress_size
                while left > 0:
                    block = one.read(min(_READ_BYTES, left))
                    if not block or block != two.read(len(block)):
                        return False
                    left -= len(block)
        except (*_DAMAGED, OSError):
            return False  # read on its own, where the damage is reported
        return True

    def _pieces(self, member: Member, sizes: Iterator[int]) -> Iterator[Chunk]:
        """The member's uncompressed bytes, cut to ``sizes`` (shorter only at its end)."""
        info = member.info
        # Not ZipFile.open for these two: it would cost the rows named at _stored, _inflate.
        if info.compress_type == zipfile.ZIP_STORED:
            return _stored(self.path, info, sizes)
        if info.compress_type == zipfile.ZIP_DEFLATED:
            pieces = _inflate(self.path, info, sizes)
            return _in_thread(pieces) if info.compress_size > _THREAD_BYTES else pieces
        return _unzipped(self._zip, info, sizes)

    def _chunks(self, member: Member, chunk_bytes: int) -> Iterator[Chunk]:
        """Yield the member's data bytes in chunks of ``chunk_bytes`` (the last may be less).

        A chunk is valid until the next one is asked for: its buffer may be reused.

        Stored and deflated members are read straight from the file, and a large deflated
        member is inflated in a thread of its own while the caller works on the previous
        chunk. The member's CRC-32 is checked once all of it has been read.
        """
        info = member.info
        remaining = member.nbytes
        crc = 0
        try:
            pieces = self._pieces(member, _sizes(member.header_size, remaining, chunk_bytes))
            try:
                header = next(pieces, b"")
                crc = zlib.crc32(header)
                if len(header) == member.header_size:
                    for block in pieces:
                        crc = zlib.crc32(block, crc)
                        remaining -= len(block)
                        yield block
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
        except (*_DAMAGED, OSError) as exc:
            raise self._fail(
                member.key, f"{member.key!r} cannot be read ({exc}); the file is damaged"
            ) from None
        if remaining:
            raise self._fail(
                member.key,
                f"{member.key!r} ends {remaining} bytes early; the file is truncated",
            )
        # ZipFile.open's CRC check, for the own readers: --verify-source checks every byte.
        if info.file_size == member.header_size + member.nbytes and crc != info.CRC:
            raise self._fail(
                member.key,
                f"{member.key!r} cannot be read (its CRC-32 is {crc:08x} but the archive"
                f" records {info.CRC:08x}); the file is damaged",
            )

    def read(self, key: str, hasher: ContentHasher | None = None) -> NDArray[Any]:
        """Read a whole member into a new array (feeding ``hasher`` as it goes).

        A member that declares more than ``max_bytes`` is refused before anything is
        allocated (:meth:`take` keeps only the selected positions, so it has no limit).
        """
        import numpy as np

        member = self.member(key)
        if member.nbytes > self.max_bytes:
            raise self._fail(
                key,
                f"{key!r} declares {member.nbytes} bytes, over the limit of {self.max_bytes}"
                " for an array read whole",
            )
        buffer = bytearray(member.nbytes)
        view = memoryview(buffer)
        digest = hasher.begin(key, member.dtype, member.shape) if hasher else None
        position = 0
        for block in self._chunks(member, CHUNK_BYTES):
            view[position : position + len(block)] = block
            position += len(block)
        array = np.frombuffer(buffer, dtype=member.dtype)
        array = array.reshape(member.shape, order="F" if member.fortran_order else "C")
        if hasher is not None and digest is not None:
            if member.fortran_order or member.dtype != little_endian(member.dtype):
                hasher.add_array(key, array)
            else:
                digest.update(view)
                hasher.finish(key, digest)
        return array

    def take(
        self,
        key: str,
        axis: int,
        indices: Sequence[int],
        hasher: ContentHasher | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        visit: Callable[[NDArray[Any]], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> NDArray[Any]:
        """Return ``array.take(indices, axis)`` for ``axis`` 0 or last.

        Along axis 0 of a stored member, only the selected rows are read (a stored member
        is a plain byte range). Otherwise the member is streamed once in chunks, and
        memory stays at the output plus one chunk. Fortran-ordered or big-endian members
        are read whole (they are rare: ``np.save`` writes C order). ``hasher`` digests,
        and ``visit`` sees, every part of the member, so both make it stream: all of it
        is then read and can be checked, not only the positions kept. ``progress(done,
        total)`` reports the member's bytes read so far.
        """
        import numpy as np

        member = self.member(key)
        ndim = len(member.shape)
        if axis < 0:
            axis += ndim
        if axis not in (0, ndim - 1) or ndim < 1:
            raise ValueError(f"take streams axis 0 or the last axis, not {axis}")
        index = np.asarray(indices, dtype=np.intp)
        if index.size and (index.min() < 0 or index.max() >= member.shape[axis]):
            raise IndexError(f"indices out of range for axis {axis} of {member.shape}")
        if member.fortran_order or member.dtype != little_endian(member.dtype) or ndim == 1:
            whole = self.read(key, hasher)
            if visit is not None:
                visit(whole)
            if progress is not None:
                progress(member.nbytes, member.nbytes)
            return whole.take(index, axis=axis)
        seekable = member.info.compress_type == zipfile.ZIP_STORED
        if axis == 0 and seekable and hasher is None and visit is None:
            out = self._seek_rows(member, index)
            if progress is not None:
                progress(out.nbytes, out.nbytes)
            return out
        digest = hasher.begin(key, member.dtype, member.shape) if hasher else None
        row = member.shape[1:] if axis == 0 else member.shape[-1:]
        row_bytes = math.prod(row) * member.dtype.itemsize
        blocks = self._blocks(member, row_bytes, digest, chunk_bytes, progress)
        if axis == 0:
            out = _take_rows(member, index, blocks, visit)
        else:
            out = _take_columns(member, index, blocks, visit)
        if hasher is not None and digest is not None:
            hasher.finish(key, digest)
        return out

    # Own code, not ZipExtFile.seek (reads up to the offset on 3.11): the stored canonical row.
    def _seek_rows(self, member: Member, index: NDArray[Any]) -> NDArray[Any]:
        """Rows ``index`` of a stored member, each read where it lies in the file."""
        import numpy as np

        row_shape = member.shape[1:]
        row_bytes = math.prod(row_shape) * member.dtype.itemsize
        out = np.empty((index.size, *row_shape), dtype=member.dtype)
        target = memoryview(out.reshape(-1).view(np.uint8).data)
        try:
            with open(self.path, "rb") as handle:
                start = _payload_start(handle, member.info) + member.header_size
                for position, row in enumerate(index.tolist()):
                    handle.seek(start + row * row_bytes)
                    into = target[position * row_bytes : (position + 1) * row_bytes]
                    if handle.readinto(into) != row_bytes:
                        raise self._fail(
                            member.key,
                            f"{member.key!r} ends before row {row}; the file is truncated",
                        )
        except (*_DAMAGED, OSError) as exc:
            raise self._fail(
                member.key, f"{member.key!r} cannot be read ({exc}); the file is damaged"
            ) from None
        return out

    def _blocks(
        self,
        member: Member,
        row_bytes: int,
        digest: hashlib._Hash | None,
        chunk_bytes: int,
        progress: Callable[[int, int], None] | None,
    ) -> Iterator[tuple[int, Chunk]]:
        """Yield ``(first_row, data)`` with whole rows of ``row_bytes`` each."""
        rows_per_chunk = max(1, chunk_bytes // max(row_bytes, 1))
        pending = b""
        row = 0
        done = 0
        for block in self._chunks(member, rows_per_chunk * row_bytes):
            if digest is not None:
                digest.update(block)
            data = pending + block if pending else block
            whole = len(data) - len(data) % row_bytes
            if whole:
                yield row, data[:whole]
                row += whole // row_bytes
            # Copied: the block's buffer is reused for the next one.
            pending = bytes(data[whole:])
            done += len(block)
            if progress is not None:
                progress(done, member.nbytes)


def _take_rows(
    member: Member,
    index: NDArray[Any],
    blocks: Iterator[tuple[int, Chunk]],
    visit: Callable[[NDArray[Any]], None] | None,
) -> NDArray[Any]:
    import numpy as np

    row_shape = member.shape[1:]
    row_bytes = math.prod(row_shape) * member.dtype.itemsize
    out = np.empty((index.size, *row_shape), dtype=member.dtype)
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    for first, data in blocks:
        count = len(data) // row_bytes
        lo = np.searchsorted(sorted_index, first, side="left")
        hi = np.searchsorted(sorted_index, first + count, side="left")
        if hi > lo or visit is not None:
            rows = np.frombuffer(data, dtype=member.dtype).reshape((count, *row_shape))
            if visit is not None:
                visit(rows)
            out[order[lo:hi]] = rows[sorted_index[lo:hi] - first]
    return out


def _take_columns(
    member: Member,
    index: NDArray[Any],
    blocks: Iterator[tuple[int, Chunk]],
    visit: Callable[[NDArray[Any]], None] | None,
) -> NDArray[Any]:
    import numpy as np

    last = member.shape[-1]
    out = np.empty((math.prod(member.shape[:-1]), index.size), dtype=member.dtype)
    for first, data in blocks:
        rows: NDArray[Any] = np.frombuffer(data, dtype=member.dtype).reshape((-1, last))
        if visit is not None:
            visit(rows)
        out[first : first + rows.shape[0]] = rows[:, index]
    return out.reshape((*member.shape[:-1], index.size))


def _sizes(header: int, data: int, chunk: int) -> Iterator[int]:
    """The header's size, then ``data`` cut into ``chunk``-sized pieces."""
    yield header
    while data > 0:
        yield min(chunk, data)
        data -= chunk


# Own code: zipfile keeps where a member's bytes start private, and _seek_rows needs it.
def _payload_start(handle: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where the member's stored or compressed bytes start, from its local header."""
    if info.flag_bits & 0x1:
        raise RuntimeError(f"member {info.filename!r} is encrypted")
    handle.seek(info.header_offset)
    fields = LOCAL_HEADER.unpack(handle.read(LOCAL_HEADER.size))
    magic, name_size, extra_size = fields[0], int(fields[10]), int(fields[11])
    if magic != LOCAL_MAGIC:
        raise zipfile.BadZipFile(f"no local file header for {info.filename!r}")
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if handle.read(name_size) != info.orig_filename.encode(encoding):
        raise zipfile.BadZipFile(f"member {info.filename!r} has a different local name")
    start: int = info.header_offset + LOCAL_HEADER.size + name_size + extra_size
    return start


# Own code, not ZipFile.open (a new buffer per chunk, +12-25 ms): the 35 MB legacy row.
def _stored(path: Path, info: zipfile.ZipInfo, sizes: Iterator[int]) -> Iterator[Chunk]:
    """A stored member's bytes, cut to ``sizes``, read into one reused buffer."""
    buffer = bytearray()
    with open(path, "rb") as handle:
        handle.seek(_payload_start(handle, info))
        for want in sizes:
            if len(buffer) < want:
                buffer = bytearray(want)
            got = handle.readinto(memoryview(buffer)[:want])
            yield memoryview(buffer)[:got]
            if got < want:
                return


def _inflater() -> tuple[Any, type[Exception]]:
    """A raw-deflate decompressor and the error it raises on damaged data.

    ISA-L's (the ``isal`` package, a dependency on the machines its wheels cover) inflates
    faster than zlib (see the benchmarks in the README); the bytes it gives are the same.
    Without it, zlib's.
    """
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib.decompressobj(-zlib.MAX_WBITS), zlib.error
    # Its stub types the exception class as an instance.
    return isal_zlib.decompressobj(-zlib.MAX_WBITS), cast("type[Exception]", isal_zlib.error)


# Own code, not ZipFile.open (zlib only): ISA-L holds the deflated row and the warm path.
def _inflate(path: Path, info: zipfile.ZipInfo, sizes: Iterator[int]) -> Iterator[Chunk]:
    """A deflated member's bytes, inflated and cut to ``sizes``."""
    inflater, failure = _inflater()
    with open(path, "rb") as handle:
        handle.seek(_payload_start(handle, info))
        left = info.compress_size
        data = b""
        for want in sizes:
            parts: list[bytes] = []
            got = 0
            while got < want:
                if not data and left > 0 and not inflater.eof:
                    data = handle.read(min(_READ_BYTES, left))
                    left -= len(data)
                before = len(data)
                try:
                    # With no input left this drains what the inflater holds (ISA-L
                    # takes all of its input at once; zlib leaves it unconsumed).
                    out = inflater.decompress(data, want - got)
                except failure as exc:
                    raise zlib.error(str(exc)) from None
                data = inflater.unconsumed_tail
                if out:
                    parts.append(out)
                    got += len(out)
                elif len(data) == before:
                    break  # no progress: the stream or the file has ended
            yield parts[0] if len(parts) == 1 else b"".join(parts)
            if got < want:
                return


def _unzipped(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, sizes: Iterator[int]
) -> Iterator[bytes]:
    """Any other compression method, through zipfile."""
    with archive.open(info) as stream:
        for want in sizes:
            piece = stream.read(want)
            yield piece
            if len(piece) < want:
                return


_DONE = object()


# Own code (a bounded hand-off, not a pool): the deflated row inflates beside the caller.
def _in_thread(pieces: Iterator[Chunk], depth: int = 2) -> Iterator[Chunk]:
    """Run ``pieces`` in a thread of its own, at most ``depth`` pieces ahead of the caller.

    zlib releases the GIL while it inflates, so inflating overlaps with what the caller
    does with the previous piece. An error in the thread is raised in the caller.
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
            except queue.Full:
                continue
            return True
        return False

    def produce() -> None:
        try:
            for piece in pieces:
                if not put(piece):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed over and raised by the caller
            put(exc)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # in this thread, which ran it: its file is closed now

    worker = threading.Thread(target=produce, name="ptycho-fixture-inflate", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, (bytes, memoryview))
            yield item
    finally:
        stop.set()
        worker.join()


@dataclass(frozen=True)
class LoadedNpz:
    """Every array of an NPZ, with the digests computed while reading it."""

    arrays: dict[str, NDArray[Any]]
    content_sha256: str
    array_sha256: dict[str, str]


def load_npz(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedNpz:
    """Read every member once, computing the content digest on the same pass.

    A deflated member whose compressed bytes are those of a member read before it (a
    fixture's ``diff3d`` and ``diffraction``) is a copy of that array, not inflated again.
    """
    hasher = ContentHasher()
    arrays: dict[str, NDArray[Any]] = {}
    with NpzReader(path, max_bytes=max_bytes) as reader:
        alike: dict[tuple[int, int, int], list[str]] = {}
        for key in sorted(reader.members):
            info = reader.members[key].info
            read = alike.setdefault((info.CRC, info.compress_size, info.file_size), [])
            twin = next((other for other in read if reader.same_data(other, key)), None)
            read.append(key)
            if twin is None:
                arrays[key] = reader.read(key, hasher)
            else:
                arrays[key] = arrays[twin].copy()
                hasher.add_array(key, arrays[key])
    return LoadedNpz(arrays, hasher.content_sha256, dict(sorted(hasher.arrays.items())))
