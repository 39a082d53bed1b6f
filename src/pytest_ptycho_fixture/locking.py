"""The lock that serialises the writers of one fixture: ``<fixture>.lock``.

The pytest plugin holds it while it verifies, heals or regenerates a fixture, and
``ptycho-fixture generate`` while it writes one, so the two never interleave and a
reader never sees a new sidecar with an old NPZ. It is filelock's ``FileLock``, an
``flock`` on POSIX, which the kernel releases when its holder dies, even by ``SIGKILL``.
On top of it this module refuses a symlink at the lock path, turns every failure into
one :class:`LockUnavailable`, and sweeps the temporary files of killed writers once the
lock is held.

The lock file stays in place after use (``preserve_lock_file``). Deleting it would let a
process still waiting on the old file and a newcomer that creates a new one both hold
"the" lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .atomic import remove_stale_temps

#: Seconds to wait for another process, unless configured otherwise.
DEFAULT_TIMEOUT = 600.0
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
    import filelock

    path = lock_path(target)
    if path.is_symlink():
        raise _symlink(path)
    # No soft-lock fallback (preserve_lock_file): where the filesystem has no flock, a
    # marker file that a killed holder leaves would block every later run.
    lock = filelock.FileLock(path, preserve_lock_file=True)
    try:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if on_wait is not None:
                on_wait(path)
            lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise LockUnavailable(str(path), "another process holds it", waited=timeout) from None
    except OSError as exc:  # after Timeout, which is an OSError too
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise _symlink(path) from None
        raise _unopenable(path, exc) from None
    try:
        for file in sweep:
            remove_stale_temps(file)
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
