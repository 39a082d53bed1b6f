"""Content digests of arrays, the SHA-256 of a file, and the fingerprint of an NPZ.

Content digest
    ``array_sha256[key]`` is the SHA-256 of ``key NUL dtype NUL shape NUL`` followed by
    the array's bytes in C order, little-endian, where ``dtype`` is the little-endian
    ``numpy.dtype.str`` (``<f4``, ``<c8``, ...) and ``shape`` the comma-joined sizes.
    ``content_sha256`` is the SHA-256 of the lines ``key SP array_sha256 LF`` in sorted
    key order. Neither depends on the zip container, compression or zlib build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: Bytes of a file hashed at a time.
_READ_BYTES = 8 << 20


def little_endian(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """``dtype`` in little-endian byte order: the order digests and written files use."""
    little: np.dtype[Any] = dtype.newbyteorder("<")
    return little


def array_preamble(key: str, dtype: np.dtype[Any], shape: Sequence[int]) -> bytes:
    """The bytes hashed before an array's data in its content digest."""
    dims = ",".join(str(int(n)) for n in shape)
    return f"{key}\0{little_endian(dtype).str}\0{dims}\0".encode()


@dataclass
class ContentHasher:
    """Accumulates per-array digests and combines them into ``content_sha256``."""

    arrays: dict[str, str] = field(default_factory=dict)

    def begin(self, key: str, dtype: np.dtype[Any], shape: Sequence[int]) -> hashlib._Hash:
        return hashlib.sha256(array_preamble(key, dtype, shape))

    def add_array(self, key: str, array: NDArray[Any]) -> None:
        import numpy as np

        digest = self.begin(key, array.dtype, array.shape)
        data = np.ascontiguousarray(array, dtype=little_endian(array.dtype))
        digest.update(data.data)
        self.arrays[key] = digest.hexdigest()

    def finish(self, key: str, digest: hashlib._Hash) -> None:
        self.arrays[key] = digest.hexdigest()

    @property
    def content_sha256(self) -> str:
        return combine_digests(self.arrays)


def combine_digests(arrays: Mapping[str, str]) -> str:
    """``content_sha256`` from per-array digests."""
    lines = "".join(f"{key} {arrays[key]}\n" for key in sorted(arrays))
    return hashlib.sha256(lines.encode()).hexdigest()


def content_digests(arrays: Mapping[str, NDArray[Any]]) -> tuple[str, dict[str, str]]:
    """Return ``(content_sha256, {key: array_sha256})`` for in-memory arrays."""
    hasher = ContentHasher()
    for key in sorted(arrays):
        hasher.add_array(key, arrays[key])
    return hasher.content_sha256, dict(sorted(hasher.arrays.items()))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_READ_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(entries: Sequence[tuple[str, int, int]]) -> str:
    """SHA-256 of the lines ``name SP crc32 SP size LF`` (``crc32`` in 8 hex digits) for
    ``(name, crc32, size)`` entries, sorted by name.

    For an NPZ these come from the zip central directory: the CRC-32 and size its writer
    recorded for each member's uncompressed bytes. It costs nothing however large the
    archive is, does not depend on compression, and changes with any content change that
    the writer saw; unlike a content digest it is not recomputed from the data.
    """
    lines = "".join(f"{name} {crc:08x} {size}\n" for name, crc, size in sorted(entries))
    return hashlib.sha256(lines.encode()).hexdigest()
