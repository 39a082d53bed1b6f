"""The scans a fixture is derived from: one module per layout (NPZ, the built-in scan,
CXI, ptychodus product files, HDF5 mapped by ``--keys``), what the HDF5 layouts share,
and the safe HDF5 reader. :func:`open_source` chooses the layout by the file's content,
through the one table :data:`.registry.KNOWN_LAYOUTS`."""

from .base import Request, Source
from .registry import KNOWN_LAYOUTS, open_source, source_positions

__all__ = ["KNOWN_LAYOUTS", "Request", "Source", "open_source", "source_positions"]
