"""ptychodus product files (PtychoPINN's ``specs/data_contracts.md``) as fixture sources.

A product holds positions, probe and object but no patterns; those come from a second
file given with it (``--diffraction``): a CXI file (intensities at :data:`.cxi.DATA`)
or an NPZ (amplitudes under ``diffraction`` or ``diff3d``). Read from the product:
``probe_position_x_m``/``_y_m`` (m), ``probe`` (complex; one mode) and ``object``
(complex; one layer) with its ``center_x_m``/``center_y_m`` and ``pixel_width_m``/
``pixel_height_m``. Positions become object pixels as ptychodus'
``ObjectGeometry.map_coordinates_probe_to_object`` maps them:
``(x_m - center_x_m) / pixel_width_m + width_px / 2``, and likewise for y.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..contract import ContractError
from . import cxi
from .hdf5 import Frames, HDF5Source, object_pixels, single_mode
from .hdf5read import H5Reader, is_hdf5

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .base import Request

FORMAT = "ptychodus-product"
POSITIONS_X = "/probe_position_x_m"
POSITIONS_Y = "/probe_position_y_m"
PROBE = "/probe"
OBJECT = "/object"
OBJECT_ATTRS = ("center_x_m", "center_y_m", "pixel_width_m", "pixel_height_m")


def recognises(reader: H5Reader) -> bool:
    """Whether the file holds a product's positions."""
    return reader.has(POSITIONS_X)


def read_source(reader: H5Reader, request: Request) -> HDF5Source:
    """The product of ``request``, open in ``reader``, with its patterns from
    ``request.diffraction``."""
    if request.diffraction is None:
        raise ContractError(
            request.label,
            POSITIONS_X,
            "is a ptychodus product file, which holds no diffraction patterns; give"
            " them with --diffraction DATA.cxi or DATA.npz (in pytest: the"
            " ptycho_fixture_diffraction ini option)",
        )
    shown = request.diffraction_label or str(request.diffraction)
    return product_source(reader, request.label, request.diffraction, shown, request.layout)


def _attribute(reader: H5Reader, label: str, name: str, attr: str, *, positive: bool) -> float:
    node = reader.dataset(name, "c")
    value = node.attrs.get(attr)
    try:
        number = float(value) if value is not None and getattr(value, "size", 1) == 1 else None
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number) or (positive and number <= 0):
        want = "a finite number > 0" if positive else "a finite number"
        shown = repr(value) if number is None else f"{number:g}"
        raise ContractError(
            label,
            f"{name}@{attr}",
            f"'{name}@{attr}' is {shown} but {want} (metres) is required",
        )
    return number


def _metres(reader: H5Reader, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    import numpy as np

    x_m = reader.read(POSITIONS_X, "f").astype(np.float64)
    y_m = reader.read(POSITIONS_Y, "f").astype(np.float64)
    if x_m.ndim != 1 or y_m.shape != x_m.shape:
        raise ContractError(
            label,
            POSITIONS_Y,
            f"positions have shapes {x_m.shape} and {y_m.shape} but two (N,) arrays of one"
            " length are required",
        )
    return x_m, y_m


def _geometry(reader: H5Reader, label: str) -> tuple[float, float, float, float]:
    """The object's ``center_x_m``, ``center_y_m``, ``pixel_width_m``, ``pixel_height_m``."""
    cx, cy, px, py = (
        _attribute(reader, label, OBJECT, attr, positive=attr.startswith("pixel"))
        for attr in OBJECT_ATTRS
    )
    return cx, cy, px, py


def positions(reader: H5Reader, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The product's positions in object pixels, read without its patterns."""
    x_m, y_m = _metres(reader, label)
    rows, cols = reader.dataset(OBJECT, "c").shape[-2:]
    cx, cy, px, py = _geometry(reader, label)
    return (
        object_pixels(label, POSITIONS_X, x_m, px, cx, cols),
        object_pixels(label, POSITIONS_Y, y_m, py, cy, rows),
    )


def product_source(
    reader: H5Reader, label: str, diffraction: Path, shown: str, layout: str | None
) -> HDF5Source:
    """The product in ``reader`` with its patterns in ``diffraction`` (named ``shown``)."""

    x_m, y_m = _metres(reader, label)
    probe = single_mode(label, PROBE, reader.read(PROBE, "c"), "probe")
    obj = single_mode(label, OBJECT, reader.read(OBJECT, "c"), "object")
    cx, cy, px, py = _geometry(reader, label)
    rows, cols = obj.shape
    xcoords = object_pixels(label, POSITIONS_X, x_m, px, cx, cols)
    ycoords = object_pixels(label, POSITIONS_Y, y_m, py, cy, rows)
    frames = _diffraction(label, diffraction, int(x_m.shape[0]), layout)
    if frames.count != x_m.shape[0]:
        raise ContractError(
            diffraction,
            frames.name,
            f"{frames.name!r} holds {frames.count} patterns but the product {label} has"
            f" {x_m.shape[0]} positions; expected the diffraction data of that scan",
        )
    notes = [f"positions, probe and object from the product {label}; patterns from {shown}"]
    probe_px = [
        reader.dataset(PROBE, "c").attrs.get(attr) for attr in ("pixel_width_m", "pixel_height_m")
    ]
    if all(value is not None for value in probe_px) and (
        not math.isclose(float(probe_px[0]), px) or not math.isclose(float(probe_px[1]), py)
    ):
        notes.append(
            f"the probe's pixel ({float(probe_px[0]):g} x {float(probe_px[1]):g} m) differs from"
            f" the object's ({px:g} x {py:g} m); the fixture keeps both arrays as they are"
        )
    kind = "intensities, counts" if frames.intensity else "amplitudes"
    datasets = {
        c.DIFFRACTION: f"{shown}:{frames.name} ({kind})",
        c.XCOORDS: f"{POSITIONS_X} (m)",
        c.YCOORDS: f"{POSITIONS_Y} (m)",
        c.PROBE: f"{PROBE} (complex)",
        c.OBJECT: f"{OBJECT} (complex), @center_x_m, @center_y_m, @pixel_width_m,"
        " @pixel_height_m (m)",
    }
    transformations = [
        (
            f"xcoords, ycoords: (probe_position_m - center_m) / pixel_m + side / 2, centre"
            f" ({cx:.6g}, {cy:.6g}) m, pixel {px:.6g} x {py:.6g} m, object {rows}x{cols}"
            " (ptychodus' map_coordinates_probe_to_object)"
        )
    ]
    small: dict[str, Any] = {c.XCOORDS: xcoords, c.YCOORDS: ycoords, c.PROBE: probe, c.OBJECT: obj}
    return HDF5Source(
        label,
        frames,
        small,
        datasets,
        transformations=transformations,
        notes=notes,
        provenance={"source_format": FORMAT, "source_diffraction": shown},
    )


def _diffraction(label: str, path: Path, n: int, layout: str | None) -> Frames:
    """The patterns of a product: a CXI file's intensities or an NPZ's amplitudes."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ContractError(
            path, None, f"{what} but the diffraction file of the product {label} is required"
        )
    if is_hdf5(path):
        with H5Reader(path) as reader:
            if not cxi.is_cxi(reader):
                raise ContractError(
                    path,
                    None,
                    f"is an HDF5 file without CXI intensities at {cxi.DATA[0]}; expected the"
                    f" diffraction data of the product {label} as CXI or NPZ",
                )
            return cxi.patterns(reader, str(path))
    from ..npz.reader import NpzReader

    with NpzReader(path) as npz:
        key = c.DIFFRACTION if c.DIFFRACTION in npz else c.DIFF3D
        if key not in npz:
            raise ContractError(
                path,
                c.DIFFRACTION,
                f"has neither {c.DIFFRACTION!r} nor {c.DIFF3D!r}; expected the amplitudes of"
                f" the product {label}",
            )
        member = npz.member(key)
        c.check_diffraction_dtype(path, key, member.dtype)
        decided = c.decide_layout(path, member.shape, n, layout)
        return Frames(path, key, decided, False, tuple(member.shape), member.dtype.str)
