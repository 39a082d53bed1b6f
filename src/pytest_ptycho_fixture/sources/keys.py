"""HDF5 files of a layout of their own, mapped by ``--keys``: ``KEY=/path`` pairs that
name the dataset of each fixture key (positions in object pixels, amplitudes under
``diffraction`` or intensities under ``intensities``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import contract as c
from .hdf5 import HDF5Source, hdf5_frames

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .base import Request
    from .hdf5read import H5Reader

FORMAT = "hdf5-keys"


def read_source(reader: H5Reader, request: Request) -> HDF5Source:
    """The source that ``request.keys`` describes in ``reader``'s file."""
    assert request.keys is not None
    request.refuse("--diffraction", "takes --keys or --diffraction, not both")
    request.refuse("--probe", "names its probe with --keys (probeGuess=/path); drop --probe")
    source = mapped(reader, request.label, request.keys, request.layout)
    source.geometry = request.given_geometry(source.frames.detector)
    return source


def positions(reader: H5Reader, keys: Mapping[str, str]) -> tuple[NDArray[Any], NDArray[Any]]:
    """The positions ``keys`` names, in object pixels, without reading the patterns."""
    return reader.read(keys[c.XCOORDS], "f"), reader.read(keys[c.YCOORDS], "f")


def mapped(reader: H5Reader, label: str, keys: Mapping[str, str], layout: str | None) -> HDF5Source:
    """The source ``--keys`` describes: positions in object pixels, amplitudes or intensities."""
    import numpy as np

    small: dict[str, Any] = {}
    datasets: dict[str, str] = {}
    for key in (c.XCOORDS, c.YCOORDS, *c.OPTIONAL_PER_POSITION):
        if key in keys:
            kinds = "iu" if key == "scan_index" else "f"
            small[key] = reader.read(keys[key], kinds)
            datasets[key] = f"{keys[key]} (object pixels)" if key != "scan_index" else keys[key]
    for key in (c.PROBE, c.OBJECT):
        small[key] = reader.read(keys[key], "c")
        datasets[key] = f"{keys[key]} (complex)"
    intensity = "intensities" in keys
    name = keys["intensities" if intensity else c.DIFFRACTION]
    node = reader.dataset(name)
    if not intensity:
        c.check_diffraction_dtype(label, name, node.dtype)
    n = int(np.asarray(small[c.XCOORDS]).shape[0])
    decided = c.decide_layout(label, node.shape, n, layout)
    frames = hdf5_frames(reader, name, decided, intensity=intensity)
    datasets[c.DIFFRACTION] = f"{name} ({'intensities' if intensity else 'amplitudes'})"
    return HDF5Source(
        label,
        frames,
        small,
        datasets,
        notes=[f"HDF5 datasets mapped by --keys: {_shown(datasets)}"],
        provenance={"source_format": FORMAT, "source_keys": dict(keys)},
    )


def _shown(datasets: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={where}" for key, where in datasets.items())
