"""The fixture in pty-chi's conventions: what ``ptychi.api.task.PtychographyTask`` takes.

Five conversions, each a silent trap when missed:

1. **Intensities on pty-chi's scale.** pty-chi's far field is ``torch.fft.fft2`` without
   normalisation; the fixture's amplitudes are those of the orthonormal FFT. So the
   intensities are ``amplitude ** 2 * H * W``.
2. **The zero frequency.** The fixture's patterns have it at the centre (``fftshift``),
   so pty-chi's ``data_options.fft_shift`` must be true (its default).
3. **Positions.** pty-chi places the probe's centre, its pixel ``(H - 1) / 2``, at
   ``position + origin`` on the object, with ``origin = round(shape / 2) - 0.5`` of the
   object it is given; the fixture places the probe's pixel ``H // 2`` at its
   coordinate. So ``position = coordinate - 0.5 - origin`` (for an even probe), rows and
   columns apart: ``probe_position_y_px`` from ``ycoords``, ``_x_px`` from ``xcoords``.
   Half a pixel off leaves the loss near where it was and the object 3.5% wrong.
4. **Shapes.** The object is ``(slices, Ho, Wo)`` and the probe ``(opr modes,
   incoherent modes, H, W)``: ``(1, Ho, Wo)`` and ``(1, 1, H, W)`` here.
5. **No rescaling of a fixed probe.** By default pty-chi rescales the probe to the data
   in its first epoch and trades scale between object and probe every few epochs, even
   when the probe is not optimised; :meth:`PtychiInputs.configure` turns both off then.

This module does not import pty-chi: :meth:`PtychiInputs.configure` sets the option
attributes on the options object it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import contract as c

if TYPE_CHECKING:
    from .tensors import PtychoTensors

_A = TypeVar("_A")


def position_origin(object_shape: tuple[int, int]) -> tuple[float, float]:
    """pty-chi's ``pos_origin_coords`` for an object of ``(Ho, Wo)``:
    ``round(shape / 2) - 0.5``, rounding half to even as torch does."""
    rows, cols = object_shape
    return float(round(rows / 2)) - 0.5, float(round(cols / 2)) - 0.5


def probe_offset(probe_side: int) -> float:
    """What pty-chi's position is below the fixture's coordinate, besides the origin:
    the fixture's probe centre ``side // 2`` less pty-chi's ``(side - 1) / 2``."""
    return probe_side // 2 - (probe_side - 1) / 2


@dataclass(frozen=True)
class PtychiInputs(Generic[_A]):
    """The fixture as pty-chi takes it: numpy arrays, or torch tensors on the device of
    the tensors it was made from."""

    #: ``(N, H, W)`` float32 intensities on pty-chi's scale.
    diffraction_data: _A
    #: ``(1, Ho, Wo)`` complex64: the fixture's object (the true one, for a simulation).
    object_data: _A
    #: ``(1, 1, H, W)`` complex64.
    probe_data: _A
    #: ``(N,)`` float64, in object pixels from pty-chi's origin.
    probe_position_y_px: _A
    probe_position_x_px: _A
    #: ``(y, x)``: the origin the positions are measured from, that of an object of the
    #: fixture's object's shape. An object of another shape has another origin.
    position_origin: tuple[float, float]
    #: The object pixel ``(x, y)`` in metres, where the sidecar records the geometry.
    object_pixel_size_m: tuple[float, float] | None = None

    def task_kwargs(self) -> dict[str, _A]:
        """The keyword arguments of ``PtychographyTask(options, **...)``."""
        return {
            "diffraction_data": self.diffraction_data,
            "object_data": self.object_data,
            "probe_data": self.probe_data,
            "probe_position_x_px": self.probe_position_x_px,
            "probe_position_y_px": self.probe_position_y_px,
        }

    def configure(self, options: Any) -> Any:
        """Set pty-chi ``options`` (``LSQMLOptions`` and the like) as the fixture needs:
        ``fft_shift``, the object pixel where known, and, when the probe is not
        optimisable, no rescaling of it. Returns ``options``."""
        options.data_options.fft_shift = True
        if self.object_pixel_size_m is not None:
            options.object_options.pixel_size_m = self.object_pixel_size_m[0]
        if not options.probe_options.optimizable:
            options.object_options.remove_object_probe_ambiguity.enabled = False
            reconstructor = options.reconstructor_options
            if hasattr(reconstructor, "rescale_probe_intensity_in_first_epoch"):
                reconstructor.rescale_probe_intensity_in_first_epoch = False
        return options


def to_ptychi(
    fixture: Mapping[str, Any] | PtychoTensors, metadata: Mapping[str, Any] | None = None
) -> PtychiInputs[Any]:
    """The fixture in pty-chi's conventions.

    ``fixture`` is ``ptycho_arrays`` (numpy arrays by key; numpy comes back) or
    ``ptycho_tensors`` (torch tensors come back, on their device); ``metadata``
    (``ptycho_metadata``) gives the object pixel where the sidecar records a geometry.
    """
    pixel = _object_pixel(metadata)
    if isinstance(fixture, Mapping):
        return _from_arrays(fixture, pixel)
    return _from_tensors(fixture, pixel)


def _object_pixel(metadata: Mapping[str, Any] | None) -> tuple[float, float] | None:
    entry = (metadata or {}).get("geometry")
    if not isinstance(entry, Mapping) or "object_pixel_size_m" not in entry:
        return None
    x, y = entry["object_pixel_size_m"]
    return float(x), float(y)


def _from_arrays(arrays: Mapping[str, Any], pixel: tuple[float, float] | None) -> PtychiInputs[Any]:
    import numpy as np

    amplitudes = np.asarray(arrays[c.DIFFRACTION], dtype=np.float32)
    probe = np.asarray(arrays[c.PROBE], dtype=np.complex64)
    obj = np.asarray(arrays[c.OBJECT], dtype=np.complex64)
    h, w = probe.shape
    oy, ox = position_origin(obj.shape)
    y = np.asarray(arrays[c.YCOORDS], dtype=np.float64) - probe_offset(h) - oy
    x = np.asarray(arrays[c.XCOORDS], dtype=np.float64) - probe_offset(w) - ox
    return PtychiInputs(
        np.square(amplitudes) * np.float32(h * w),
        obj[None],
        probe[None, None],
        y,
        x,
        (oy, ox),
        pixel,
    )


def _from_tensors(tensors: PtychoTensors, pixel: tuple[float, float] | None) -> PtychiInputs[Any]:
    import torch

    probe, obj = tensors.probe, tensors.object
    h, w = int(probe.shape[-2]), int(probe.shape[-1])
    oy, ox = position_origin((int(obj.shape[-2]), int(obj.shape[-1])))
    coords = tensors.coords.to(torch.float64)
    return PtychiInputs(
        tensors.diffraction.to(torch.float32).square() * float(h * w),
        obj.to(torch.complex64).unsqueeze(0),
        probe.to(torch.complex64).unsqueeze(0).unsqueeze(0),
        coords[:, 1] - probe_offset(h) - oy,
        coords[:, 0] - probe_offset(w) - ox,
        (oy, ox),
        pixel,
    )
