"""NPZ sources: a scan as PtychoPINN keeps it (``diffraction`` or ``diff3d``,
``xcoords``, ``ycoords``, ``probeGuess``, ``objectGuess``), read through the streaming
reader."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..contract import ContractError
from ..npz.digests import ContentHasher
from ..npz.reader import NpzReader

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..cli.progress import Progress
    from .base import Request


def recognises(reader: NpzReader) -> bool:
    """Every NPZ is read as a scan of this layout; the contract checks its keys."""
    return True


def positions(reader: NpzReader, label: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """The scan's positions in object pixels, without its patterns."""
    return reader.read(c.XCOORDS), reader.read(c.YCOORDS)


def read_source(reader: NpzReader, request: Request) -> NpzSource:
    """The scan in the NPZ of ``request`` (``reader`` has its members listed)."""
    for option in ("--diffraction", "--keys"):
        request.refuse(
            option, f"is not an HDF5 file, and {option} applies only to HDF5 sources"
        )
    request.refuse("--probe", f"holds its own probe ({c.PROBE!r}); drop --probe")
    source = NpzSource(
        request.path,
        request.layout,
        label=request.label,
        verify=request.verify,
        progress=request.progress,
    )
    source.geometry = request.given_geometry(source.small[c.PROBE].shape[-2:])
    return source


@dataclass
class NpzSource:
    """A source NPZ, read through the streaming reader.

    By default only what the fixture needs is read: the small arrays and the subset's
    patterns (seeking straight to them in a stored member). With ``verify=True`` every
    byte is read: each pattern is checked and the source's content digest computed.
    """

    path: Path
    layout_hint: str | None = None
    label: str = ""
    verify: bool = False
    n_positions: int = 0
    layout: str = ""
    small: dict[str, Any] = field(default_factory=dict)
    dropped_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    transformations: list[str] = field(default_factory=list)
    datasets: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)
    _hasher: ContentHasher = field(default_factory=ContentHasher)
    _key: str = c.DIFFRACTION
    _fingerprint: str = ""
    #: ``progress(bytes_read, total_bytes)`` after each chunk of the diffraction streamed.
    progress: Progress | None = None

    def __post_init__(self) -> None:
        self.label = self.label or str(self.path)
        path = self.path
        if path.is_dir():
            raise ContractError(path, None, "is a directory but a source NPZ file is required")
        with NpzReader(path) as reader:
            self._fingerprint = reader.fingerprint()
            present = set(reader.members)
            if c.DIFFRACTION not in present and c.DIFF3D in present:
                self._key = c.DIFF3D
                self.notes.append(f"diffraction read from the legacy key {c.DIFF3D!r}")
            elif c.DIFF3D in present:
                self.notes.append(f"source {c.DIFF3D!r} ignored: the alias is rebuilt")
            optional = [key for key in c.OPTIONAL_PER_POSITION if key in present]
            for key in (c.XCOORDS, c.YCOORDS, c.OBJECT, c.PROBE, *optional):
                self.small[key] = reader.read(key, self._hasher if self.verify else None)
            self.dropped_keys = sorted(present - c.SOURCE_KEYS)
            xcoords = self.small[c.XCOORDS]
            if xcoords.ndim != 1:
                raise ContractError(
                    path,
                    c.XCOORDS,
                    f"{c.XCOORDS!r} has shape {xcoords.shape} but a 1-D (N,) array is required",
                )
            member = reader.member(self._key)
            n = int(xcoords.shape[0])
            ycount = self.small[c.YCOORDS].shape[:1]
            axes = (member.shape[0], member.shape[-1]) if member.shape else ()
            if n not in axes and ycount and ycount[0] in axes:
                # The diffraction array sides with 'ycoords': blame 'xcoords'.
                n = int(ycount[0])
            self.n_positions = n
            for key in (c.XCOORDS, c.YCOORDS, *c.OPTIONAL_PER_POSITION):
                if key in self.small:
                    c.check_per_position(path, key, self.small[key], n)
            c.check_diffraction_dtype(path, self._key, member.dtype)
            self.layout = c.decide_layout(path, member.shape, n, self.layout_hint)
            shape = member.shape
            detector = (shape[0], shape[1]) if self.layout == "HWN" else (shape[1], shape[2])
            c.check_object(path, self.small[c.OBJECT], exact=False)
            c.check_probe(path, self.small[c.PROBE], detector, exact=False)

    def take_patterns(self, indices: Sequence[int]) -> NDArray[Any]:
        import numpy as np

        axis = 2 if self.layout == "HWN" else 0
        stats = c.AmplitudeStats()
        with NpzReader(self.path) as reader:
            if self.verify:
                # Every pattern is checked and digested while streaming.
                patterns = reader.take(
                    self._key, axis, indices, self._hasher, visit=stats.add, progress=self.progress
                )
            else:
                patterns = reader.take(self._key, axis, indices, progress=self.progress)
                stats.add(patterns)
        stats.check(self.path, self._key, "" if self.verify else " in the selected patterns")
        if self.layout == "HWN":
            patterns = np.ascontiguousarray(patterns.transpose(2, 0, 1))
        return patterns

    def content_sha256(self) -> str | None:
        return self._hasher.content_sha256 if self.verify else None

    def fingerprint(self) -> str:
        return self._fingerprint
