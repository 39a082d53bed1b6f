"""The fixture's container: the streaming NPZ reader, the byte-reproducible writer,
content digests, and the JSON sidecar."""

from .digests import content_digests
from .reader import NpzReader, load_npz
from .writer import write_npz

__all__ = ["NpzReader", "content_digests", "load_npz", "write_npz"]
