"""The handoff of fixture arrays to torch, and the shared-tensor guard.

torch is imported inside the functions that need it; the plugin imports this module only
when a test first asks for tensors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

#: Tensor field -> fixture key; ``coords`` is built from ``xcoords`` and ``ycoords``.
_FIELD_KEYS = {
    "diffraction": "diffraction",
    "probe": "probeGuess",
    "object": "objectGuess",
    "xcoords_start": "xcoords_start",
    "ycoords_start": "ycoords_start",
    "scan_index": "scan_index",
    "groups": "groups",
}


@final
@dataclass(frozen=True)
class PtychoTensors:
    """The fixture as tensors on one device.

    ``diffraction`` (N, H, W) float32 amplitudes, ``probe`` (H, W) complex64, ``object``
    (Ho, Wo) complex64, ``coords`` (N, 2) float64 with columns ``(x, y)``; the optional
    per-position arrays are ``None`` when the fixture does not hold them. ``groups`` is
    the ``groups`` strategy's (N / G**2, G**2) int64 fixture indices, seed first, and
    ``None`` for the other strategies.
    """

    diffraction: torch.Tensor
    probe: torch.Tensor
    object: torch.Tensor
    coords: torch.Tensor
    xcoords_start: torch.Tensor | None = None
    ycoords_start: torch.Tensor | None = None
    scan_index: torch.Tensor | None = None
    groups: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        """The device every tensor is on."""
        return self.diffraction.device

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` for every tensor present."""
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                yield item.name, value

    def versions(self) -> dict[str, int]:
        """The in-place modification counter of every tensor."""
        return {name: tensor._version for name, tensor in self.items()}

    def clone(self) -> PtychoTensors:
        """A private copy, on the same device, that may be modified freely."""
        return replace(self, **{name: tensor.clone() for name, tensor in self.items()})


def host_arrays(arrays: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
    """The fixture arrays per tensor field, sharing memory with ``arrays`` except ``coords``."""
    import numpy as np

    host = {name: arrays[key] for name, key in _FIELD_KEYS.items() if key in arrays}
    coords = np.stack([arrays["xcoords"], arrays["ycoords"]], axis=1).astype(np.float64)
    coords.flags.writeable = False
    host["coords"] = coords
    return host


def _from_numpy(array: NDArray[Any]) -> torch.Tensor:
    import torch

    # The arrays are read-only on purpose; writes through the tensor are caught by the
    # version guard instead, so torch's warning about non-writable arrays says nothing new.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The given NumPy array is not writable", category=UserWarning
        )
        return torch.from_numpy(array)


def to_tensors(arrays: Mapping[str, NDArray[Any]], device: str) -> PtychoTensors:
    """Hand the fixture to torch: zero-copy on the CPU, through pinned memory on CUDA."""
    import torch

    target = torch.device(device)
    host = {name: _from_numpy(array) for name, array in host_arrays(arrays).items()}
    if target.type == "cuda":
        moved = {
            name: tensor.pin_memory().to(target, non_blocking=True) for name, tensor in host.items()
        }
        torch.cuda.synchronize(target)
    else:
        moved = {name: tensor.to(target) for name, tensor in host.items()}
    return PtychoTensors(**moved)


def restore(tensors: PtychoTensors, arrays: Mapping[str, NDArray[Any]]) -> None:
    """Copy pristine ``arrays`` back into ``tensors`` in place."""
    import torch

    host = host_arrays(arrays)
    with torch.no_grad():
        for name, tensor in tensors.items():
            tensor.copy_(_from_numpy(host[name]))
    if tensors.device.type == "cuda":
        torch.cuda.synchronize(tensors.device)


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors hold the same bytes: unlike ``torch.equal``, -0.0 is not 0.0."""
    import torch

    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(
        a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)
    )


@final
@dataclass
class SharedTensors:
    """The session tensors handed out per device, with a pristine copy of each.

    A test changed a tensor if torch's in-place counter moved or its bytes differ from
    the copy (which catches writes through ``.data``, ``.numpy()`` or DLPack too, and a
    zero whose sign changed). ``reload`` reads the verified fixture again; it is what
    damaged tensors are restored from (on the CPU they share memory with the loaded
    arrays, so those were changed too).
    """

    reload: Callable[[], Mapping[str, NDArray[Any]]]
    fixture: str = "the fixture"
    #: How a test reaches the tensors, as the error names them: ``NAME.diffraction``.
    name: str = "ptycho_tensors"
    #: What the error tells a test to do instead, ``... for a private copy``.
    private_copy: str = "request the ptycho_batch fixture instead"
    by_device: dict[str, PtychoTensors] = field(default_factory=dict)
    baseline: dict[str, dict[str, int]] = field(default_factory=dict)
    pristine: dict[str, PtychoTensors] = field(default_factory=dict)

    def get(self, arrays: Mapping[str, NDArray[Any]], device: str) -> PtychoTensors:
        """The session tensors on ``device``, made on first use."""
        if device not in self.by_device:
            tensors = to_tensors(arrays, device)
            self.by_device[device] = tensors
            self.baseline[device] = tensors.versions()
            self.pristine[device] = tensors.clone()
        return self.by_device[device]

    def _changed(self, device: str) -> list[str]:
        tensors, versions = self.by_device[device], self.baseline[device]
        copies = dict(self.pristine[device].items())
        return [
            name
            for name, tensor in tensors.items()
            if tensor._version != versions[name] or not _same_bits(tensor, copies[name])
        ]

    def check(self, test: str) -> str | None:
        """Restore any tensor modified in place and return the error for ``test``, if any."""
        changed = [(device, name) for device in self.by_device for name in self._changed(device)]
        if not changed:
            return None
        pristine = self.reload()
        for device in dict.fromkeys(device for device, _ in changed):
            restore(self.by_device[device], pristine)
            self.baseline[device] = self.by_device[device].versions()
        names = ", ".join(f"{self.name}.{name} ({device})" for device, name in changed)
        return (
            f"{test} modified the shared session tensor {names} in place. Every test gets"
            f" the same session tensors, so they were restored from {self.fixture} for the"
            f" tests that follow; {self.private_copy} for a private copy that a test may"
            " modify."
        )
