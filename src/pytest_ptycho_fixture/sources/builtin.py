"""The built-in source: the synthetic Run1084-shaped scan of :mod:`..simulate`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import contract as c
from ..geometry import BUILTIN, record
from ..spec import BUILTIN_SOURCE

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Content digest of the full built-in source (``simulate_source()``); a test recomputes it.
SYNTHETIC_SOURCE_CONTENT_SHA256 = "baa884e4ddd3cfafb94e1f1c0180ef2db71cb9b6c2ef4a94868da2a2c3827a32"
#: Fingerprint of the NPZ that ``ptycho-fixture simulate`` writes; a test recomputes it.
SYNTHETIC_SOURCE_FINGERPRINT = "a3c477d589eab5b1920b573796a1c1088a274f5936bfabb095c4379a06f8ef7a"


@dataclass
class SyntheticSource:
    """The built-in scan from :mod:`.simulate`; only the requested patterns are simulated."""

    label: str = BUILTIN_SOURCE
    layout: str = "HWN"
    dropped_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    transformations: list[str] = field(default_factory=list)
    datasets: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    geometry: dict[str, Any] = field(default_factory=dict)
    small: dict[str, Any] = field(default_factory=dict)
    n_positions: int = 0

    def __post_init__(self) -> None:
        from .. import simulate

        scan = simulate.synthetic_scan()
        self.small = {
            c.OBJECT: scan.object,
            c.PROBE: scan.probe,
            c.XCOORDS: scan.xcoords,
            c.YCOORDS: scan.ycoords,
            "xcoords_start": scan.xcoords,
            "ycoords_start": scan.ycoords,
        }
        self.n_positions = int(scan.xcoords.shape[0])
        detector = scan.probe.shape[-2:]
        self.geometry = record(BUILTIN, (detector[0], detector[1]), "declared for the built-in source")
        self.notes.append("source simulated: only the subset's positions were computed")

    def take_patterns(self, indices: Sequence[int]) -> NDArray[Any]:
        import numpy as np

        from .. import simulate

        index = np.asarray(indices, dtype=np.intp)
        return simulate.forward(
            self.small[c.PROBE],
            self.small[c.OBJECT],
            self.small[c.XCOORDS][index],
            self.small[c.YCOORDS][index],
        )

    def content_sha256(self) -> str | None:
        return SYNTHETIC_SOURCE_CONTENT_SHA256

    def fingerprint(self) -> str:
        return SYNTHETIC_SOURCE_FINGERPRINT
