"""CXI files (versions 1.4 to 1.6, as beamlines, ptychodus and cdtools write them) as
fixture sources.

Read: the intensities ``(N, H, W)`` at the first of :data:`DATA`; the translations
``(N, 3)`` in metres at the first of :data:`TRANSLATION` (x and y are columns 0 and 1, as
ptychodus reads them); the detector distance and pixel sizes and the source energy (J),
which give the object pixel ``lambda * z / (N * p)`` on each axis, unless the file states
the pixel its object was reconstructed on (ptychodus does, under :data:`PTYCHODUS`).

The probe and the object are told apart by content, never by position alone: the probe
is the illumination (:data:`PROBE`) or an image of the detector's shape, and the object
an image larger than the probe. A ptychodus file keeps its probe at ``image_1`` and its
object at ``image_2``; other writers keep an object guess at ``image_1``. A file without
a probe takes one from ``--probe FILE``, or one estimated from its patterns
(:func:`estimated_probe`); a file without an object gets a unit-amplitude one.

Positions become fixture coordinates with :func:`..geometry.to_pixels`, the probe
placed where ptychodus places it; the object's centre is the file's (ptychodus' own
``object_center_*_m``), else 0 for a file's own object and the middle of the scan for a
made one.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..contract import ContractError
from ..geometry import ELECTRON_VOLT, Geometry, record
from .hdf5 import Frames, HDF5Source, hdf5_frames, object_pixels, single_mode, unit_object

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .base import Request
    from .hdf5read import H5Reader

FORMAT = "cxi"
ENTRY = "/entry_1"
DATA = ("/entry_1/data_1/data", "/entry_1/instrument_1/detector_1/data")
TRANSLATION = ("/entry_1/sample_1/geometry_1/translation", "/entry_1/data_1/translation")
DETECTOR = "/entry_1/instrument_1/detector_1"
DISTANCE = f"{DETECTOR}/distance"
X_PIXEL = f"{DETECTOR}/x_pixel_size"
Y_PIXEL = f"{DETECTOR}/y_pixel_size"
ENERGY = "/entry_1/instrument_1/source_1/energy"
PROBE = "/entry_1/instrument_1/source_1/illumination"
#: Where ptychodus keeps what CXI has no name for: the object's centre and pixel.
PTYCHODUS = "/entry_1/ptychodus"
_IMAGE = re.compile(r"image_(\d+)")


def is_cxi(reader: H5Reader) -> bool:
    """Whether the file holds CXI intensities at one of :data:`DATA`."""
    return any(reader.has(name) for name in DATA)


recognises = is_cxi


def read_source(reader: H5Reader, request: Request) -> HDF5Source:
    """The CXI file of ``request``, open in ``reader``."""
    request.refuse(
        "--diffraction", "is a CXI file, which holds its own patterns; drop --diffraction"
    )
    request.refuse(
        "--geometry",
        f"is a CXI file, which holds its own geometry ({DISTANCE}, {X_PIXEL}, {ENERGY});"
        " drop --geometry",
    )
    return cxi_source(reader, request.label, request.probe)


def positions(reader: H5Reader, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The scan's positions in fixture coordinates (the probe and object are read too)."""
    source = cxi_source(reader, label, None)
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


def translations(reader: H5Reader, label: str, count: int | None) -> tuple[str, NDArray[Any]]:
    """The dataset of the translations and their x, y in metres, ``(N, 2)``."""
    import numpy as np

    where = _first(reader, label, TRANSLATION, "translations")
    translation = reader.read(where, "iuf").astype(np.float64)
    if translation.ndim != 2 or translation.shape[1] != 3 or (
        count is not None and translation.shape[0] != count
    ):
        n = "N" if count is None else str(count)
        raise ContractError(
            label,
            where,
            f"{where!r} has shape {translation.shape} but ({n}, 3) is required: x, y, z in"
            " metres for each pattern",
        )
    return where, translation[:, :2]


def images(reader: H5Reader) -> list[str]:
    """The ``/entry_1/image_N/data`` datasets of the file, by N."""
    entry = reader.resolve(ENTRY)
    names = sorted(
        (int(match.group(1)), f"{ENTRY}/{key}/data")
        for key in (list(entry.keys()) if entry is not None and hasattr(entry, "keys") else [])
        if (match := _IMAGE.fullmatch(key))
    )
    return [name for _, name in names if reader.has(name)]


def probe_and_object(
    reader: H5Reader, detector: tuple[int, int] | None
) -> tuple[str | None, str | None]:
    """Which datasets hold the probe and the object, decided by content and shape.

    The probe is the illumination, else the image of the detector's shape (of the
    smallest shape, where no detector is known). The object is the largest image that is
    not the probe and is larger than it on both sides: an image of the probe's shape is
    never taken for the object.
    """
    candidates = images(reader)
    shapes = {name: tuple(reader.dataset(name, "c").shape[-2:]) for name in candidates}
    probe = PROBE if reader.has(PROBE) else None
    if probe is None:
        fits = [name for name in candidates if detector is None or shapes[name] == detector]
        if fits:
            probe = min(fits, key=lambda name: shapes[name][0] * shapes[name][1])
    held = None if probe is None else reader.resolve(probe)
    probe_shape = (
        detector if probe is None else tuple(reader.dataset(probe, "c").shape[-2:])
    ) or (0, 0)
    objects = [
        name
        for name in candidates
        if reader.resolve(name) != held
        and shapes[name][0] > probe_shape[0]
        and shapes[name][1] > probe_shape[1]
    ]
    chosen = max(objects, key=lambda name: shapes[name][0] * shapes[name][1], default=None)
    return probe, chosen


def ptychodus_pair(reader: H5Reader, label: str, what: str) -> tuple[float, float] | None:
    """ptychodus' ``object_{what}_{x,y}`` (or ``_width``/``_height``) in metres, if kept."""
    names = {
        "center": (f"{PTYCHODUS}/object_center_x_m", f"{PTYCHODUS}/object_center_y_m"),
        "pixel": (f"{PTYCHODUS}/object_pixel_width_m", f"{PTYCHODUS}/object_pixel_height_m"),
    }[what]
    if not all(reader.has(name) for name in names):
        return None
    values = []
    for name in names:
        value = reader.read(name, "iuf").reshape(-1)
        number = float(value[0]) if value.size == 1 else math.nan
        if not math.isfinite(number) or (what == "pixel" and number <= 0):
            want = "one number > 0 (metres)" if what == "pixel" else "one finite number (metres)"
            raise ContractError(
                label, name, f"{name!r} holds {value.tolist()!r} but {want} is required"
            )
        values.append(number)
    return values[0], values[1]


def geometry_of(reader: H5Reader) -> Geometry:
    """The file's geometry: the energy (J, as CXI keeps it) in eV, distance, pixel."""
    energy_j = reader.scalar(ENERGY)
    pixel = (reader.scalar(X_PIXEL), reader.scalar(Y_PIXEL))
    return Geometry(energy_j / ELECTRON_VOLT, reader.scalar(DISTANCE), pixel)


def cxi_source(reader: H5Reader, label: str, probe_file: Path | None) -> HDF5Source:
    """The CXI file open in ``reader``; ``probe_file`` gives the probe it lacks."""
    import numpy as np

    frames = patterns(reader, label)
    data = frames.name
    n, h, w = frames.shape
    where, xy = translations(reader, label, n)
    geometry = geometry_of(reader)
    stated_pixel = ptychodus_pair(reader, label, "pixel")
    dx, dy = stated_pixel or geometry.object_pixel_m((h, w))
    if stated_pixel:
        pixel_rule = f"object pixel: {dx:.6g} m (x), {dy:.6g} m (y), as {PTYCHODUS} states it"
    else:
        pixel_rule = (
            f"object pixel: lambda*z/(N*p) = {dx:.6g} m (x), {dy:.6g} m (y), from energy"
            f" {geometry.energy_ev * ELECTRON_VOLT:.6g} J (lambda {geometry.wavelength_m:.6g}"
            f" m), distance {geometry.distance_m:.6g} m, pixels {geometry.pixel_m[0]:.6g} x"
            f" {geometry.pixel_m[1]:.6g} m, detector {h}x{w}"
        )
    transformations = [pixel_rule]
    notes: list[str] = []
    probe_at, object_at = probe_and_object(reader, (h, w))
    probe: NDArray[Any] | None
    if probe_at is not None:
        if probe_file is not None:
            raise ContractError(
                label, probe_at, f"holds its own probe at {probe_at!r}; drop --probe"
            )
        probe = single_mode(label, probe_at, reader.read(probe_at, "c"), "probe")
        probe_note = f"{probe_at} (complex)"
    elif probe_file is not None:
        probe = probe_from_file(probe_file)
        probe_note = f"{probe_file} (complex, given with --probe)"
        notes.append(f"{label} holds no probe: {c.PROBE} is read from {probe_file}")
    else:
        probe = None
        probe_note = "none in the file and none given: estimated from the patterns"
    if object_at is not None:
        obj = single_mode(label, object_at, reader.read(object_at, "c"), "object")
        centre = ptychodus_pair(reader, label, "center") or (0.0, 0.0)
        object_note = f"{object_at} (complex)"
    else:
        x_m, y_m = xy[:, 0], xy[:, 1]
        centre = ((x_m.min() + x_m.max()) / 2, (y_m.min() + y_m.max()) / 2)
        span = ((x_m.max() - x_m.min()) / dx, (y_m.max() - y_m.min()) / dy)
        obj = np.ones(unit_object(span, (h, w)), dtype=np.complex64)
        object_note = "none in the file: a unit-amplitude object was made"
        transformations.append(
            f"{c.OBJECT}: made, unit amplitude, {obj.shape[0]}x{obj.shape[1]}: the scan's"
            " extent plus the probe's, centred on the scan (the file has no object guess)"
        )
        notes.append(
            f"{label} has no object guess: {c.OBJECT} is a unit-amplitude object covering"
            " the scan"
        )
    rows, cols = obj.shape
    xcoords = object_pixels(label, where, xy[:, 0], dx, centre[0], cols, w)
    ycoords = object_pixels(label, where, xy[:, 1], dy, centre[1], rows, h)
    transformations.append(
        f"xcoords, ycoords: (translation[:, 0 and 1] - centre) / pixel + (object side - probe"
        f" side) / 2 + probe side // 2, centre ({centre[0]:.6g}, {centre[1]:.6g}) m, object"
        f" {rows}x{cols}: the probe where ptychodus places it"
    )
    datasets = {
        c.DIFFRACTION: f"{data} (intensities, counts)",
        c.XCOORDS: f"{where}[:, 0] (m)",
        c.YCOORDS: f"{where}[:, 1] (m)",
        c.PROBE: probe_note,
        c.OBJECT: object_note,
        "distance": f"{DISTANCE} (m)",
        "pixel": f"{X_PIXEL}, {Y_PIXEL} (m)",
        "energy": f"{ENERGY} (J)",
    }
    small: dict[str, Any] = {c.XCOORDS: xcoords, c.YCOORDS: ycoords, c.OBJECT: obj}
    if probe is not None:
        small[c.PROBE] = probe
    # Without a probe, HDF5Source estimates one from the patterns it takes.
    return HDF5Source(
        label,
        frames,
        small,
        datasets,
        transformations=transformations,
        notes=notes,
        provenance={"source_format": FORMAT},
        geometry=record(
            geometry,
            (h, w),
            f"the source: {ENERGY}, {DISTANCE}, {X_PIXEL}, {Y_PIXEL}",
            object_pixel_m=(dx, dy),
            object_center_m=(float(centre[0]), float(centre[1])),
        ),
    )


def probe_from_file(path: Path) -> NDArray[Any]:
    """The probe of ``--probe``: an NPY of one complex 2-D array, or an NPZ whose
    ``probeGuess`` (or ``probe``) is one; leading axes of length 1 are dropped. Nothing is
    unpickled."""
    import numpy as np

    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ContractError(path, None, f"{what} but the probe file of --probe is required")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ContractError(path, None, f"is not an NPY file ({exc})") from None
        key = "the array"
    else:
        from ..npz.reader import NpzReader

        with NpzReader(path) as npz:
            key = next((name for name in (c.PROBE, "probe") if name in npz), "")
            if not key:
                raise ContractError(
                    path,
                    c.PROBE,
                    f"has no {c.PROBE!r} (or 'probe'); expected a complex (H, W) probe",
                )
            array = npz.read(key)
    if array.dtype.kind != "c":
        raise ContractError(
            path, key, f"{key!r} has dtype {array.dtype} but a complex probe is required"
        )
    return single_mode(str(path), key, np.array(array), "probe")
