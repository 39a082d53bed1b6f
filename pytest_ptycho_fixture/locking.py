"""The lock that serialises the writers of one fixture: ``<fixture>.lock``.

The pytest plugin holds it while it verifies, heals or regenerates a fixture, and
``ptycho-fixture generate`` while it writes one, so the two never interleave and a
reader never sees a new sidecar with an old NPZ. It is an ``flock``, which the kernel
releases when its holder dies, even by ``SIGKILL``: taken here on POSIX systems, as
filelock takes it (and excluding filelock's lock on the same file), and through filelock
on Windows.

The lock file stays in place after use. Deleting it would let a process still waiting on
the old file and a newcomer that creates a new one both hold "the" lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .atomic import remove_stale_temps

#: Seconds to wait for another process, unless configured otherwise.
DEFAULT_TIMEOUT = 600.0
#: Seconds between two tries while another process holds the lock (filelock's).
POLL_SECONDS = 0.05
#: Errors meaning the lock file cannot be created in its folder (read-only, not ours).
NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


class LockUnavailable(Exception):
    """The lock could not be taken.

    ``path`` is the lock file, ``reason`` why (a stable phrase), ``waited`` the seconds
    waited when another process held it, and ``errno`` the OS error, if there was one.
    """

    def __init__(
        self, path: str, reason: str, waited: float | None = None, errno: int | None = None
    ) -> None:
        super().__init__(path, reason, waited, errno)
        self.path = path
        self.reason = reason
        self.waited = waited
        self.errno = errno

    @property
    def folder_not_writable(self) -> bool:
        """The lock file is not there and cannot be created: its folder is read-only."""
        return self.errno in NOT_WRITABLE and not os.path.lexists(self.path)

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

    def __reduce__(
        self,
    ) -> tuple[type[LockUnavailable], tuple[str, str, float | None, int | None]]:
        return (type(self), (self.path, self.reason, self.waited, self.errno))


def lock_path(target: Path) -> Path:
    """The lock file of ``target``: the same name with ``.lock`` appended."""
    return target.with_name(f"{target.name}.lock")


@contextlib.contextmanager
def holding(
    target: Path,
    timeout: float,
    sweep: Iterable[Path] = (),
    on_wait: Callable[[Path], None] | None = None,
) -> Iterator[None]:
    """Hold the lock of ``target``, waiting at most ``timeout`` seconds for it.

    Once it is held, the temporary files that killed writers of the ``sweep`` files left
    behind are removed. ``on_wait`` is called with the lock path before waiting, when
    another process holds the lock.

    Raises :class:`LockUnavailable` when the lock is held elsewhere past ``timeout``,
    is a symlink, or cannot be created.
    """
    path = lock_path(target)
    if path.is_symlink():
        raise _symlink(path)
    hold = _through_filelock if sys.platform == "win32" else _acquire
    with hold(path, timeout, on_wait):
        for file in sweep:
            remove_stale_temps(file)
        yield


# Own code, not filelock, on POSIX: importing filelock takes 8-11 ms, a quarter of a
# fixture's first use on a cold or a warm cache (benchmarks/bench_store.py).
@contextlib.contextmanager
def _acquire(path: Path, timeout: float, on_wait: Callable[[Path], None] | None) -> Iterator[None]:
    """Hold an ``flock`` on ``path``, trying every ``POLL_SECONDS`` for ``timeout``.

    The file is opened anew for every try, so a lock file replaced meanwhile is the one
    locked, and a try that finds its file gone from its name tries again.
    """
    import fcntl

    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        fd = _open(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                reason = f"cannot be locked: {exc.strerror or exc}"
                raise LockUnavailable(str(path), reason, errno=exc.errno) from None
        else:
            if _names(path, fd):
                break
            os.close(fd)
            continue
        if not waiting and on_wait is not None:
            on_wait(path)
        waiting = True
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockUnavailable(str(path), "another process holds it", waited=timeout)
        time.sleep(min(POLL_SECONDS, left))
    try:
        yield
    finally:
        os.close(fd)  # which releases the lock


def _open(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise _symlink(path) from None
        raise _unopenable(path, exc) from None


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def _through_filelock(
    path: Path, timeout: float, on_wait: Callable[[Path], None] | None
) -> Iterator[None]:
    import filelock

    lock = filelock.FileLock(path, timeout=timeout)
    try:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if on_wait is not None:
                on_wait(path)
            lock.acquire()
    except filelock.Timeout:
        raise LockUnavailable(str(path), "another process holds it", waited=timeout) from None
    except OSError as exc:  # after Timeout, which is an OSError too
        raise _unopenable(path, exc) from None
    try:
        yield
    finally:
        lock.release()


def _unopenable(path: Path, exc: OSError) -> LockUnavailable:
    reason = f"cannot be created or opened: {exc.strerror or exc}"
    return LockUnavailable(str(path), reason, errno=exc.errno)


def _symlink(path: Path) -> LockUnavailable:
    try:
        where = f" to {os.readlink(path)}"
    except OSError:
        where = ""
    return LockUnavailable(
        str(path),
        f"is a symbolic link{where}, not a lock file; it was left as it is: remove it",
        errno=errno.ELOOP,
    )
