"""How close a reconstructed object is to the fixture's: the error where the probe lit it,
for tests of a reconstruction code on the fixture (the clients' tests use it, and so does
the worked pty-chi example). numpy arrays in; call ``.cpu().numpy()`` on tensors first.

The lit region is where the scan's summed probe intensity exceeds a tenth of its
maximum: ``S = sum_k |P|^2``, each probe pasted with its top-left pixel at
``(rint(y_k) - H // 2, rint(x_k) - W // 2)``, the fixture's placement rounded to whole
pixels. Outside it the data say little about the object, so no code is judged there.

The error is ``||g * found - truth|| / ||truth||`` over the lit pixels, with ``g`` the
least-squares complex factor ``<found, truth> / <found, found>``: intensities cannot fix
a global phase (nor, with the probe fixed, much of a scale), so ``g`` removes both. No
phase ramp is removed: the positions are exact, so none is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

#: The lit region: summed probe intensity above this fraction of its maximum.
LIT_FRACTION = 0.10


def illumination(
    probe: NDArray[Any], xcoords: NDArray[Any], ycoords: NDArray[Any], shape: tuple[int, int]
) -> NDArray[np.float64]:
    """The summed probe intensity ``S`` on an object of ``shape``, probes at whole pixels."""
    import numpy as np

    h, w = probe.shape
    intensity = np.abs(np.asarray(probe, dtype=np.complex128)) ** 2
    total = np.zeros(shape, dtype=np.float64)
    for x, y in zip(np.rint(xcoords).astype(int), np.rint(ycoords).astype(int)):
        top, left = y - h // 2, x - w // 2
        total[top : top + h, left : left + w] += intensity
    return total


def lit_region(
    probe: NDArray[Any], xcoords: NDArray[Any], ycoords: NDArray[Any], shape: tuple[int, int]
) -> NDArray[np.bool_]:
    """The object pixels where ``S`` exceeds :data:`LIT_FRACTION` of its maximum."""
    total = illumination(probe, xcoords, ycoords, shape)
    lit: NDArray[np.bool_] = total > LIT_FRACTION * total.max()
    return lit


def object_error(found: NDArray[Any], truth: NDArray[Any], lit: NDArray[np.bool_]) -> float:
    """The relative error of ``found`` against ``truth`` over ``lit``, after the best
    global complex factor."""
    import numpy as np

    f = np.asarray(found, dtype=np.complex128)[lit]
    t = np.asarray(truth, dtype=np.complex128)[lit]
    gamma = np.vdot(f, t) / np.vdot(f, f)
    return float(np.linalg.norm(gamma * f - t) / np.linalg.norm(t))
