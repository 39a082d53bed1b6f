"""ptychodus product files as fixture sources, in each container ptychodus 1.7 writes
them: HDF5 (``product.h5``), CXI (probe at ``image_1``, object at ``image_2``, the rest
under ``/entry_1/ptychodus``) and NPZ.

A product holds positions in metres, a probe, an object with its centre and pixel, the
detector distance and the photon energy, but no patterns. Those come from a second file
given with it (``--diffraction``), in any of the forms ptychodus and PtychoPINN write:
CXI intensities (:data:`.cxi.DATA`), ptychodus' ``diffraction.h5`` (``/patterns``,
intensities, with ``/indexes``), ptychodus' NPZ (``patterns``, intensities, with
``indexes``), or an NPZ of amplitudes (``diffraction`` or ``diff3d``). Where the patterns
carry scan indexes, positions are paired with them by index, as ptychodus pairs them;
otherwise by order.

Positions become fixture coordinates with :func:`..geometry.to_pixels`, the probe
placed on the object where ptychodus places it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..contract import ContractError
from ..geometry import ELECTRON_VOLT, Geometry, record, wavelength_m
from . import cxi
from .hdf5 import Frames, HDF5Source, object_pixels, single_mode
from .hdf5read import H5Reader, is_hdf5

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..npz.reader import NpzReader
    from .base import Request

FORMAT = "ptychodus-product"
CXI_FORMAT = "ptychodus-product-cxi"
NPZ_FORMAT = "ptychodus-product-npz"
POSITIONS_X = "/probe_position_x_m"
POSITIONS_Y = "/probe_position_y_m"
INDEXES = "/probe_position_indexes"
PROBE = "/probe"
OBJECT = "/object"
OBJECT_ATTRS = ("center_x_m", "center_y_m", "pixel_width_m", "pixel_height_m")
DISTANCE_ATTR = "detector_object_distance_m"
#: The energy's name, and the name ptychodus read before it.
ENERGY_ATTRS = ("photon_energy_eV", "probe_energy_eV")
#: ptychodus' ``diffraction.h5``: the patterns, their scan indexes, the detector pixel.
PATTERNS = "/patterns"
PATTERN_INDEXES = "/indexes"
PATTERN_PIXEL_ATTRS = ("detector_pixel_width_m", "detector_pixel_height_m")
#: Where a ptychodus CXI product keeps what CXI has no name for.
CXI_INDEXES = f"{cxi.PTYCHODUS}/probe_position_indexes"


@dataclass
class Product:
    """What a product file holds, whatever its container."""

    format: str
    x_m: NDArray[Any]
    y_m: NDArray[Any]
    #: Scan indexes of the positions; ``None`` where the file keeps none.
    indexes: NDArray[Any] | None
    probe: NDArray[Any]
    obj: NDArray[Any]
    center_m: tuple[float, float]
    #: The object pixel ``(x, y)`` the positions are mapped with.
    pixel_m: tuple[float, float]
    distance_m: float | None
    energy_ev: float | None
    #: Fixture key (and distance, energy) -> where it was read, with its units.
    datasets: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- recognising and reading each container --------------------------------------------


def recognises(reader: H5Reader) -> bool:
    """Whether the HDF5 file holds a product's positions."""
    return reader.has(POSITIONS_X)


def recognises_cxi(reader: H5Reader) -> bool:
    """Whether the file is a CXI product: images and translations, but no intensities."""
    return not cxi.is_cxi(reader) and bool(cxi.images(reader))


def recognises_npz(npz: NpzReader) -> bool:
    """Whether the NPZ holds a ptychodus product's positions and object."""
    return POSITIONS_X[1:] in npz and OBJECT[1:] in npz


def read_source(reader: H5Reader, request: Request) -> HDF5Source:
    """The HDF5 product of ``request``, with its patterns from ``request.diffraction``."""
    return product_source(hdf5_product(reader, request.label), request)


def read_cxi_source(reader: H5Reader, request: Request) -> HDF5Source:
    """The CXI product of ``request``, with its patterns from ``request.diffraction``."""
    return product_source(cxi_product(reader, request.label), request)


def read_npz_source(npz: NpzReader, request: Request) -> HDF5Source:
    """The NPZ product of ``request``, with its patterns from ``request.diffraction``."""
    return product_source(npz_product(npz, request.label), request)


def positions(reader: H5Reader, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The HDF5 product's positions in fixture coordinates, read without its patterns."""
    return pixels(hdf5_product(reader, label), label)


def cxi_positions(reader: H5Reader, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The CXI product's positions in fixture coordinates."""
    return pixels(cxi_product(reader, label), label)


def npz_positions(npz: NpzReader, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The NPZ product's positions in fixture coordinates."""
    return pixels(npz_product(npz, label), label)


def pixels(product: Product, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The product's positions in fixture coordinates."""
    rows, cols = product.obj.shape
    probe_rows, probe_cols = product.probe.shape
    (cx, cy), (px, py) = product.center_m, product.pixel_m
    return (
        object_pixels(label, POSITIONS_X, product.x_m, px, cx, cols, probe_cols),
        object_pixels(label, POSITIONS_Y, product.y_m, py, cy, rows, probe_rows),
    )


def _number(value: Any, label: str, where: str, *, positive: bool, unit: str = "metres") -> float:
    try:
        number = float(value) if value is not None and getattr(value, "size", 1) == 1 else None
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number) or (positive and number <= 0):
        want = "a finite number > 0" if positive else "a finite number"
        shown = repr(value) if number is None else f"{number:g}"
        raise ContractError(label, where, f"'{where}' is {shown} but {want} ({unit}) is required")
    return number


def _metres(x_m: NDArray[Any], y_m: NDArray[Any], label: str) -> None:
    if x_m.ndim != 1 or y_m.shape != x_m.shape:
        raise ContractError(
            label,
            POSITIONS_Y,
            f"positions have shapes {x_m.shape} and {y_m.shape} but two (N,) arrays of one"
            " length are required",
        )


def hdf5_product(reader: H5Reader, label: str) -> Product:
    """The product in an HDF5 file, as ptychodus' ``H5ProductFileIO`` writes it."""
    import numpy as np

    x_m = reader.read(POSITIONS_X, "f").astype(np.float64)
    y_m = reader.read(POSITIONS_Y, "f").astype(np.float64)
    _metres(x_m, y_m, label)
    probe = single_mode(label, PROBE, reader.read(PROBE, "c"), "probe")
    obj = single_mode(label, OBJECT, reader.read(OBJECT, "c"), "object")
    attrs = reader.dataset(OBJECT, "c").attrs
    cx, cy, px, py = (
        _number(
            attrs.get(attr), label, f"{OBJECT}@{attr}", positive=attr.startswith("pixel")
        )
        for attr in OBJECT_ATTRS
    )
    root = reader.resolve("/").attrs
    distance = root.get(DISTANCE_ATTR)
    energy_name = next((name for name in ENERGY_ATTRS if name in root), ENERGY_ATTRS[0])
    energy = root.get(energy_name)
    indexes = reader.read(INDEXES, "iu") if reader.has(INDEXES) else None
    notes: list[str] = []
    probe_px = [reader.dataset(PROBE, "c").attrs.get(a) for a in OBJECT_ATTRS[2:]]
    if all(value is not None for value in probe_px) and (
        not math.isclose(float(probe_px[0]), px) or not math.isclose(float(probe_px[1]), py)
    ):
        notes.append(
            f"the probe's pixel ({float(probe_px[0]):g} x {float(probe_px[1]):g} m) differs from"
            f" the object's ({px:g} x {py:g} m); the fixture keeps both arrays as they are"
        )
    return Product(
        FORMAT,
        x_m,
        y_m,
        indexes,
        probe,
        obj,
        (cx, cy),
        (px, py),
        None if distance is None else _number(distance, label, f"/@{DISTANCE_ATTR}", positive=True),
        None
        if energy is None
        else _number(energy, label, f"/@{energy_name}", positive=True, unit="eV"),
        {
            c.XCOORDS: f"{POSITIONS_X} (m)",
            c.YCOORDS: f"{POSITIONS_Y} (m)",
            c.PROBE: f"{PROBE} (complex)",
            c.OBJECT: f"{OBJECT} (complex), @center_x_m, @center_y_m, @pixel_width_m,"
            " @pixel_height_m (m)",
            "distance": f"/@{DISTANCE_ATTR} (m)",
            "energy": f"/@{energy_name} (eV)",
        },
        notes,
    )


def cxi_product(reader: H5Reader, label: str) -> Product:
    """The product in a CXI file, as ptychodus' ``CXIProductFileIO`` writes it."""
    import numpy as np

    where, xy = cxi.translations(reader, label, None)
    probe_at, object_at = cxi.probe_and_object(reader, None)
    if probe_at is None or object_at is None:
        missing = "a probe" if probe_at is None else "an object larger than its probe"
        raise ContractError(
            label,
            "/entry_1/image_2/data",
            f"is a CXI file without intensities, read as a ptychodus product, but it holds"
            f" no {missing} among {', '.join(cxi.images(reader)) or 'its images'}; expected"
            " the probe at /entry_1/image_1/data and the object at /entry_1/image_2/data",
        )
    probe = single_mode(label, probe_at, reader.read(probe_at, "c"), "probe")
    obj = single_mode(label, object_at, reader.read(object_at, "c"), "object")
    centre = cxi.ptychodus_pair(reader, label, "center")
    pixel = cxi.ptychodus_pair(reader, label, "pixel")
    if centre is None or pixel is None:
        raise ContractError(
            label,
            cxi.PTYCHODUS,
            f"is a CXI product without the object's centre and pixel under {cxi.PTYCHODUS}"
            " (object_center_x_m, object_center_y_m, object_pixel_width_m,"
            " object_pixel_height_m), which place its positions on the object",
        )
    distance = cxi.DISTANCE if reader.has(cxi.DISTANCE) else None
    energy = cxi.ENERGY if reader.has(cxi.ENERGY) else None
    indexes = reader.read(CXI_INDEXES, "iu") if reader.has(CXI_INDEXES) else None
    return Product(
        CXI_FORMAT,
        np.ascontiguousarray(xy[:, 0]),
        np.ascontiguousarray(xy[:, 1]),
        indexes,
        probe,
        obj,
        centre,
        pixel,
        None if distance is None else reader.scalar(distance),
        None if energy is None else reader.scalar(energy) / ELECTRON_VOLT,
        {
            c.XCOORDS: f"{where}[:, 0] (m)",
            c.YCOORDS: f"{where}[:, 1] (m)",
            c.PROBE: f"{probe_at} (complex)",
            c.OBJECT: f"{object_at} (complex), {cxi.PTYCHODUS}/object_center_*_m and"
            " object_pixel_*_m (m)",
            "distance": f"{cxi.DISTANCE} (m)",
            "energy": f"{cxi.ENERGY} (J)",
        },
    )


def npz_product(npz: NpzReader, label: str) -> Product:
    """The product in an NPZ, as ptychodus' ``NPZProductFileIO`` writes it."""
    import numpy as np

    def scalar(key: str, *, positive: bool = True) -> float:
        if key not in npz:
            raise ContractError(
                label, key, f"is a ptychodus NPZ product without {key!r}, which ptychodus requires"
            )
        unit = "eV" if key.endswith("_eV") else "metres"
        return _number(npz.read(key), label, key, positive=positive, unit=unit)

    def array(key: str, kind: str) -> NDArray[Any]:
        value = npz.read(key)
        if value.dtype.kind not in kind:
            raise ContractError(label, key, f"{key!r} has dtype {value.dtype} but numbers are required")
        return value

    x_m = array(POSITIONS_X[1:], "iuf").astype(np.float64)
    y_m = array(POSITIONS_Y[1:], "iuf").astype(np.float64)
    _metres(x_m, y_m, label)
    probe = single_mode(label, "probe", array("probe", "c"), "probe")
    obj = single_mode(label, "object", array("object", "c"), "object")
    indexes = array(INDEXES[1:], "iu") if INDEXES[1:] in npz else None
    return Product(
        NPZ_FORMAT,
        x_m,
        y_m,
        indexes,
        probe,
        obj,
        (scalar("object_center_x_m", positive=False), scalar("object_center_y_m", positive=False)),
        (scalar("object_pixel_width_m"), scalar("object_pixel_height_m")),
        scalar(DISTANCE_ATTR),
        scalar(ENERGY_ATTRS[0]),
        {
            c.XCOORDS: "probe_position_x_m (m)",
            c.YCOORDS: "probe_position_y_m (m)",
            c.PROBE: "probe (complex)",
            c.OBJECT: "object (complex), object_center_*_m, object_pixel_*_m (m)",
            "distance": f"{DISTANCE_ATTR} (m)",
            "energy": f"{ENERGY_ATTRS[0]} (eV)",
        },
    )


# -- the product with its patterns ------------------------------------------------------


@dataclass(frozen=True)
class Patterns:
    """A product's patterns: where they are, their scan indexes, their detector pixel."""

    frames: Frames
    indexes: NDArray[Any] | None
    pixel_m: tuple[float, float] | None
    #: Where the detector pixel was read, if it was.
    pixel_from: str = ""


def product_source(product: Product, request: Request) -> HDF5Source:
    """The fixture source of ``product``, its patterns in ``request.diffraction``."""
    label = request.label
    for option in ("--geometry", "--probe"):
        what = "geometry (its distance and energy)" if option == "--geometry" else "probe"
        request.refuse(option, f"is a ptychodus product, which holds its own {what}; drop {option}")
    if request.diffraction is None:
        raise ContractError(
            label,
            POSITIONS_X,
            "is a ptychodus product file, which holds no diffraction patterns; give"
            " them with --diffraction DATA.cxi, diffraction.h5 or DATA.npz (in pytest: the"
            " ptycho_fixture_diffraction ini option)",
        )
    diffraction = request.diffraction
    shown = request.diffraction_label or str(diffraction)
    n = int(product.x_m.shape[0])
    found = patterns_of(label, diffraction, n, request.layout)
    frames = found.frames
    notes = [f"positions, probe and object from the product {label}; patterns from {shown}"]
    notes += product.notes
    if found.indexes is not None:
        order = _paired(product, found.indexes, label, shown)
        if order is not None:
            product.x_m, product.y_m = product.x_m[order], product.y_m[order]
            notes.append(f"positions paired with the patterns of {shown} by scan index")
    if frames.count != n:
        raise ContractError(
            diffraction,
            frames.name,
            f"{frames.name!r} holds {frames.count} patterns but the product {label} has"
            f" {n} positions; expected the diffraction data of that scan",
        )
    xcoords, ycoords = pixels(product, label)
    rows, cols = product.obj.shape
    (cx, cy), (px, py) = product.center_m, product.pixel_m
    kind = "intensities, counts" if frames.intensity else "amplitudes"
    datasets = {c.DIFFRACTION: f"{shown}:{frames.name} ({kind})", **product.datasets}
    transformations = [
        (
            f"xcoords, ycoords: (probe_position_m - center_m) / pixel_m + (object side - probe"
            f" side) / 2 + probe side // 2, centre ({cx:.6g}, {cy:.6g}) m, pixel {px:.6g} x"
            f" {py:.6g} m, object {rows}x{cols}: the probe where ptychodus'"
            " map_coordinates_probe_to_object and its patches place it"
        )
    ]
    geometry: dict[str, Any] = {}
    if product.distance_m is not None and product.energy_ev is not None:
        detector = frames.detector
        if found.pixel_m is not None:
            pixel, origin = found.pixel_m, f"the detector pixel from {shown}:{found.pixel_from}"
        else:
            # ptychodus' own inverse: the detector pixel of the object pixel it keeps.
            scale = wavelength_m(product.energy_ev) * product.distance_m
            pixel = (scale / (detector[1] * px), scale / (detector[0] * py))
            origin = "the detector pixel from lambda*z/(N*dx), the object pixel the product keeps"
        geometry = record(
            Geometry(product.energy_ev, product.distance_m, pixel),
            detector,
            f"the product: {product.datasets['distance']}, {product.datasets['energy']},"
            f" the object pixel it keeps; {origin}",
            object_pixel_m=(px, py),
            object_center_m=(cx, cy),
        )
    else:
        notes.append(f"the product {label} gives no detector distance or energy: no geometry")
    small: dict[str, Any] = {
        c.XCOORDS: xcoords,
        c.YCOORDS: ycoords,
        c.PROBE: product.probe,
        c.OBJECT: product.obj,
    }
    return HDF5Source(
        label,
        frames,
        small,
        datasets,
        transformations=transformations,
        notes=notes,
        provenance={"source_format": product.format, "source_diffraction": shown},
        geometry=geometry,
    )


def _paired(
    product: Product, pattern_indexes: NDArray[Any], label: str, shown: str
) -> NDArray[Any] | None:
    """The order of the product's positions that pairs them with the patterns by scan
    index (``None``: already in it); refused where the two hold other indexes."""
    import numpy as np

    mine = (
        np.arange(len(product.x_m)) if product.indexes is None else np.asarray(product.indexes)
    )
    theirs = np.asarray(pattern_indexes)
    if mine.shape == theirs.shape and np.array_equal(mine, theirs):
        return None
    if (
        mine.shape != theirs.shape
        or len(np.unique(mine)) != len(mine)
        or not np.array_equal(np.sort(mine), np.sort(theirs))
    ):
        raise ContractError(
            shown,
            PATTERN_INDEXES[1:],
            f"the patterns' scan indexes ({len(theirs)}, from {int(theirs.min(initial=0))} to"
            f" {int(theirs.max(initial=0))}) are not those of the product {label}'s positions"
            f" ({len(mine)}); ptychodus pairs them by index: expected the same indexes",
        )
    where = {int(index): k for k, index in enumerate(mine)}
    return np.array([where[int(index)] for index in theirs], dtype=np.intp)


def patterns_of(label: str, path: Path, n: int, layout: str | None) -> Patterns:
    """The patterns of a product in ``path``, in any of the forms of the module's doc."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ContractError(
            path, None, f"{what} but the diffraction file of the product {label} is required"
        )
    if is_hdf5(path):
        with H5Reader(path) as reader:
            if cxi.is_cxi(reader):
                frames = cxi.patterns(reader, str(path))
                pixel = None
                if reader.has(cxi.X_PIXEL) and reader.has(cxi.Y_PIXEL):
                    pixel = (reader.scalar(cxi.X_PIXEL), reader.scalar(cxi.Y_PIXEL))
                return Patterns(frames, None, pixel, f"{cxi.X_PIXEL}, {cxi.Y_PIXEL}")
            if reader.has(PATTERNS):
                return _diffraction_h5(reader, path)
            raise ContractError(
                path,
                None,
                f"is an HDF5 file without CXI intensities at {cxi.DATA[0]} or ptychodus'"
                f" {PATTERNS}; expected the diffraction data of the product {label} as CXI,"
                " diffraction.h5 or NPZ",
            )
    from ..npz.reader import NpzReader

    with NpzReader(path) as npz:
        if PATTERNS[1:] in npz:
            return _ptychodus_npz(npz, path)
        key = c.DIFFRACTION if c.DIFFRACTION in npz else c.DIFF3D
        if key not in npz:
            raise ContractError(
                path,
                c.DIFFRACTION,
                f"has neither {c.DIFFRACTION!r}, {c.DIFF3D!r} nor 'patterns'; expected the"
                f" amplitudes or ptychodus' intensities of the product {label}",
            )
        member = npz.member(key)
        c.check_diffraction_dtype(path, key, member.dtype)
        decided = c.decide_layout(path, member.shape, n, layout)
        frames = Frames(path, key, decided, False, tuple(member.shape), member.dtype.str)
        return Patterns(frames, None, None)


def _diffraction_h5(reader: H5Reader, path: Path) -> Patterns:
    """ptychodus' ``diffraction.h5``: ``/patterns`` with the detector pixel, ``/indexes``."""
    node = reader.dataset(PATTERNS)
    if node.ndim != 3:
        raise ContractError(
            path,
            PATTERNS,
            f"{PATTERNS!r} has shape {node.shape} but (N, H, W) intensities are required",
        )
    frames = Frames(path, PATTERNS, "NHW", True, tuple(node.shape), node.dtype.str)
    indexes = reader.read(PATTERN_INDEXES, "iu") if reader.has(PATTERN_INDEXES) else None
    values = [node.attrs.get(attr) for attr in PATTERN_PIXEL_ATTRS]
    pixel = None
    if all(value is not None for value in values):
        x, y = (
            _number(value, str(path), f"{PATTERNS}@{attr}", positive=True)
            for value, attr in zip(values, PATTERN_PIXEL_ATTRS)
        )
        pixel = (x, y)
    return Patterns(frames, indexes, pixel, f"{PATTERNS}@detector_pixel_*_m")


def _ptychodus_npz(npz: NpzReader, path: Path) -> Patterns:
    """ptychodus' NPZ of patterns: ``patterns`` (intensities) and ``indexes``."""
    member = npz.member(PATTERNS[1:])
    if len(member.shape) != 3 or member.dtype.kind not in "iuf":
        raise ContractError(
            path,
            "patterns",
            f"'patterns' has shape {member.shape} and dtype {member.dtype} but (N, H, W)"
            " intensities are required",
        )
    frames = Frames(path, "patterns", "NHW", True, tuple(member.shape), member.dtype.str)
    indexes = npz.read("indexes") if "indexes" in npz else None
    return Patterns(frames, indexes, None)
