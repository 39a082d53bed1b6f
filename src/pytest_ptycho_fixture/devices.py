"""Device selection: parse a device request, pick each process's device, name it.

torch is imported inside the functions that ask it about CUDA, so that importing this
module (which the plugin does in every pytest run) stays free. torch is an optional
dependency: without it there is no CUDA device, and asking for a torch device says how to
install it.
"""

from __future__ import annotations

import re
import sys
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or all"
_DEVICE_SPEC = re.compile(r"auto|cpu|all|cuda(?::(\d+))?")
_WORKER = re.compile(r"gw(\d+)")


TORCH_HINT = "pip install torch (or pip install pytest-ptycho-fixture[torch])"


class DeviceUnavailable(ValueError):
    """A device was requested explicitly but this machine does not have it."""


class TorchMissing(ImportError):
    """torch is not installed; ``str()`` names what needed it and how to install it."""


def _torch() -> ModuleType | None:
    try:
        import torch
    except ImportError:
        return None
    return torch


def require_torch(what: str) -> ModuleType:
    """The torch module, or :class:`TorchMissing` saying that ``what`` needs it."""
    torch = _torch()
    if torch is None:
        raise TorchMissing(f"{what} needs torch, which is not installed: {TORCH_HINT}")
    return torch


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
    """Number of CUDA devices torch can use (0 without CUDA or without torch)."""
    torch = _torch()
    if torch is None:
        return 0
    count: int = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return count


def cuda_unavailable_reason() -> str:
    """Why torch sees no CUDA device, in words."""
    torch = _torch()
    if torch is None:
        return "torch is not installed"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA"
    return f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"


def torch_device(device: str) -> torch.device:
    """``torch.device(device)``; :class:`TorchMissing` without torch."""
    result: torch.device = require_torch("ptycho_device").device(device)
    return result


def describe_device(device: str) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu``."""
    if not device.startswith("cuda"):
        return device
    import torch

    return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"


def header_device(spec: str, worker_id: str | None = None) -> str:
    """The device for the report header, importing torch only if it is already loaded."""
    if spec == "cpu" or sys.modules.get("torch") is None:
        return spec
    try:
        devices = worker_device(worker_id, spec, cuda_count())
    except DeviceUnavailable:
        return spec
    return f"{spec} -> {', '.join(describe_device(device) for device in devices)}"
