"""Which store a URL names: one table, :data:`KNOWN_STORES`, consulted by
:func:`open_store`."""

from __future__ import annotations

from collections.abc import Callable

from ..spec import store_label, store_scheme
from .filesystem import FsspecStore
from .http import HttpStore
from .protocol import Store

#: How each URL scheme's store is opened; any other scheme, and a folder, is fsspec's.
KNOWN_STORES: dict[str, Callable[[str, float, str], Store]] = {
    "http": HttpStore.open,
    "https": HttpStore.open,
}


def open_store(url: str, timeout: float, label: str | None = None) -> Store:
    """The store at ``url``: a folder, or a URL as :func:`..spec.parse_store` gives it.

    ``timeout`` bounds each connection and each wait for more bytes (HTTP, S3, GCS);
    ``label`` is how messages name the store (default: :func:`..spec.store_label`).
    """
    opener = KNOWN_STORES.get(store_scheme(url), FsspecStore.open)
    return opener(url, timeout, label or store_label(None, url))
