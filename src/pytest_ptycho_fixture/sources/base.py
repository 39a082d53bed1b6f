"""What every source gives the generator: the :class:`Source` protocol, and the
:class:`Request` a source is opened with."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..cli.progress import Progress
    from ..geometry import Geometry


class Source(Protocol):
    """A scan the fixture is derived from: small arrays in memory, patterns on demand."""

    label: str
    small: dict[str, NDArray[Any]]
    dropped_keys: list[str]
    notes: list[str]
    #: What the source did to its data on the way in (complete once patterns are taken).
    transformations: list[str]
    #: For a source of named datasets (HDF5): fixture key -> the dataset read, with units.
    datasets: dict[str, str]
    #: What the sidecar records of the source beyond its path (its format, say).
    provenance: dict[str, Any]
    #: The sidecar's ``geometry`` entry (:func:`..geometry.record`); empty: none known.
    geometry: dict[str, Any]

    @property
    def n_positions(self) -> int:
        """Positions in the scan."""

    @property
    def layout(self) -> str:
        """``HWN`` or ``NHW``: how the source stores its patterns."""

    def take_patterns(self, indices: Sequence[int]) -> NDArray[Any]:
        """``(n, H, W)`` patterns at ``indices``, in the source dtype."""

    def content_sha256(self) -> str | None:
        """Content digest of the source arrays the fixture is derived from, if computed."""

    def fingerprint(self) -> str:
        """:func:`.digests.fingerprint` of the source NPZ: free, whatever its size."""


@dataclass(frozen=True)
class Request:
    """What a source is opened with: the file and how to read it."""

    path: Path
    #: How the sidecar names the source (the path as given, by default).
    label: str
    #: ``HWN`` or ``NHW`` where ``H == W == N`` leaves it open, else ``None``.
    layout: str | None = None
    #: The patterns of a source that holds none (a ptychodus product), and its label.
    diffraction: Path | None = None
    diffraction_label: str | None = None
    #: Fixture key -> dataset path, for an HDF5 file of a layout of its own.
    keys: Mapping[str, str] | None = None
    #: Read all of the source: check every pattern and digest it.
    verify: bool = False
    progress: Progress | None = None
    #: The geometry of a source that holds none (``--geometry``).
    geometry: Geometry | None = None
    #: The probe of a source that holds none (``--probe``).
    probe: Path | None = None

    @classmethod
    def of(
        cls,
        source: str | os.PathLike[str],
        layout: str | None = None,
        *,
        diffraction: str | os.PathLike[str] | None = None,
        keys: Mapping[str, str] | None = None,
        label: str | None = None,
        diffraction_label: str | None = None,
        verify: bool = False,
        progress: Progress | None = None,
        geometry: Geometry | None = None,
        probe: str | os.PathLike[str] | None = None,
    ) -> Request:
        """The request for ``source`` as :func:`.registry.open_source` takes it."""
        diffraction_path = None if diffraction is None else Path(diffraction)
        return cls(
            Path(source),
            label or os.fspath(source),
            layout,
            diffraction_path,
            diffraction_label or (None if diffraction is None else os.fspath(diffraction)),
            keys,
            verify,
            progress,
            geometry,
            None if probe is None else Path(probe),
        )

    def refuse(self, option: str, why: str) -> None:
        """Refuse ``option`` (``--diffraction``, ``--keys``, ``--geometry``, ``--probe``)
        where the source does not take it."""
        from ..contract import ContractError

        given = {
            "--diffraction": self.diffraction,
            "--keys": self.keys,
            "--geometry": self.geometry,
            "--probe": self.probe,
        }[option]
        if given is not None:
            raise ContractError(self.label, None, why)

    def given_geometry(self, detector: tuple[int, int]) -> dict[str, Any]:
        """The sidecar's ``geometry`` entry from ``--geometry``; empty without it."""
        from ..geometry import record

        if self.geometry is None:
            return {}
        return record(self.geometry, detector, "ptycho_fixture_geometry (--geometry)")
