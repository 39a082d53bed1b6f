"""A differentiable ptychography forward model in torch, and an object reconstruction.

The model is the one the fixture documents (x is the column, y the row; bilinear
interpolation at fractional positions)::

    patch[i, j] = O(y - H/2 + i, x - W/2 + j)
    amplitude   = |fftshift(fft2(probe * patch, norm="ortho"))|

The reconstruction knows the probe and the positions and recovers the object by
gradient descent on the squared Fourier amplitude error, each pixel's step scaled by
the probe intensity it received over the scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def extract_patches(
    obj: torch.Tensor, coords: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """``(N, H, W)`` bilinear patches of ``obj`` at ``coords`` ``(N, 2)`` = ``(x, y)``.

    Differentiable with respect to ``obj``; raises ValueError for a patch that leaves it.
    """
    h, w = shape
    half = torch.tensor([w // 2, h // 2], dtype=coords.dtype, device=coords.device)
    corner = coords - half
    start = torch.floor(corner)
    frac = (corner - start).to(obj.real.dtype)
    fx, fy = frac[:, 0].view(-1, 1, 1), frac[:, 1].view(-1, 1, 1)
    ix, iy = start[:, 0].long(), start[:, 1].long()
    # The bilinear neighbour at +1 is read too, so the last row and column need room.
    inside = int(iy.min()) >= 0 and int(ix.min()) >= 0
    inside &= int(iy.max()) + h < obj.shape[0] and int(ix.max()) + w < obj.shape[1]
    if not inside:
        raise ValueError(f"a {h}x{w} patch leaves the object of shape {tuple(obj.shape)}")
    rows = (iy.view(-1, 1) + torch.arange(h, device=obj.device)).view(-1, h, 1)
    cols = (ix.view(-1, 1) + torch.arange(w, device=obj.device)).view(-1, 1, w)
    return (
        (1 - fy) * (1 - fx) * obj[rows, cols]
        + (1 - fy) * fx * obj[rows, cols + 1]
        + fy * (1 - fx) * obj[rows + 1, cols]
        + fy * fx * obj[rows + 1, cols + 1]
    )


def forward(probe: torch.Tensor, obj: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Far-field diffraction amplitudes ``(N, H, W)``."""
    h, w = probe.shape
    exit_waves = probe * extract_patches(obj, coords, (h, w))
    far_field = torch.fft.fft2(exit_waves, norm="ortho")
    amplitude: torch.Tensor = torch.fft.fftshift(far_field, dim=(-2, -1)).abs()
    return amplitude


def fourier_error(model: torch.Tensor, measured: torch.Tensor) -> float:
    """``||model - measured|| / ||measured||`` over all patterns."""
    difference = torch.linalg.vector_norm(model - measured)
    return float(difference / torch.linalg.vector_norm(measured))


def illumination(
    probe: torch.Tensor, coords: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """The probe intensity each object pixel receives over the scan, ``sum_k S_k^T |P|^2``.

    Computed as the gradient of ``sum(patches(canvas) * |P|^2)`` with respect to the
    canvas: autograd applies the adjoint of the patch extraction.
    """
    canvas = torch.zeros(shape, dtype=probe.real.dtype, device=probe.device, requires_grad=True)
    with torch.enable_grad():
        patches = extract_patches(canvas, coords, (probe.shape[0], probe.shape[1]))
        weighted = patches * probe.abs() ** 2
        (received,) = torch.autograd.grad(weighted.sum(), canvas)
    return received


@dataclass(frozen=True)
class Reconstruction:
    """The recovered object and the Fourier error before each iteration and after the last."""

    object: torch.Tensor
    errors: list[float]
    illumination: torch.Tensor


def reconstruct(
    diffraction: torch.Tensor,
    probe: torch.Tensor,
    coords: torch.Tensor,
    shape: tuple[int, int],
    iterations: int = 50,
) -> Reconstruction:
    """Recover the object from the amplitudes, starting from a flat object (all ones)."""
    received = illumination(probe, coords, shape)
    # The regularised inverse of the intensity received: a step of the same size in every
    # well-lit pixel, and no blow-up in the dark ones.
    scale = 1.0 / (received + 1e-3 * received.max())
    obj = torch.ones(shape, dtype=probe.dtype, device=probe.device, requires_grad=True)
    errors: list[float] = []
    with torch.enable_grad():
        for _ in range(iterations):
            model = forward(probe, obj, coords)
            errors.append(fourier_error(model.detach(), diffraction))
            loss = ((model - diffraction) ** 2).sum()
            (gradient,) = torch.autograd.grad(loss, obj)
            with torch.no_grad():
                # 0.5 cancels the 2 of the squared loss: one whole scaled gradient step.
                obj -= 0.5 * scale * gradient
    with torch.no_grad():
        errors.append(fourier_error(forward(probe, obj, coords), diffraction))
    return Reconstruction(obj.detach(), errors, received)
