"""Atomic file publication: build in a temporary file beside the target, fsync, rename.

The folders a target needs are made by :func:`parents_made` just before writing, and
removed again if the writing fails, so that a failed command leaves no trace at all.

A writer holds an exclusive lock (filelock's ``lock_descriptor``, an ``flock``) on its
temporary file for as long as the file exists, so :func:`remove_stale_temps` can tell
the file of a live writer (locked) from one left by a killed writer (the kernel released
its lock) and removes only the latter.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def temp_prefix(target: Path) -> str:
    """Prefix of the temporary files made for ``target`` (for cleaning stale ones)."""
    return f".{target.name}."


@contextlib.contextmanager
def atomic_writer(
    target: Path, check: Callable[[Path], None] | None = None
) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``target`` only if the block completes.

    ``check``, if given, is called with the temporary file's path once it is written and
    synced, before it takes ``target``'s name: what it raises leaves ``target`` as it was.
    On any error the temporary file is removed and ``target`` is left as it was; an
    ``OSError`` met while writing (a full disk, a file size limit) names ``target``.
    A symlink at ``target`` is replaced by the new file; what it pointed to is never
    opened for writing.
    """
    target = Path(target)
    fd, temp = _locked_temp(target)
    try:
        with os.fdopen(fd, "w+b") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if check is not None:
                check(temp)
            os.chmod(temp, 0o644 & ~_umask())
            # Renamed while still open, so the lock on it lasts until it has its final name.
            os.replace(temp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        if isinstance(exc, OSError) and exc.errno and exc.filename in (None, str(temp)):
            # Name the file the caller asked for, not the temporary name it never saw.
            raise type(exc)(exc.errno, f"cannot write it: {exc.strerror}", str(target)) from None
        raise
    _fsync_dir(target.parent)


def _locked_temp(target: Path) -> tuple[int, Path]:
    """Create and lock a new temporary file beside ``target``."""
    folder = target.parent or Path(".")
    while True:
        try:
            fd, name = tempfile.mkstemp(prefix=temp_prefix(target), suffix=TEMP_SUFFIX, dir=folder)
        except OSError as exc:
            raise type(exc)(
                exc.errno, f"cannot create a file in {folder}: {exc.strerror}", str(target)
            ) from None
        try:
            _flock(fd, blocking=True)
            # A sweep may have removed the file between its creation and the lock.
            if os.fstat(fd).st_nlink:
                return fd, Path(name)
        except BaseException:
            os.close(fd)
            Path(name).unlink(missing_ok=True)
            raise
        os.close(fd)


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temporary files of ``target`` whose writer is gone; return them.

    A file whose lock is held belongs to a live writer and is left alone.
    """
    prefix = temp_prefix(target)
    removed: list[Path] = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (
            name.startswith(prefix)
            and name.endswith(TEMP_SUFFIX)
            and len(name) > len(prefix) + len(TEMP_SUFFIX)
        ):
            continue
        try:
            fd = os.open(entry, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        except OSError:
            # Most likely a planted symlink (O_NOFOLLOW): remove the link, not its target.
            if entry.is_symlink():
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
            continue
        try:
            if _flock(fd, blocking=False):
                # Removed while locked, so a writer that just created it sees it gone.
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
        finally:
            os.close(fd)
    return removed


def _flock(fd: int, *, blocking: bool) -> bool:
    """Take an exclusive lock on ``fd``, filelock's own primitive on a descriptor;
    ``False`` if another process holds one."""
    if sys.platform == "win32":
        # Windows refuses to delete an open file, which protects live writers there.
        return True
    from filelock import lock_descriptor

    try:
        return lock_descriptor(fd, blocking=blocking)
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS):
            # No flock on this filesystem: a writer goes ahead, a sweep removes nothing.
            return blocking
        raise


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


def missing_parents(target: Path) -> list[Path]:
    """The folders above ``target`` that do not exist yet, outermost first.

    Raises ``NotADirectoryError`` naming ``target`` when something that is not a folder
    (a file, a dangling symlink) stands where one of them is needed.
    """
    missing: list[Path] = []
    folder = Path(target).parent
    # os.path.isdir and lexists, unlike their Path forms, say False for any OSError
    # (a name too long, say): mkdir then reports the real reason.
    while not os.path.isdir(folder):
        if os.path.lexists(folder):
            raise _in_the_way(target, folder)
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    return missing[::-1]


@contextlib.contextmanager
def parents_made(*targets: Path) -> Iterator[list[Path]]:
    """Make the missing folders above each target, as ``mkdir -p``; yield those made.

    If the block fails (Ctrl-C included), the folders made here are removed again,
    deepest first, each only if it is empty. A folder that cannot be made raises an
    ``OSError`` that names the target, the folder and the reason, after removing the
    folders made before it.
    """
    made: list[Path] = []
    try:
        for target in targets:
            for folder in missing_parents(target):
                try:
                    os.mkdir(folder)
                except FileExistsError:
                    if not os.path.isdir(folder):
                        raise _in_the_way(target, folder) from None
                    continue  # made meanwhile by another process: not ours to remove
                except OSError as exc:
                    reason = f"cannot create the folder {folder}: {exc.strerror}"
                    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                        reason += f"; make {folder.parent} writable or choose another path"
                    raise type(exc)(exc.errno, reason, str(target)) from None
                made.append(folder)
        yield made
    except BaseException:
        _remove_folders(made)
        raise
    # A file renamed into a new folder is durable only once the folder's own entry is.
    for folder in made:
        _fsync_dir(folder.parent)


def _remove_folders(folders: list[Path]) -> None:
    """Remove ``folders``, made in this order, deepest first; keep any that is not empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _in_the_way(target: Path, folder: Path) -> NotADirectoryError:
    what = "a symbolic link" if os.path.islink(folder) else "a file"
    reason = (
        f"cannot create the folder {folder}: {what} of that name is in the way;"
        " move it or choose another path"
    )
    return NotADirectoryError(errno.ENOTDIR, reason, str(target))


def write_bytes(target: Path, data: bytes) -> None:
    """Atomically replace ``target`` with ``data``."""
    with atomic_writer(target) as handle:
        handle.write(data)
