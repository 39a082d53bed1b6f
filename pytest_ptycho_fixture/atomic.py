"""Atomic file publication: build in a temporary file beside the target, fsync, rename."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def temp_prefix(target: Path) -> str:
    """Prefix of the temporary files made for ``target`` (for cleaning stale ones)."""
    return f".{target.name}."


@contextlib.contextmanager
def atomic_writer(target: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``target`` only if the block completes.

    On any error the temporary file is removed and ``target`` is left as it was.
    A symlink at ``target`` is replaced by the new file; what it pointed to is never
    opened for writing.
    """
    target = Path(target)
    folder = target.parent or Path(".")
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=folder)
    except OSError as exc:
        # Name the file the caller asked for, not the temporary name it never saw.
        raise type(exc)(
            exc.errno, f"cannot create a file in {folder}: {exc.strerror}", str(target)
        ) from None
    temp = Path(name)
    try:
        with os.fdopen(fd, "w+b") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644 & ~_umask())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(target.parent)


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    # Read once: os.umask can only be read by setting it.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable; not all filesystems allow opening a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(target: Path, data: bytes) -> None:
    """Atomically replace ``target`` with ``data``."""
    with atomic_writer(target) as handle:
        handle.write(data)
