"""The store interface: :class:`Store`, its one error :class:`StoreFault`, and how an
entry is named.

An entry is a fixture NPZ, stored as ``<store>/<content_sha256>.npz``: the digest that
the committed sidecar records names it, and a copy is used only when its arrays have
that digest again. This subpackage knows nothing of pytest.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

#: Where a store's timeout is set, for the messages that name it.
TIMEOUT_OPTION = "ptycho_fixture_store_timeout"
#: A check of a downloaded file: ``None`` if it is the fixture, else what is wrong with it.
Check = Callable[[Path], "str | None"]


class StoreFault(Exception):
    """A store could not provide or take an entry.

    ``store`` is the store as configured, ``entry`` the entry's name (``DIGEST.npz``; empty
    when the store itself cannot be used) and ``reason`` what happened, a phrase that
    follows the entry's name (or the store's). ``missing`` is true when the store answered
    that it has no such entry.
    """

    def __init__(self, store: str, entry: str, reason: str, missing: bool = False) -> None:
        super().__init__(store, entry, reason, missing)
        self.store = store
        self.entry = entry
        self.reason = reason
        self.missing = missing

    def __str__(self) -> str:
        return f"{self.store}: {self.entry} {self.reason}" if self.entry else self.about

    @property
    def about(self) -> str:
        """The fault as a phrase about the entry (or the store): ``ENTRY REASON``."""
        return f"{self.entry} {self.reason}" if self.entry else f"{self.store} {self.reason}"

    def __reduce__(self) -> tuple[type[StoreFault], tuple[str, str, str, bool]]:
        return (type(self), (self.store, self.entry, self.reason, self.missing))


class Store(Protocol):
    """Where verified fixtures are kept by digest."""

    @property
    def label(self) -> str:
        """The store as messages name it (a URL without its password, or a folder)."""
        ...

    @property
    def writable(self) -> bool:
        """Whether :meth:`push` can work at all (an HTTP store is read-only)."""
        ...

    def fetch(self, digest: str, target: Path, check: Check, max_bytes: int) -> None:
        """Download the entry of ``digest`` to ``target`` if ``check`` accepts it.

        ``target`` is replaced only by a complete download that ``check`` accepted; a
        download is refused as soon as it passes ``max_bytes``. Raises
        :class:`StoreFault`; an ``OSError`` naming ``target`` if it cannot be written.
        """
        ...

    def push(self, source: Path, digest: str) -> bool:
        """Upload ``source`` as the entry of ``digest``; ``False`` if it held those bytes."""
        ...


def entry_name(digest: str) -> str:
    """The name of the entry of ``digest``; refuses anything but a SHA-256 in hex."""
    if len(digest) != 64 or not set(digest) <= set(string.hexdigits.lower()):
        raise ValueError(f"{digest!r} is not a SHA-256 in lowercase hex")
    return f"{digest}.npz"
