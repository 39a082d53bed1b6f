"""What every export starts from: a fixture verified against its sidecar, with the
geometry that places it in metres."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..contract import ContractError
from ..geometry import Geometry, from_record, to_metres

if TYPE_CHECKING:
    from numpy.typing import NDArray


class Mismatch(Exception):
    """The fixture does not match its sidecar; ``str()`` says how."""


@dataclass(frozen=True)
class Exported:
    """A verified fixture and its geometry, in the units the other codes write."""

    path: Path
    arrays: Mapping[str, NDArray[Any]]
    metadata: Mapping[str, Any]
    geometry: Geometry
    #: The object pixel the fixture's coordinates are in, and the object's centre, in m.
    object_pixel_m: tuple[float, float]
    object_center_m: tuple[float, float]

    @property
    def detector(self) -> tuple[int, int]:
        rows, cols = self.arrays[c.PROBE].shape
        return int(rows), int(cols)

    def metres(self) -> tuple[NDArray[Any], NDArray[Any]]:
        """The positions in metres, in ptychodus' frame (:func:`..geometry.to_metres`)."""
        import numpy as np

        rows, cols = self.arrays[c.OBJECT].shape
        probe_rows, probe_cols = self.detector
        x = np.asarray(self.arrays[c.XCOORDS], dtype=np.float64)
        y = np.asarray(self.arrays[c.YCOORDS], dtype=np.float64)
        (px, py), (cx, cy) = self.object_pixel_m, self.object_center_m
        return to_metres(x, px, cx, cols, probe_cols), to_metres(y, py, cy, rows, probe_rows)

    def intensities(self) -> NDArray[Any]:
        """The patterns as detector intensities, ``amplitude ** 2`` in float32: what every
        other code's pattern files hold. In binary floating point the square root of a
        correctly rounded square is the number itself, so the amplitudes come back bit for
        bit."""
        import numpy as np

        amplitudes = np.asarray(self.arrays[c.DIFFRACTION], dtype=np.float32)
        return np.square(amplitudes)


def in_memory(build: Callable[[Any], None]) -> bytes:
    """The bytes of the HDF5 file ``build`` writes into a file object.

    Built in memory, then written to disk by Python: HDF5 2.0 crashes the process when a
    write of a chunked or compressed dataset fails (a full disk, a file size limit), and
    a failed write of bytes is an ``OSError`` like any other.
    """
    import io

    buffer = io.BytesIO()
    build(buffer)
    return buffer.getvalue()


def load(path: Path, sidecar: Path | None = None, geometry: Geometry | None = None) -> Exported:
    """The fixture at ``path``, verified against its sidecar (default: ``path`` with
    ``.json``), with the sidecar's geometry, or ``geometry`` where it records none.

    Raises :class:`Mismatch` when the fixture does not match its sidecar, and
    :class:`..contract.ContractError` for a geometry that is missing or given twice.
    """
    from ..npz.sidecar import check_against_sidecar

    checked = check_against_sidecar(path, sidecar)
    if checked.mismatch is not None:
        raise Mismatch(f"{path}: {checked.mismatch}; sidecar {checked.sidecar}; nothing was exported")
    loaded, expected, sidecar_path = checked.fixture, checked.expected, checked.sidecar
    entry = expected.get("geometry")
    if isinstance(entry, Mapping) and geometry is not None:
        raise ContractError(
            sidecar_path,
            "geometry",
            "records the fixture's geometry already; drop --geometry (or regenerate the"
            " fixture with another one)",
        )
    rows, cols = loaded.arrays[c.PROBE].shape
    if isinstance(entry, Mapping):
        try:
            chosen = from_record(entry)
            pixel = entry.get("object_pixel_size_m") or chosen.object_pixel_m((rows, cols))
            centre = entry.get("object_center_m") or (0.0, 0.0)
            object_pixel = (float(pixel[0]), float(pixel[1]))
            object_center = (float(centre[0]), float(centre[1]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise ContractError(
                sidecar_path,
                "geometry",
                "'geometry' is not a geometry entry (photon_energy_eV, detector_distance_m,"
                " detector_pixel_size_m); regenerate the fixture to rewrite it",
            ) from None
    elif geometry is not None:
        chosen = geometry
        object_pixel, object_center = geometry.object_pixel_m((rows, cols)), (0.0, 0.0)
    else:
        raise ContractError(
            sidecar_path,
            "geometry",
            "records no geometry, which places the fixture in metres; give one with"
            " --geometry energy_ev=E,distance_m=Z,pixel_m=P (or generate the fixture with it)",
        )
    return Exported(
        Path(path), loaded.arrays, expected, chosen, object_pixel, object_center
    )
