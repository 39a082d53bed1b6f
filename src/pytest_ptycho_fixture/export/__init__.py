"""The fixture in the formats of the field's other codes: ptychodus' product and
diffraction files, and CXI (cdtools, ptychodus). :func:`export_fixture` chooses the
writer through one table, :data:`.registry.KNOWN_FORMATS`."""

from .base import Exported, Mismatch, load
from .registry import KNOWN_FORMATS, export_fixture

__all__ = ["KNOWN_FORMATS", "Exported", "Mismatch", "export_fixture", "load"]
