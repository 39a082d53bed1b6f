"""What the HDF5 sources share: the :class:`HDF5Source` they are read into, and how
positions in metres become object pixels.

An HDF5 source keeps its positions in object pixels, its probe and object in memory, and
reads its patterns by hyperslab on demand. Intensities become amplitudes as
``sqrt(I) * 2**-k``, with the smallest ``k >= 0`` that brings the selected patterns below
the contract's maximum; a power of two, so that scaling adds no rounding. The layouts
live in :mod:`.cxi`, :mod:`.product` and :mod:`.keys`; :mod:`.hdf5read` does the safe
reading.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..contract import ContractError
from ..geometry import to_pixels
from ..npz.digests import ContentHasher
from .hdf5read import H5Reader, is_hdf5

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..cli.progress import Progress



@dataclass(frozen=True)
class Frames:
    """Where a scan's patterns are: a dataset of an HDF5 file or a member of an NPZ."""

    path: Path
    name: str
    #: ``NHW`` or ``HWN``.
    layout: str
    #: Intensities (square-rooted and scaled) rather than amplitudes.
    intensity: bool
    shape: tuple[int, ...]
    dtype: str

    @property
    def detector(self) -> tuple[int, int]:
        s = self.shape
        return (s[0], s[1]) if self.layout == "HWN" else (s[1], s[2])

    @property
    def count(self) -> int:
        return self.shape[2] if self.layout == "HWN" else self.shape[0]

    def take(
        self,
        indices: Sequence[int],
        hasher: ContentHasher | None = None,
        stats: c.AmplitudeStats | None = None,
        progress: Progress | None = None,
    ) -> NDArray[Any]:
        """The patterns at sorted ``indices`` as stored, ``(n, H, W)``.

        With ``hasher`` and ``stats`` every pattern is read: the dataset is digested as
        stored, and ``stats`` sees all of its values.
        """
        import numpy as np

        axis = 2 if self.layout == "HWN" else 0
        if is_hdf5(self.path):
            with H5Reader(self.path) as reader:
                if hasher is not None and stats is not None:
                    _digest(reader, self.name, hasher, stats)
                taken = reader.take(self.name, axis, indices)
        else:
            from ..npz.reader import NpzReader

            with NpzReader(self.path) as npz:
                visit = None if stats is None else stats.add
                taken = npz.take(self.name, axis, indices, hasher, visit=visit, progress=progress)
        return np.ascontiguousarray(taken.transpose(2, 0, 1)) if axis == 2 else taken


def _digest(reader: H5Reader, name: str, hasher: ContentHasher, stats: c.AmplitudeStats) -> None:
    import numpy as np

    node = reader.dataset(name)
    digest = hasher.begin(name, node.dtype, node.shape)

    def add(block: NDArray[Any]) -> None:
        digest.update(np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<")).data)
        stats.add(block)

    reader.blocks(name, add)
    hasher.finish(name, digest)


def hdf5_frames(reader: H5Reader, name: str, layout: str, *, intensity: bool) -> Frames:
    node = reader.dataset(name)
    return Frames(reader.path, name, layout, intensity, tuple(node.shape), node.dtype.str)


@dataclass
class HDF5Source:
    """A scan whose positions, probe and object are in memory and patterns in ``frames``."""

    label: str
    frames: Frames
    small: dict[str, Any]
    #: The datasets read and their units, for the sidecar's notes and ``info``.
    datasets: dict[str, str]
    transformations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped_keys: list[str] = field(default_factory=list)
    #: What the sidecar records of the source beyond its path: its format and so on.
    provenance: dict[str, Any] = field(default_factory=dict)
    #: The sidecar's ``geometry`` entry; empty where the source gives none.
    geometry: dict[str, Any] = field(default_factory=dict)
    verify: bool = False
    progress: Progress | None = None
    _hasher: ContentHasher = field(default_factory=ContentHasher)

    def __post_init__(self) -> None:
        n = self.frames.count
        for key in (c.XCOORDS, c.YCOORDS, *c.OPTIONAL_PER_POSITION):
            if key in self.small:
                c.check_per_position(self.label, key, self.small[key], n)
        c.check_object(self.label, self.small[c.OBJECT], exact=False)
        # A source without a probe gets one estimated from the patterns it takes.
        if c.PROBE in self.small:
            c.check_probe(self.label, self.small[c.PROBE], self.frames.detector, exact=False)

    @property
    def n_positions(self) -> int:
        return self.frames.count

    @property
    def layout(self) -> str:
        return self.frames.layout

    def take_patterns(self, indices: Sequence[int]) -> NDArray[Any]:
        import numpy as np

        frames, key = self.frames, self.frames.name
        stats = c.AmplitudeStats()
        if self.verify:
            for name in sorted(self.small):
                self._hasher.add_array(name, self.small[name])
            patterns = frames.take(indices, self._hasher, stats, self.progress)
        else:
            patterns = frames.take(indices, progress=self.progress)
            stats.add(patterns)
        scope = "" if self.verify else " in the selected patterns"
        if not frames.intensity:
            stats.check(self.label, key, scope)
            return self._with_probe(patterns)
        _check_intensities(self.label, key, stats, scope)
        amplitudes = np.sqrt(patterns.astype(np.float64))
        peak = float(amplitudes.max()) if amplitudes.size else 0.0
        k = 0
        while peak * 2.0**-k >= c.MAX_AMPLITUDE:
            k += 1
        amplitudes *= 2.0**-k
        self.transformations.append(
            f"diffraction: amplitude = sqrt(intensity) * 2**-{k} ({2.0**-k:g}), in float64,"
            f" then cast to float32: the power of two that brings the selected patterns'"
            f" largest amplitude {peak:.6g} below {c.MAX_AMPLITUDE:g}"
        )
        return self._with_probe(amplitudes.astype(np.float32))

    def _with_probe(self, amplitudes: NDArray[Any]) -> NDArray[Any]:
        """``amplitudes``, once the probe is known: estimated from them if the source
        has none."""
        if c.PROBE not in self.small:
            self.small[c.PROBE] = estimated_probe(self.label, amplitudes)
            self.transformations.append(ESTIMATE_RULE.format(n=len(amplitudes)))
            self.notes.append(
                f"{self.label} holds no probe and none was given (--probe):"
                f" {c.PROBE} was estimated from the {len(amplitudes)} selected patterns"
            )
        return amplitudes

    def content_sha256(self) -> str | None:
        return self._hasher.content_sha256 if self.verify else None

    def fingerprint(self) -> str:
        """SHA-256 of the datasets used: the patterns' path, dtype and shape, and the
        content digests of everything else read; free, whatever the patterns' size."""
        frames = self.frames
        small = ContentHasher()
        for key in sorted(self.small):
            small.add_array(key, self.small[key])
        lines: list[object] = [frames.path.name, frames.name, frames.dtype, list(frames.shape)]
        lines.append(sorted(small.arrays.items()))
        return hashlib.sha256(json.dumps(lines).encode()).hexdigest()


#: The estimate of a probe, as the sidecar's transformations record it.
ESTIMATE_RULE = (
    "probeGuess: estimated, the file holding none: fftshift(ifft2(ifftshift(sqrt(mean of"
    " amplitude**2 over the {n} selected patterns)), norm='ortho')), in float64, then cast"
    " to complex64: the probe of flat phase whose far field through a flat object has the"
    " patterns' mean intensity"
)


def estimated_probe(label: str, amplitudes: NDArray[Any]) -> NDArray[Any]:
    """A probe from ``(n, H, W)`` amplitudes, by :data:`ESTIMATE_RULE`.

    Under the fixture's forward model a flat unit object gives ``|fftshift(fft2(P,
    ortho))|``; this is the ``P`` of flat phase in the far field whose amplitude is the
    root of the patterns' mean intensity, centred on the probe's pixel ``(H // 2, W //
    2)`` by the last ``fftshift``.
    """
    import numpy as np

    from ..simulate import real_ifft2_ortho

    # Summed in order, one pattern at a time: each step is correctly rounded, so the
    # estimate has the same bits on every numpy (np.mean's pairwise sum would not).
    total = np.zeros(amplitudes.shape[1:], dtype=np.float64)
    for pattern in amplitudes:
        total += np.square(pattern.astype(np.float64))
    mean = total / len(amplitudes)
    if not np.any(mean > 0):
        raise ContractError(
            label,
            c.PROBE,
            f"holds no probe, and its selected patterns are all zero, so none can be"
            f" estimated from them; give one with --probe FILE (an NPY of a complex"
            f" {mean.shape} array, or an NPZ with {c.PROBE!r})",
        )
    probe = np.fft.fftshift(real_ifft2_ortho(np.fft.ifftshift(np.sqrt(mean))))
    return probe.astype(np.complex64)


def _check_intensities(label: str, key: str, stats: c.AmplitudeStats, scope: str) -> None:
    if stats.nonfinite:
        raise ContractError(
            label,
            key,
            f"{key!r} has {stats.nonfinite} non-finite values (NaN or inf){scope} but finite"
            " intensities are required",
        )
    if stats.size and stats.low < 0:
        raise ContractError(
            label,
            key,
            f"{key!r} has minimum {stats.low:g}{scope} but intensities must be >= 0"
            " (subtract the background with clipping at 0 first)",
        )


def single_mode(label: str, name: str, array: NDArray[Any], what: str) -> NDArray[Any]:
    """A 2-D array from one with leading axes of length 1 (one mode, one layer)."""
    if array.ndim < 2 or any(n != 1 for n in array.shape[:-2]):
        raise ContractError(
            label,
            name,
            f"{name!r} has shape {array.shape} but one 2-D {what} is required (leading axes of"
            " length 1 are accepted); export a single mode",
        )
    return array.reshape(array.shape[-2:])


def object_pixels(
    label: str,
    name: str,
    metres: NDArray[Any],
    pixel_m: float,
    centre_m: float,
    side: int,
    probe_side: int,
) -> NDArray[Any]:
    """Fixture coordinates of positions in metres, placing the probe on the object where
    ptychodus places it (:func:`..geometry.to_pixels`)."""
    import numpy as np

    values = np.asarray(metres, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ContractError(
            label, name, f"{name!r} has non-finite positions but finite metres are required"
        )
    return to_pixels(values, pixel_m, centre_m, side, probe_side)


def unit_object(span_px: tuple[float, float], probe: tuple[int, int]) -> tuple[int, int]:
    """``(rows, cols)`` of an object that covers a scan's span plus a probe's width.

    ptychodus' rule (scan bounding box plus the probe's extent), at least
    :data:`.contract.MIN_OBJECT_SIDE` a side.
    """
    rows = max(c.MIN_OBJECT_SIDE, math.ceil(span_px[1] + probe[0]))
    cols = max(c.MIN_OBJECT_SIDE, math.ceil(span_px[0] + probe[1]))
    return rows, cols
