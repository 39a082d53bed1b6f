"""The canonical fixture format: its keys, dtypes and layouts, and the one validator.

A fixture holds, for ``N`` scan positions and an ``H x W`` detector:

==================  ===========  ===========================================
key                 shape        dtype and rule
==================  ===========  ===========================================
``diffraction``     (N, H, W)    float32 amplitude, finite, ``>= 0``, ``< 10``
``diff3d``          (N, H, W)    optional legacy alias, equal to diffraction
``objectGuess``     (Ho, Wo)     complex64, both sides ``>= 128``, finite
``probeGuess``      (H, W)       complex64, finite
``xcoords``         (N,)         float64 (float32 accepted), finite
``ycoords``         (N,)         float64 (float32 accepted), finite
``xcoords_start``   (N,)         optional, float64, finite
``ycoords_start``   (N,)         optional, float64, finite
``scan_index``      (N,)         optional, integer
==================  ===========  ===========================================

Sources may also be in the legacy ``(H, W, N)`` layout, float64 and complex128.
Every violation is a :class:`ContractError` with a one-line message that names
the file, the key, and what was expected against what was found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .spec import LAYOUTS

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

DIFFRACTION = "diffraction"
DIFF3D = "diff3d"
OBJECT = "objectGuess"
PROBE = "probeGuess"
XCOORDS = "xcoords"
YCOORDS = "ycoords"
OPTIONAL_PER_POSITION = ("xcoords_start", "ycoords_start", "scan_index")
#: A ``groups`` fixture's (n / G**2, G**2) int64 fixture indices, seed first.
GROUPS = "groups"
SOURCE_KEYS = frozenset(
    {DIFFRACTION, DIFF3D, OBJECT, PROBE, XCOORDS, YCOORDS, *OPTIONAL_PER_POSITION}
)

MAX_AMPLITUDE = 10.0
MIN_OBJECT_SIDE = 128


class ContractError(ValueError):
    """A file breaks the data contract; ``str()`` is one line naming file, key and rule."""

    def __init__(self, path: object, key: str | None, message: str) -> None:
        # args hold the str path too, so that repr() is the same after pickling.
        super().__init__(str(path), key, message)
        self.path = str(path)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def __reduce__(self) -> tuple[type[ContractError], tuple[str, str | None, str]]:
        return (type(self), (self.path, self.key, self.message))


def check_not_object(path: object, key: str, dtype: np.dtype[Any]) -> None:
    """Refuse arrays of Python objects: loading them would mean unpickling."""
    if dtype.hasobject:
        raise ContractError(
            path,
            key,
            f"{key!r} holds Python objects (dtype {dtype}) but a numeric array is required;"
            " pickled arrays are never loaded",
        )


def decide_layout(path: object, shape: Sequence[int], n_positions: int, layout: str | None) -> str:
    """Return ``"HWN"`` or ``"NHW"`` for a diffraction array, from the coordinate count."""
    if len(shape) != 3:
        raise ContractError(
            path,
            DIFFRACTION,
            f"{DIFFRACTION!r} has shape {tuple(shape)} but a 3-D (H,W,N) or (N,H,W) array"
            " is required",
        )
    if layout is not None:
        if layout not in LAYOUTS:
            raise ContractError(path, DIFFRACTION, f"layout {layout!r} is not one of HWN, NHW")
        axis = 2 if layout == "HWN" else 0
        if shape[axis] != n_positions:
            raise ContractError(
                path,
                DIFFRACTION,
                f"{DIFFRACTION!r} has shape {tuple(shape)}: layout {layout} puts the"
                f" {n_positions} positions of {XCOORDS!r} on axis {axis}, which has"
                f" {shape[axis]}",
            )
        return layout
    first, last = shape[0] == n_positions, shape[2] == n_positions
    if first and last:
        raise ContractError(
            path,
            DIFFRACTION,
            f"{DIFFRACTION!r} has shape {tuple(shape)} and {n_positions} positions match"
            " both axis 0 and axis 2; say which layout it is: --layout HWN or NHW (in pytest:"
            " the ptycho_fixture_layout ini option)",
        )
    if last:
        return "HWN"
    if first:
        return "NHW"
    raise ContractError(
        path,
        DIFFRACTION,
        f"{DIFFRACTION!r} has shape {tuple(shape)} but {XCOORDS!r} has {n_positions}"
        " positions; expected them on axis 2 (H,W,N) or axis 0 (N,H,W)",
    )


def check_diffraction_dtype(path: object, key: str, dtype: np.dtype[Any]) -> None:
    """Diffraction must be real floating point amplitude."""
    check_not_object(path, key, dtype)
    if dtype.kind == "c":
        raise ContractError(
            path,
            key,
            f"{key!r} is complex ({dtype}) but real amplitudes (float32 or float64) are"
            " required; store |psi|, not the complex wave",
        )
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise ContractError(
            path, key, f"{key!r} has dtype {dtype} but float32 or float64 is required"
        )


def check_amplitudes(path: object, key: str, values: NDArray[Any]) -> str:
    """Amplitudes are finite, non-negative and below 10; return a note on their range."""
    stats = AmplitudeStats()
    stats.add(values)
    return stats.check(path, key)


@dataclass
class AmplitudeStats:
    """What :func:`check_amplitudes` needs, gathered block by block from a streamed array."""

    size: int = 0
    nonfinite: int = 0
    low: float = math.inf
    high: float = -math.inf

    def add(self, block: NDArray[Any]) -> None:
        import numpy as np

        self.size += int(block.size)
        bad = int(block.size - np.count_nonzero(np.isfinite(block)))
        self.nonfinite += bad
        if block.size and not bad:
            self.low = min(self.low, float(block.min()))
            self.high = max(self.high, float(block.max()))

    def check(self, path: object, key: str, scope: str = "") -> str:
        """Raise :class:`ContractError` unless every value seen is a valid amplitude.

        ``scope`` says which values were seen, e.g. `` in the selected patterns``.
        """
        if self.nonfinite:
            raise ContractError(
                path,
                key,
                f"{key!r} has {self.nonfinite} non-finite values (NaN or inf){scope} but"
                " finite amplitudes are required",
            )
        if self.size == 0:
            raise ContractError(path, key, f"{key!r} is empty but at least one pattern is required")
        low, high = self.low, self.high
        if low < 0:
            raise ContractError(
                path,
                key,
                f"{key!r} has minimum {low:g}{scope} but amplitudes must be >= 0",
            )
        if high >= MAX_AMPLITUDE:
            raise ContractError(
                path,
                key,
                f"{key!r} has maximum {high:g}{scope} but amplitudes must be < {MAX_AMPLITUDE:g};"
                " this looks like intensity: store sqrt(intensity)",
            )
        return f"{key}: finite, min {low:.6g}, max {high:.6g} (< {MAX_AMPLITUDE:g})"


def check_object(path: object, array: NDArray[Any], *, exact: bool) -> None:
    """``objectGuess``: 2-D complex, both sides >= 128; ``exact`` demands complex64."""
    _check_complex(path, OBJECT, array, exact=exact)
    if array.ndim != 2:
        raise ContractError(
            path, OBJECT, f"{OBJECT!r} has shape {array.shape} but a 2-D array is required"
        )
    if min(array.shape) < MIN_OBJECT_SIDE:
        raise ContractError(
            path,
            OBJECT,
            f"{OBJECT!r} has shape {array.shape} but both sides must be >= {MIN_OBJECT_SIDE}",
        )


def check_probe(
    path: object, array: NDArray[Any], detector: tuple[int, int], *, exact: bool
) -> None:
    """``probeGuess``: complex with the detector's shape ``(H, W)``."""
    _check_complex(path, PROBE, array, exact=exact)
    if array.shape != detector:
        raise ContractError(
            path,
            PROBE,
            f"{PROBE!r} has shape {array.shape} but the detector shape {detector} is required",
        )


def _check_complex(path: object, key: str, array: NDArray[Any], *, exact: bool) -> None:
    import numpy as np

    check_not_object(path, key, array.dtype)
    allowed = ("complex64",) if exact else ("complex64", "complex128")
    if array.dtype.name not in allowed:
        raise ContractError(
            path, key, f"{key!r} has dtype {array.dtype} but {' or '.join(allowed)} is required"
        )
    if not np.isfinite(array).all():
        raise ContractError(
            path, key, f"{key!r} has non-finite values but finite values are required"
        )


def check_per_position(path: object, key: str, array: NDArray[Any], n_positions: int) -> None:
    """Coordinates and the optional per-position arrays are ``(N,)`` and finite."""
    import numpy as np

    check_not_object(path, key, array.dtype)
    if array.shape != (n_positions,):
        raise ContractError(
            path,
            key,
            f"{key!r} has shape {array.shape} but ({n_positions},) is required,"
            f" one value per position",
        )
    if key == "scan_index":
        if array.dtype.kind not in "iu":
            raise ContractError(
                path, key, f"{key!r} has dtype {array.dtype} but integers are required"
            )
        return
    if array.dtype.name not in ("float32", "float64"):
        raise ContractError(
            path, key, f"{key!r} has dtype {array.dtype} but float64 (or float32) is required"
        )
    if not np.isfinite(array).all():
        raise ContractError(
            path, key, f"{key!r} has non-finite values but finite values are required"
        )


def validate_fixture(path: object, arrays: Mapping[str, NDArray[Any]]) -> list[str]:
    """Check a canonical fixture against the contract; return notes on what was checked."""
    import numpy as np

    required = (DIFFRACTION, OBJECT, PROBE, XCOORDS, YCOORDS)
    for key in required:
        if key not in arrays:
            raise ContractError(
                path, key, f"{key!r} is missing; a fixture holds {', '.join(required)}"
            )
    allowed = {*required, DIFF3D, *OPTIONAL_PER_POSITION, GROUPS}
    extra = sorted(set(arrays) - allowed)
    if extra:
        raise ContractError(
            path, extra[0], f"{extra[0]!r} is not a fixture key; expected only {sorted(allowed)}"
        )
    diffraction = arrays[DIFFRACTION]
    check_not_object(path, DIFFRACTION, diffraction.dtype)
    if diffraction.ndim != 3:
        raise ContractError(
            path,
            DIFFRACTION,
            f"{DIFFRACTION!r} has shape {diffraction.shape} but a 3-D (N,H,W) array is required",
        )
    if diffraction.dtype.name != "float32":
        raise ContractError(
            path,
            DIFFRACTION,
            f"{DIFFRACTION!r} has dtype {diffraction.dtype} but float32 is required",
        )
    n, h, w = diffraction.shape
    notes = [check_amplitudes(path, DIFFRACTION, diffraction)]
    if DIFF3D in arrays:
        alias = arrays[DIFF3D]
        if alias.dtype != diffraction.dtype or not np.array_equal(alias, diffraction):
            raise ContractError(
                path,
                DIFF3D,
                f"{DIFF3D!r} differs from {DIFFRACTION!r} but must be an exact copy of it",
            )
        notes.append(f"{DIFF3D}: identical to {DIFFRACTION}")
    check_object(path, arrays[OBJECT], exact=True)
    check_probe(path, arrays[PROBE], (h, w), exact=True)
    for key in (XCOORDS, YCOORDS, *OPTIONAL_PER_POSITION):
        if key in arrays:
            check_per_position(path, key, arrays[key], n)
    if GROUPS in arrays:
        notes.append(check_groups(path, arrays[GROUPS], n))
    notes.append(f"{n} positions, detector {h}x{w}, object {arrays[OBJECT].shape}")
    return notes


def check_groups(path: object, groups: NDArray[Any], n_positions: int) -> str:
    """``groups``: (m, k) int64 fixture indices, every position in exactly one group."""
    import numpy as np

    check_not_object(path, GROUPS, groups.dtype)
    if groups.dtype.name != "int64" or groups.ndim != 2 or groups.size == 0:
        raise ContractError(
            path,
            GROUPS,
            f"{GROUPS!r} has dtype {groups.dtype} and shape {groups.shape} but a non-empty"
            " (groups, members) int64 array is required",
        )
    if groups.size != n_positions or not np.array_equal(
        np.sort(groups, axis=None), np.arange(n_positions)
    ):
        raise ContractError(
            path,
            GROUPS,
            f"{GROUPS!r} must hold each of the {n_positions} fixture indices exactly once,"
            f" but holds {groups.size} values from {groups.min()} to {groups.max()}",
        )
    m, k = groups.shape
    return f"{GROUPS}: {m} groups of {k}, every position in one"
