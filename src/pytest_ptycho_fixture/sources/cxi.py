"""CXI files (versions 1.4 to 1.6, as ptychodus and cdtools read them) as fixture sources.

Read: the intensities ``(N, H, W)`` at the first of :data:`DATA`; the translations
``(N, 3)`` in metres at the first of :data:`TRANSLATION`; the detector distance and
pixel sizes and the source energy (J), which give the object pixel size
``lambda * z / (N_det * p)`` on each axis; the probe at :data:`PROBE`; and, where the file
has one, an object guess at :data:`IMAGE`. Positions become object pixels as ptychodus
maps them, ``(x - centre) / pixel + side / 2``: the centre is 0 for a file's own object
and the middle of the scan for the unit-amplitude object made when it has none. x and y
are the translation's columns 0 and 1, as ptychodus reads them (cdtools negates them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..contract import ContractError
from .hdf5 import (
    PLANCK_C,
    Frames,
    HDF5Source,
    hdf5_frames,
    object_pixels,
    single_mode,
    unit_object,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .base import Request
    from .hdf5read import H5Reader

FORMAT = "cxi"
DATA = ("/entry_1/data_1/data", "/entry_1/instrument_1/detector_1/data")
TRANSLATION = ("/entry_1/sample_1/geometry_1/translation", "/entry_1/data_1/translation")
DETECTOR = "/entry_1/instrument_1/detector_1"
DISTANCE = f"{DETECTOR}/distance"
X_PIXEL = f"{DETECTOR}/x_pixel_size"
Y_PIXEL = f"{DETECTOR}/y_pixel_size"
ENERGY = "/entry_1/instrument_1/source_1/energy"
PROBE = "/entry_1/instrument_1/source_1/illumination"
IMAGE = "/entry_1/image_1/data"


def is_cxi(reader: H5Reader) -> bool:
    """Whether the file holds CXI intensities at one of :data:`DATA`."""
    return any(reader.has(name) for name in DATA)


recognises = is_cxi


def read_source(reader: H5Reader, request: Request) -> HDF5Source:
    """The CXI file of ``request``, open in ``reader``."""
    request.refuse("--diffraction", "is a CXI file, which holds its own patterns; drop --diffraction")
    return cxi_source(reader, request.label)


def positions(reader: H5Reader, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The scan's positions in object pixels (the probe and object are read too)."""
    source = cxi_source(reader, label)
    return source.small[c.XCOORDS], source.small[c.YCOORDS]


def _first(reader: H5Reader, label: str, names: tuple[str, ...], what: str) -> str:
    for name in names:
        if reader.has(name):
            return name
    raise ContractError(
        label,
        names[0],
        f"is a CXI file without {what}: expected a dataset at {' or '.join(map(repr, names))}",
    )


def patterns(reader: H5Reader, label: str) -> Frames:
    """The CXI intensities ``(N, H, W)``: those of a CXI source, or of a product's."""
    data = _first(reader, label, DATA, "intensities")
    node = reader.dataset(data)
    if node.ndim != 3:
        raise ContractError(
            label, data, f"{data!r} has shape {node.shape} but (N, H, W) intensities are required"
        )
    return hdf5_frames(reader, data, "NHW", intensity=True)


def cxi_source(reader: H5Reader, label: str) -> HDF5Source:
    import numpy as np

    frames = patterns(reader, label)
    data = frames.name
    n, h, w = frames.shape
    where = _first(reader, label, TRANSLATION, "translations")
    translation = reader.read(where, "iuf").astype(np.float64)
    if translation.shape != (n, 3):
        raise ContractError(
            label,
            where,
            f"{where!r} has shape {translation.shape} but ({n}, 3) is required: x, y, z in"
            f" metres for each of the {n} patterns of {data}",
        )
    distance, energy = reader.scalar(DISTANCE), reader.scalar(ENERGY)
    pixel = (reader.scalar(X_PIXEL), reader.scalar(Y_PIXEL))
    wavelength = PLANCK_C / energy
    # lambda z / (N p): the object-plane pixel, x across the W columns, y down the H rows.
    dx, dy = wavelength * distance / (w * pixel[0]), wavelength * distance / (h * pixel[1])
    if not reader.has(PROBE):
        raise ContractError(
            label,
            PROBE,
            f"is a CXI file without a probe: expected a complex ({h}, {w}) dataset at {PROBE!r}",
        )
    probe = single_mode(label, PROBE, reader.read(PROBE, "c"), "probe")
    x_m, y_m = translation[:, 0], translation[:, 1]
    transformations = [
        (
            f"object pixel: lambda*z/(N*p) = {dx:.6g} m (x), {dy:.6g} m (y), from energy"
            f" {energy:.6g} J (lambda {wavelength:.6g} m), distance {distance:.6g} m, pixels"
            f" {pixel[0]:.6g} x {pixel[1]:.6g} m, detector {h}x{w}"
        ),
    ]
    notes: list[str] = []
    if reader.has(IMAGE):
        obj = single_mode(label, IMAGE, reader.read(IMAGE, "c"), "object")
        centre = (0.0, 0.0)
        object_note = f"{IMAGE} (complex)"
    else:
        centre = ((x_m.min() + x_m.max()) / 2, (y_m.min() + y_m.max()) / 2)
        span = ((x_m.max() - x_m.min()) / dx, (y_m.max() - y_m.min()) / dy)
        obj = np.ones(unit_object(span, (h, w)), dtype=np.complex64)
        object_note = "none in the file: a unit-amplitude object was made"
        transformations.append(
            f"{c.OBJECT}: made, unit amplitude, {obj.shape[0]}x{obj.shape[1]}: the scan's"
            " extent plus the probe's, centred on the scan (the file has no object guess)"
        )
        notes.append(
            f"{label} has no object guess at {IMAGE}: {c.OBJECT} is a unit-amplitude"
            " object covering the scan"
        )
    rows, cols = obj.shape
    xcoords = object_pixels(label, where, x_m, dx, centre[0], cols)
    ycoords = object_pixels(label, where, y_m, dy, centre[1], rows)
    transformations.append(
        f"xcoords, ycoords: (translation[:, 0 and 1] - centre) / pixel + side / 2, centre"
        f" ({centre[0]:.6g}, {centre[1]:.6g}) m, object {rows}x{cols}"
    )
    datasets = {
        c.DIFFRACTION: f"{data} (intensities, counts)",
        c.XCOORDS: f"{where}[:, 0] (m)",
        c.YCOORDS: f"{where}[:, 1] (m)",
        c.PROBE: f"{PROBE} (complex)",
        c.OBJECT: object_note,
        "distance": f"{DISTANCE} (m)",
        "pixel": f"{X_PIXEL}, {Y_PIXEL} (m)",
        "energy": f"{ENERGY} (J)",
    }
    small: dict[str, Any] = {c.XCOORDS: xcoords, c.YCOORDS: ycoords, c.PROBE: probe, c.OBJECT: obj}
    return HDF5Source(
        label,
        frames,
        small,
        datasets,
        transformations=transformations,
        notes=notes,
        provenance={"source_format": FORMAT},
    )
