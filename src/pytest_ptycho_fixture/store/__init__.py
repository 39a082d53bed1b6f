"""A store of verified fixtures shared by many machines, each named by its content digest.

:func:`open_store` gives one of two stores behind one interface, fetch and push:
:class:`.http.HttpStore` for ``http://`` and ``https://`` (read-only, through
``urllib``) and :class:`.filesystem.FsspecStore` for every other URL and for a folder
(fsspec, and s3fs for ``s3://`` or gcsfs for ``gs://``). A download goes to a temporary
file beside its target, is checked there, and only then takes the target's name. This
subpackage knows nothing of pytest; every failure is a :class:`StoreFault`.
"""

from .protocol import Check, Store, StoreFault, entry_name
from .registry import KNOWN_STORES, open_store

__all__ = ["KNOWN_STORES", "Check", "Store", "StoreFault", "entry_name", "open_store"]
