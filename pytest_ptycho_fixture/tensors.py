"""Device selection, the handoff of fixture arrays to torch, and the shared-tensor guard.

torch is imported inside the functions that need it, so that importing this module (which
the plugin does in every pytest run) stays free.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    import torch
    from numpy.typing import NDArray

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or all"
_DEVICE_SPEC = re.compile(r"auto|cpu|all|cuda(?::(\d+))?")
_WORKER = re.compile(r"gw(\d+)")

#: Tensor field -> fixture key; ``coords`` is built from ``xcoords`` and ``ycoords``.
_FIELD_KEYS = {
    "diffraction": "diffraction",
    "probe": "probeGuess",
    "object": "objectGuess",
    "xcoords_start": "xcoords_start",
    "ycoords_start": "ycoords_start",
    "scan_index": "scan_index",
}


class DeviceUnavailable(ValueError):
    """A device was requested explicitly but this machine does not have it."""


def parse_device_spec(text: str) -> str:
    """Normalise a device request (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``all``)."""
    spec = text.strip().lower()
    match = _DEVICE_SPEC.fullmatch(spec)
    if match is None:
        raise ValueError(f"{text!r} is not a device: expected {DEVICE_CHOICES}")
    if match.group(1) is not None:
        return f"cuda:{int(match.group(1))}"
    return spec


def worker_index(worker_id: str | None) -> int:
    """``gwK`` -> ``K``; the main process (no pytest-xdist, or its controller) is 0."""
    match = _WORKER.fullmatch(worker_id or "")
    return int(match.group(1)) if match else 0


def worker_device(worker_id: str | None, spec: str, cuda_count: int) -> list[str]:
    """The devices a process uses for ``spec``, given the number of visible CUDA devices.

    ``auto`` and ``cuda`` give pytest-xdist worker ``gwK`` the device ``cuda:(K mod count)``
    so that workers spread over the GPUs; ``cuda:N`` is taken as asked; ``all`` is the CPU
    and every CUDA device, the same list in every worker. Indices count the devices torch
    sees, so an outer ``CUDA_VISIBLE_DEVICES`` is respected.

    Raises :class:`DeviceUnavailable` for ``cuda`` or ``cuda:N`` that cannot be honoured.
    """
    spec = parse_device_spec(spec)
    if spec == "cpu":
        return ["cpu"]
    if spec == "all":
        return ["cpu", *(f"cuda:{index}" for index in range(cuda_count))]
    if spec.startswith("cuda:"):
        if int(spec.partition(":")[2]) >= cuda_count:
            raise DeviceUnavailable(f"{spec} requested but {_visible(cuda_count)}")
        return [spec]
    if cuda_count == 0:
        if spec == "cuda":
            raise DeviceUnavailable(f"cuda requested but {_visible(cuda_count)}")
        return ["cpu"]
    return [f"cuda:{worker_index(worker_id) % cuda_count}"]


def _visible(count: int) -> str:
    if count == 0:
        return "no CUDA device is visible"
    if count == 1:
        return "1 CUDA device is visible (cuda:0)"
    return f"{count} CUDA devices are visible (cuda:0 .. cuda:{count - 1})"


def check_available(spec: str) -> list[str]:
    """The devices of the main process for ``spec``; an explicit CUDA request must exist.

    Raises :class:`DeviceUnavailable` naming what torch sees and what to ask for instead.
    """
    count = cuda_count()
    try:
        return worker_device(None, spec, count)
    except DeviceUnavailable as exc:
        reason = f" ({cuda_unavailable_reason()})" if count == 0 else ""
        raise DeviceUnavailable(f"{exc}{reason}; use auto or cpu instead") from None


def cuda_count() -> int:
    """Number of CUDA devices torch can use (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cuda_unavailable_reason() -> str:
    """Why torch sees no CUDA device, in words."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"


def torch_device(device: str) -> torch.device:
    """``torch.device(device)``."""
    import torch

    return torch.device(device)


def describe_device(device: str) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu``."""
    if not device.startswith("cuda"):
        return device
    import torch

    return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"


def header_device(spec: str, worker_id: str | None = None) -> str:
    """The device for the report header, importing torch only if it is already loaded."""
    if spec == "cpu" or "torch" not in sys.modules:
        return spec
    try:
        devices = worker_device(worker_id, spec, cuda_count())
    except DeviceUnavailable:
        return spec
    return f"{spec} -> {', '.join(describe_device(device) for device in devices)}"


@final
@dataclass(frozen=True)
class PtychoTensors:
    """The fixture as tensors on one device.

    ``diffraction`` (N, H, W) float32 amplitudes, ``probe`` (H, W) complex64, ``object``
    (Ho, Wo) complex64, ``coords`` (N, 2) float64 with columns ``(x, y)``; the optional
    per-position arrays are ``None`` when the fixture does not hold them.
    """

    diffraction: torch.Tensor
    probe: torch.Tensor
    object: torch.Tensor
    coords: torch.Tensor
    xcoords_start: torch.Tensor | None = None
    ycoords_start: torch.Tensor | None = None
    scan_index: torch.Tensor | None = None

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


@final
@dataclass
class SharedTensors:
    """The session tensors handed out per device, with a pristine copy of each.

    A test changed a tensor if torch's in-place counter moved or its values differ from
    the copy (which catches writes through ``.data`` or ``.numpy()`` too). ``reload``
    reads the verified fixture again; it is what damaged tensors are restored from (on
    the CPU they share memory with the loaded arrays, so those were changed too).
    """

    reload: Callable[[], Mapping[str, NDArray[Any]]]
    fixture: str = "the fixture"
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
        import torch

        tensors, versions = self.by_device[device], self.baseline[device]
        copies = dict(self.pristine[device].items())
        return [
            name
            for name, tensor in tensors.items()
            if tensor._version != versions[name] or not torch.equal(tensor, copies[name])
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
        names = ", ".join(f"ptycho_tensors.{name} ({device})" for device, name in changed)
        return (
            f"{test} modified the shared session tensor {names} in place. Every test gets"
            f" the same session tensors, so they were restored from {self.fixture} for the"
            " tests that follow; request the ptycho_batch fixture instead for a private copy"
            " that a test may modify."
        )
