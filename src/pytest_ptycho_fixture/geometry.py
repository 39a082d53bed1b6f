"""The experiment's geometry: photon energy, detector distance and detector pixel, and
the object pixel they give, ``lambda * z / (N * p)``.

A fixture's geometry is recorded in its sidecar (``geometry``), never in the NPZ: the
fixture's arrays, and so every committed ``content_sha256``, are the same with or
without it. A source that holds a geometry (CXI, ptychodus products) gives its own; an
NPZ source is given one by ``ptycho_fixture_geometry`` (``--geometry``); the built-in
source declares :data:`BUILTIN`.

Units are those the field writes: the energy in eV (CXI files store joules), lengths in
metres. Pixel sizes are ``(x, y)``: across the W columns, then down the H rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Planck's constant (J s) and the speed of light (m/s), both exact in the SI.
PLANCK = 6.62607015e-34
LIGHT_SPEED = 299792458.0
#: One electronvolt in joules (exact).
ELECTRON_VOLT = 1.602176634e-19


def wavelength_m(energy_ev: float) -> float:
    """The wavelength of a photon of ``energy_ev``: ``h c / (E e)``."""
    return PLANCK * LIGHT_SPEED / (energy_ev * ELECTRON_VOLT)


@dataclass(frozen=True)
class Geometry:
    """A far-field ptychography geometry: what places a fixture in metres."""

    energy_ev: float
    distance_m: float
    #: The detector pixel, ``(x, y)``.
    pixel_m: tuple[float, float]

    @property
    def wavelength_m(self) -> float:
        return wavelength_m(self.energy_ev)

    def object_pixel_m(self, detector: tuple[int, int]) -> tuple[float, float]:
        """The object-plane pixel ``(x, y)`` for a ``(H, W)`` detector:
        ``lambda z / (W p_x)`` across and ``lambda z / (H p_y)`` down."""
        rows, cols = detector
        scale = self.wavelength_m * self.distance_m
        return scale / (cols * self.pixel_m[0]), scale / (rows * self.pixel_m[1])


#: The geometry declared for the built-in synthetic scan: 8 keV photons, a detector 2 m
#: away with 75 um pixels (an Eiger's). On its 64 x 64 detector the object pixel is then
#: 64.6 nm. The scan is simulated in pixels; these values only place it in metres.
BUILTIN = Geometry(energy_ev=8000.0, distance_m=2.0, pixel_m=(75e-6, 75e-6))


def to_pixels(
    metres: NDArray[Any], pixel_m: float, center_m: float, object_side: int, probe_side: int
) -> NDArray[Any]:
    """Fixture coordinates (object pixels) of positions in metres, in ptychodus' frame.

    ptychodus maps a position to ``(x_m - c) / p + (W_obj - 1) / 2`` and puts the probe's
    pixel ``(W_probe - 1) / 2`` there; the fixture puts the probe's pixel
    ``W_probe // 2`` at its coordinate. The same placement of the probe on the object is
    then ``(x_m - c) / p + (W_obj - W_probe) / 2 + W_probe // 2``: ``(x_m - c) / p +
    W_obj / 2`` for an even probe.
    """
    return (metres - center_m) / pixel_m + (object_side - probe_side) / 2 + probe_side // 2


def to_metres(
    pixels: NDArray[Any], pixel_m: float, center_m: float, object_side: int, probe_side: int
) -> NDArray[Any]:
    """Positions in metres, in ptychodus' frame, of fixture coordinates: the inverse of
    :func:`to_pixels`."""
    return center_m + pixel_m * (pixels - (object_side - probe_side) / 2 - probe_side // 2)


def record(
    geometry: Geometry,
    detector: tuple[int, int],
    origin: str,
    *,
    object_pixel_m: tuple[float, float] | None = None,
    object_center_m: tuple[float, float] = (0.0, 0.0),
) -> dict[str, Any]:
    """The sidecar's ``geometry`` entry for a fixture of a ``(H, W)`` detector.

    ``object_pixel_m`` is the object pixel the positions were mapped with, where the
    source states one (a ptychodus product); by default ``lambda z / (N p)``.
    ``object_center_m`` is where the object's centre lies in the source's frame (0 unless
    the source says otherwise); ``origin`` says where the values came from.
    """
    pixel = object_pixel_m or geometry.object_pixel_m(detector)
    return {
        "photon_energy_eV": geometry.energy_ev,
        "wavelength_m": geometry.wavelength_m,
        "detector_distance_m": geometry.distance_m,
        "detector_pixel_size_m": list(geometry.pixel_m),
        "object_pixel_size_m": list(pixel),
        "object_center_m": list(object_center_m),
        "from": origin,
    }


def from_record(entry: Mapping[str, Any]) -> Geometry:
    """The :class:`Geometry` of a sidecar's ``geometry`` entry."""
    pixel = entry["detector_pixel_size_m"]
    return Geometry(
        float(entry["photon_energy_eV"]),
        float(entry["detector_distance_m"]),
        (float(pixel[0]), float(pixel[1])),
    )

