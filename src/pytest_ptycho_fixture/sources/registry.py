"""Which module reads a source: one table, :data:`KNOWN_LAYOUTS`, consulted by
:func:`open_source`.

A source is recognised by its content, never by its name. Its first bytes say which
container it is (HDF5, else NPZ); then each layout of that container is asked in turn
whether the file is one of its own, and the first that says so reads it. ``--keys``
names an HDF5 file's datasets itself, so a file with keys skips the table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..contract import ContractError
from ..spec import BUILTIN_SOURCE
from . import cxi, npz, product
from . import keys as mapped
from .base import Request
from .hdf5 import HDF5Source
from .hdf5read import H5Reader, is_hdf5

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..cli.progress import Progress
    from ..geometry import Geometry
    from .base import Source

Positions = tuple["NDArray[Any]", "NDArray[Any]"]


class Layout(NamedTuple):
    """A layout of source file: how to tell it, read it, and read its positions alone."""

    #: What the sidecar records as ``source_format`` (the NPZ layout records none).
    name: str
    recognises: Callable[[Any], bool]
    read_source: Callable[[Any, Request], Source]
    positions: Callable[[Any, str], Positions]


#: The layouts of each container, in the order they are tried.
KNOWN_LAYOUTS: dict[str, tuple[Layout, ...]] = {
    "hdf5": (
        Layout(product.FORMAT, product.recognises, product.read_source, product.positions),
        Layout(cxi.FORMAT, cxi.recognises, cxi.read_source, cxi.positions),
        Layout(
            product.CXI_FORMAT,
            product.recognises_cxi,
            product.read_cxi_source,
            product.cxi_positions,
        ),
    ),
    "npz": (
        Layout(
            product.NPZ_FORMAT,
            product.recognises_npz,
            product.read_npz_source,
            product.npz_positions,
        ),
        Layout("npz", npz.recognises, npz.read_source, npz.positions),
    ),
}


#: What a file that no layout of its container recognises is told.
UNKNOWN = {
    "hdf5": f"is an HDF5 file but neither CXI ({cxi.DATA[0]}) nor a ptychodus product"
    f" ({product.POSITIONS_X}, or a CXI product's /entry_1/image_N); name its datasets"
    " with --keys"
    " diffraction=/path,xcoords=/path,ycoords=/path,probeGuess=/path,objectGuess=/path",
    "npz": "is an NPZ of no known layout",
}


def open_source(
    source: str | os.PathLike[str] | None,
    layout: str | None = None,
    *,
    diffraction: str | os.PathLike[str] | None = None,
    keys: Mapping[str, str] | None = None,
    label: str | None = None,
    diffraction_label: str | None = None,
    verify: bool = False,
    progress: Progress | None = None,
    geometry: Geometry | None = None,
    probe: str | os.PathLike[str] | None = None,
) -> Source:
    """The built-in synthetic source for ``None``, else the scan at ``source``.

    ``diffraction`` gives the patterns of a source that holds none (a ptychodus
    product); ``keys`` maps fixture keys to the datasets of an HDF5 file of a layout of
    its own. ``verify`` reads all of the source: every pattern is checked and the
    source's content digest computed. ``progress`` reports the reading of the patterns
    (the built-in source simulates only the subset, which is quick, and is always
    verified: its digest is a constant). ``label`` and ``diffraction_label`` name the
    source and the diffraction file in the sidecar (default: the paths as given).
    ``geometry`` and ``probe`` give what a source does not hold: its geometry (an NPZ),
    its probe (a CXI file without one).
    """
    if source is None:
        if any(given is not None for given in (diffraction, keys, geometry, probe)):
            raise ContractError(
                BUILTIN_SOURCE,
                None,
                "takes no --diffraction, --keys, --geometry or --probe (it declares its"
                " geometry and holds its probe); give a --source file",
            )
        from .builtin import SyntheticSource

        return SyntheticSource()
    request = Request.of(
        source,
        layout,
        diffraction=diffraction,
        keys=keys,
        label=label,
        diffraction_label=diffraction_label,
        verify=verify,
        progress=progress,
        geometry=geometry,
        probe=probe,
    )
    path = request.path
    if path.is_dir():
        raise ContractError(path, None, "is a directory but a source NPZ file is required")
    if path.is_file() and is_hdf5(path):
        with H5Reader(path) as reader:
            if request.keys is not None:
                opened: Source = mapped.read_source(reader, request)
            else:
                read = _layout("hdf5", reader, request.label).read_source
                opened = read(reader, request)
        if isinstance(opened, HDF5Source):
            opened.verify, opened.progress = verify, progress
        return opened
    from ..npz.reader import NpzReader

    with NpzReader(path) as npz_reader:
        return _layout("npz", npz_reader, request.label).read_source(npz_reader, request)


def _layout(container: str, reader: Any, label: str) -> Layout:
    """The first layout of ``container`` that recognises the file open in ``reader``."""
    for layout in KNOWN_LAYOUTS[container]:
        if layout.recognises(reader):
            return layout
    raise ContractError(label, None, UNKNOWN[container])


def source_positions(path: Path, label: str, keys: Mapping[str, str] | None = None) -> Positions:
    """The positions of the source at ``path`` in object pixels, without its patterns."""
    if is_hdf5(path):
        with H5Reader(path) as reader:
            if keys is not None:
                return mapped.positions(reader, keys)
            return _layout("hdf5", reader, label).positions(reader, label)
    from ..npz.reader import NpzReader

    with NpzReader(path) as npz_reader:
        return _layout("npz", npz_reader, label).positions(npz_reader, label)

