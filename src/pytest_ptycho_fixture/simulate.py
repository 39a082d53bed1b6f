"""Deterministic synthetic ptychography scan, shaped like the Run1084 experimental dataset.

The scan has 1087 positions, a 64x64 detector, a 227x226 complex object and a 64x64
complex probe. Coordinates are in object pixels; x spans exactly 34.4..79.3 and y
spans exactly 35.8..79.1.

Forward model (PtychoPINN convention, x is the column and y is the row). For a scan
position (x, y) and a probe of shape (H, W)::

    patch[i, j] = O(y - H/2 + i, x - W/2 + j)
    amplitude   = |fftshift(fft2(probe * patch, norm="ortho"))|

``O`` is evaluated with bilinear interpolation at fractional positions, so for integer
x and y the patch pixel (H/2, W/2) is exactly ``O(y, x)``.

Every array produced here is hashed and the digest is committed, so the results must be
bit-identical across numpy versions and SIMD dispatch levels. numpy's FFT, its
transcendental functions, complex multiplication and its reductions are not stable in
that sense; elementwise ``+ - * /`` and ``sqrt`` on float64 (correctly rounded),
integer arithmetic, comparisons, min/max and indexing are. The computation is therefore
built only from the latter:

* complex values are carried as separate float64 real and imaginary arrays, and the
  modulus is ``sqrt(re*re + im*im)``;
* cosine and sine are polynomials evaluated with ``+ - * /`` after an exact
  quadrant reduction;
* the FFT is an iterative radix-2 transform written here; only power-of-two probe
  shapes take that path, other shapes fall back to ``numpy.fft`` and are not
  bit-reproducible;
* pseudo-random parameters come from the splitmix64 integer hash in Python integers;
* sums over many values use ``math.fsum``.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from .spec import LAYOUTS

if TYPE_CHECKING:
    from .cli.progress import Progress

__all__ = [
    "DETECTOR_SHAPE",
    "OBJECT_SHAPE",
    "SCAN_POSITIONS",
    "SyntheticScan",
    "forward",
    "simulate_source",
    "synthetic_scan",
]

SCAN_POSITIONS: int = 1087
DETECTOR_SHAPE: tuple[int, int] = (64, 64)
OBJECT_SHAPE: tuple[int, int] = (227, 226)

X_RANGE: tuple[float, float] = (34.4, 79.3)
Y_RANGE: tuple[float, float] = (35.8, 79.1)

#: Threads that simulate batches of positions at once: one per core, up to eight.
WORKERS = min(os.cpu_count() or 1, 8)
_BATCH = 128

_MASK64 = (1 << 64) - 1
_TWO_POW_53 = 9007199254740992.0

_HALF_PI = math.pi / 2.0  # exact: halving a float
_TWO_OVER_PI = 2.0 / math.pi
# Cody-Waite split of pi/2: the high part has 33 significant bits, so k * _PIO2_HI is
# exact for |k| < 2**20 and the reduction loses nothing there.
_PIO2_HI = 1.57079632673412561417e00
_PIO2_LO = 6.07710050650619224932e-11
_MAX_TRIG_ARGUMENT = 1.0e5

# Python's float ** goes through the C library's pow, which is not guaranteed to be
# correctly rounded; the coefficients therefore use exact signs and integer factorials.
_SIN_COEFFS = tuple((-1.0 if n % 2 else 1.0) / math.factorial(2 * n + 1) for n in range(1, 9))
_COS_COEFFS = tuple((-1.0 if n % 2 else 1.0) / math.factorial(2 * n) for n in range(1, 9))

# Hash streams: every pseudo-random quantity draws from its own stream so that
# changing one (say the number of positions) leaves the others untouched.
_STREAM_AMPLITUDE = 1
_STREAM_PHASE = 2
_STREAM_JITTER_X = 3
_STREAM_JITTER_Y = 4

_OBJECT_BUMPS = 400
_AMPLITUDE_RANGE = (0.4, 1.0)
_PHASE_RANGE = (-1.0, 1.0)

_PROBE_INNER_RADIUS = 14.0
_PROBE_OUTER_RADIUS = 22.0
_PROBE_CURVATURE = 0.005  # rad / px^2: 2.4 rad at the disk edge, so no phase wrap
_TARGET_MAX_AMPLITUDE = 1.7

_JITTER = 0.3  # fraction of a raster step


@dataclass(frozen=True)
class SyntheticScan:
    """Positions, object and probe of the synthetic scan (no diffraction)."""

    xcoords: NDArray[np.float64]
    ycoords: NDArray[np.float64]
    object: NDArray[np.complex128]
    probe: NDArray[np.complex128]


# --------------------------------------------------------------------------- hashing


def _splitmix64(value: int) -> int:
    z = (value + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _uniforms(stream: int, count: int) -> NDArray[np.float64]:
    """Deterministic uniform numbers in [0, 1) for the pairs (stream, k), ``k < count``.

    Number k is ``splitmix64(splitmix64(stream) ^ k) >> 11`` divided by 2**53. The uint64
    arithmetic wraps modulo 2**64 as splitmix64's masks do, and the 53-bit values convert
    to float64 and divide by 2**53 exactly.
    """
    z = np.arange(count, dtype=np.uint64) ^ np.uint64(_splitmix64(stream))
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    values: NDArray[np.float64] = (z >> np.uint64(11)).astype(np.float64) / _TWO_POW_53
    return values


# ------------------------------------------------------------------------ cos / sin


def _kernel_sin(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """Taylor polynomial of sin on [-pi/4, pi/4] (truncation error below 1e-19)."""
    r2 = r * r
    acc = np.full_like(r, _SIN_COEFFS[-1])
    for c in reversed(_SIN_COEFFS[:-1]):
        acc = acc * r2 + c
    return r + (r * r2) * acc


def _kernel_cos(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """Taylor polynomial of cos on [-pi/4, pi/4] (truncation error below 1e-18)."""
    r2 = r * r
    acc = np.full_like(r, _COS_COEFFS[-1])
    for c in reversed(_COS_COEFFS[:-1]):
        acc = acc * r2 + c
    return 1.0 + r2 * acc


def _quadrant_sin_cos(
    quadrant: NDArray[np.int64], r: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """sin and cos of ``quadrant * pi/2 + r``."""
    s = _kernel_sin(r)
    c = _kernel_cos(r)
    q = quadrant & 3
    sin = np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))
    cos = np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))
    return sin, cos


def _sin_cos_array(x: npt.ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sine and cosine built from ``+ - * /`` only, hence bit-identical on every platform.

    Arguments must be finite with magnitude at most 1e5.
    """
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("cos/sin argument must be finite")
    if a.size and float(np.max(np.abs(a))) > _MAX_TRIG_ARGUMENT:
        raise ValueError(f"cos/sin argument must lie within +-{_MAX_TRIG_ARGUMENT:g}")
    k = np.rint(a * _TWO_OVER_PI)
    r = (a - k * _PIO2_HI) - k * _PIO2_LO
    return _quadrant_sin_cos(k.astype(np.int64), r)


# ------------------------------------------------------------------------------ FFT


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


_TWIDDLE_CACHE: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
_BITREV_CACHE: dict[int, NDArray[np.intp]] = {}


def _twiddles(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Real and imaginary parts of exp(-2 pi i k / n) for k < n/2."""
    cached = _TWIDDLE_CACHE.get(n)
    if cached is not None:
        return cached
    k = np.arange(n // 2, dtype=np.int64)
    # Reduce 2 pi k / n = quadrant * pi/2 + r with exact integer arithmetic: the
    # fraction (4k - quadrant*n) / n is exact for power-of-two n, so quarter turns
    # come out as exact 0 and +-1.
    quadrant = (8 * k + n) // (2 * n)
    frac = (4 * k - quadrant * n).astype(np.float64) / float(n)
    sin, cos = _quadrant_sin_cos(quadrant, frac * _HALF_PI)
    result = (cos, -sin)
    for arr in result:
        arr.setflags(write=False)
    _TWIDDLE_CACHE[n] = result
    return result


def _bit_reversal(n: int) -> NDArray[np.intp]:
    cached = _BITREV_CACHE.get(n)
    if cached is not None:
        return cached
    bits = n.bit_length() - 1
    perm = np.array([int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(n)])
    perm = perm.astype(np.intp)
    perm.setflags(write=False)
    _BITREV_CACHE[n] = perm
    return perm


def _fft_axis(
    re: NDArray[np.float64], im: NDArray[np.float64], outer: int, n: int, inner: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Radix-2 decimation-in-time FFT along the middle axis of an (outer, n, inner) view."""
    perm = _bit_reversal(n)
    xr = re.reshape(outer, n, inner)[:, perm, :]
    xi = im.reshape(outer, n, inner)[:, perm, :]
    wr_all, wi_all = _twiddles(n)
    m = 2
    while m <= n:
        half = m // 2
        groups = n // m
        wr = wr_all[::groups][:half].reshape(half, 1)
        wi = wi_all[::groups][:half].reshape(half, 1)
        vr = xr.reshape(outer, groups, 2, half, inner)
        vi = xi.reshape(outer, groups, 2, half, inner)
        ar, ai = vr[:, :, 0], vi[:, :, 0]
        br, bi = vr[:, :, 1], vi[:, :, 1]
        tr = br * wr - bi * wi
        ti = br * wi + bi * wr
        yr = np.empty_like(xr)
        yi = np.empty_like(xi)
        ur = yr.reshape(outer, groups, 2, half, inner)
        ui = yi.reshape(outer, groups, 2, half, inner)
        np.add(ar, tr, out=ur[:, :, 0])
        np.subtract(ar, tr, out=ur[:, :, 1])
        np.add(ai, ti, out=ui[:, :, 0])
        np.subtract(ai, ti, out=ui[:, :, 1])
        xr, xi = yr, yi
        m *= 2
    return xr.reshape(re.shape), xi.reshape(im.shape)


def _fft2(
    re: NDArray[np.float64], im: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Unnormalised 2-D FFT over the last two axes of ``(..., H, W)`` real/imag arrays.

    H and W must be powers of two.
    """
    if re.shape != im.shape or re.ndim < 2:
        raise ValueError("re and im must share a shape with at least two dimensions")
    h, w = re.shape[-2:]
    if not (_is_power_of_two(h) and _is_power_of_two(w)):
        raise ValueError(f"FFT size {h}x{w} is not a power of two")
    outer = int(np.prod(re.shape[:-2], dtype=np.int64))
    re = np.ascontiguousarray(re, dtype=np.float64)
    im = np.ascontiguousarray(im, dtype=np.float64)
    re, im = _fft_axis(re, im, outer * h, w, 1)
    re, im = _fft_axis(re, im, outer, h, w)
    return re, im


def real_ifft2_ortho(values: NDArray[np.float64]) -> NDArray[np.complex128]:
    """``numpy.fft.ifft2(values, norm="ortho")`` of a real ``(H, W)`` array, with the same
    bits on every numpy where H and W are powers of two (through this module's FFT: the
    inverse of a real array is the conjugate of its forward transform, over ``sqrt(HW)``);
    other sizes go through ``numpy.fft``."""
    h, w = values.shape
    if not (_is_power_of_two(h) and _is_power_of_two(w)):
        return np.fft.ifft2(values, norm="ortho")
    re, im = _fft2(values, np.zeros_like(values, dtype=np.float64))
    scale = math.sqrt(h * w)
    result: NDArray[np.complex128] = (re / scale) - 1j * (im / scale)
    return result


# -------------------------------------------------------------------- forward model


def _extract_patches(
    obj_re: NDArray[np.float64],
    obj_im: NDArray[np.float64],
    xcoords: NDArray[np.float64],
    ycoords: NDArray[np.float64],
    shape: tuple[int, int],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bilinearly interpolated object patches, ``(n, H, W)`` real and imaginary parts.

    Coordinates must already have been checked against the object bounds.
    """
    h, w = shape
    y0 = ycoords - float(h // 2)
    x0 = xcoords - float(w // 2)
    fy_floor = np.floor(y0)
    fx_floor = np.floor(x0)
    fy = (y0 - fy_floor).reshape(-1, 1, 1)
    fx = (x0 - fx_floor).reshape(-1, 1, 1)
    iy = fy_floor.astype(np.intp)
    ix = fx_floor.astype(np.intp)
    rows = (iy[:, None] + np.arange(h, dtype=np.intp))[:, :, None]
    cols = (ix[:, None] + np.arange(w, dtype=np.intp))[:, None, :]
    gy = 1.0 - fy
    gx = 1.0 - fx
    w00 = gy * gx
    w01 = gy * fx
    w10 = fy * gx
    w11 = fy * fx
    out: list[NDArray[np.float64]] = []
    for part in (obj_re, obj_im):
        v = w00 * part[rows, cols]
        v = v + w01 * part[rows, cols + 1]
        v = v + w10 * part[rows + 1, cols]
        v = v + w11 * part[rows + 1, cols + 1]
        out.append(v)
    return out[0], out[1]


def _check_positions(
    xcoords: NDArray[np.float64],
    ycoords: NDArray[np.float64],
    probe_shape: tuple[int, int],
    object_shape: tuple[int, int],
) -> None:
    h, w = probe_shape
    rows, cols = object_shape
    bad_finite = ~(np.isfinite(xcoords) & np.isfinite(ycoords))
    if np.any(bad_finite):
        k = int(np.flatnonzero(bad_finite)[0])
        raise ValueError(f"scan position {k} has a non-finite coordinate")
    iy = np.floor(ycoords - float(h // 2))
    ix = np.floor(xcoords - float(w // 2))
    # The bilinear neighbour at +1 is always read, so the last row/column needs room.
    outside = (iy < 0) | (ix < 0) | (iy + h >= rows) | (ix + w >= cols)
    if np.any(outside):
        k = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"scan position {k} (x={float(xcoords[k])!r}, y={float(ycoords[k])!r}) needs "
            f"object rows {int(iy[k])}..{int(iy[k]) + h} and columns "
            f"{int(ix[k])}..{int(ix[k]) + w}, outside the object of shape {rows}x{cols}"
        )


def forward(
    probe: NDArray[np.complexfloating[Any, Any]],
    obj: NDArray[np.complexfloating[Any, Any]],
    xcoords: NDArray[np.floating[Any]],
    ycoords: NDArray[np.floating[Any]],
    *,
    progress: Progress | None = None,
) -> NDArray[np.float64]:
    """Far-field diffraction amplitudes ``(n, H, W)`` for the given scan positions.

    Row k depends only on position k, bit for bit, whatever the other positions are.
    The result is bit-reproducible across platforms when H and W are powers of two.
    Raises ValueError naming the first position whose patch leaves the object.
    ``progress(done, total)`` is called after each batch of positions.
    """
    probe_c = np.asarray(probe)
    obj_c = np.asarray(obj)
    if probe_c.ndim != 2 or obj_c.ndim != 2:
        raise ValueError("probe and object must be 2-D arrays")
    xs = np.asarray(xcoords).astype(np.float64).reshape(-1)
    ys = np.asarray(ycoords).astype(np.float64).reshape(-1)
    if xs.shape != ys.shape:
        raise ValueError(f"xcoords has {xs.size} entries but ycoords has {ys.size}")
    h, w = int(probe_c.shape[0]), int(probe_c.shape[1])
    object_shape = (int(obj_c.shape[0]), int(obj_c.shape[1]))
    _check_positions(xs, ys, (h, w), object_shape)

    probe_re = np.ascontiguousarray(probe_c.real, dtype=np.float64)
    probe_im = np.ascontiguousarray(probe_c.imag, dtype=np.float64)
    obj_re = np.ascontiguousarray(obj_c.real, dtype=np.float64)
    obj_im = np.ascontiguousarray(obj_c.imag, dtype=np.float64)
    exact_fft = _is_power_of_two(h) and _is_power_of_two(w)
    norm = math.sqrt(float(h * w))

    result = np.empty((xs.size, h, w), dtype=np.float64)
    failed = threading.Event()

    def simulate(batch: tuple[int, int]) -> tuple[int, int]:
        start, stop = batch
        if failed.is_set():
            return start, start  # once a batch has failed, no other starts
        try:
            pr, pi = _extract_patches(obj_re, obj_im, xs[start:stop], ys[start:stop], (h, w))
            er = pr * probe_re - pi * probe_im
            ei = pr * probe_im + pi * probe_re
            if exact_fft:
                fr, fi = _fft2(er, ei)
            else:
                spectrum = np.fft.fft2(er + 1j * ei)
                fr, fi = spectrum.real.copy(), spectrum.imag.copy()
            fr = fr / norm
            fi = fi / norm
            amp = np.sqrt(fr * fr + fi * fi)
            result[start:stop] = np.roll(amp, (h // 2, w // 2), axis=(1, 2))
        except BaseException:
            failed.set()
            raise
        return batch

    # Rows are independent, so batches may run in any order, in several threads.
    workers = max(1, min(WORKERS, xs.size // 16))
    size = max(1, min(_BATCH, -(-xs.size // workers)))
    batches = [(start, min(start + size, xs.size)) for start in range(0, xs.size, size)]
    finished = 0
    # An error is raised here once the with has waited for the threads; progress is
    # reported from this thread, one batch at a time.
    with ThreadPoolExecutor(workers) as pool:
        for start, stop in pool.map(simulate, batches):
            finished += stop - start
            if progress is not None:
                progress(finished, xs.size)
    return result


# ------------------------------------------------------------- object, probe, scan


def _quantise_complex64(re: NDArray[np.float64], im: NDArray[np.float64]) -> NDArray[np.complex128]:
    """complex128 array whose parts are exactly representable in float32."""
    out = np.empty(re.shape, dtype=np.complex128)
    out.real = re.astype(np.float32).astype(np.float64)
    out.imag = im.astype(np.float32).astype(np.float64)
    return out


def _bump_field(stream: int, shape: tuple[int, int]) -> NDArray[np.float64]:
    """Sum of signed rational bumps ``h / (1 + r^2/s^2)^2`` with hashed parameters.

    The sum is softly saturated as ``f / sqrt(1 + f^2)`` so that a few overlapping
    bumps do not dominate the range.
    """
    rows, cols = shape
    field = np.zeros(shape, dtype=np.float64)
    draws = _uniforms(stream, 4 * _OBJECT_BUMPS).tolist()
    row_index = np.arange(rows, dtype=np.float64)
    col_index = np.arange(cols, dtype=np.float64)
    for b in range(_OBJECT_BUMPS):
        cy = draws[4 * b] * rows
        cx = draws[4 * b + 1] * cols
        u = draws[4 * b + 2]
        # Mostly small features with a few broad ones, for texture at several scales.
        size = 2.0 + 6.0 * u * u
        s2 = size * size
        height = 2.0 * draws[4 * b + 3] - 1.0
        # Beyond 6 sizes the bump is below 1/1300 of its height: not worth evaluating.
        reach = math.ceil(6.0 * size)
        r0, r1 = max(0, math.floor(cy) - reach), min(rows, math.floor(cy) + reach + 1)
        c0, c1 = max(0, math.floor(cx) - reach), min(cols, math.floor(cx) + reach + 1)
        dy = row_index[r0:r1] - cy
        dx = col_index[c0:c1] - cx
        # In place, with the same operations in the same order as the plain expression
        # field + height / (q * q), q = 1 + (dy^2 + dx^2) / s^2: the same bits, faster.
        q = np.add.outer(dy * dy, dx * dx)
        q /= s2
        q += 1.0
        q *= q
        np.divide(height, q, out=q)
        field[r0:r1, c0:c1] += q
    saturated: NDArray[np.float64] = field / np.sqrt(1.0 + field * field)
    return saturated


def _rescale(field: NDArray[np.float64], lo: float, hi: float) -> NDArray[np.float64]:
    fmin = float(np.min(field))
    fmax = float(np.max(field))
    t = (field - fmin) / (fmax - fmin)
    return lo + (hi - lo) * t


def _object_parts() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    amplitude = _rescale(_bump_field(_STREAM_AMPLITUDE, OBJECT_SHAPE), *_AMPLITUDE_RANGE)
    phase = _rescale(_bump_field(_STREAM_PHASE, OBJECT_SHAPE), *_PHASE_RANGE)
    s, c = _sin_cos_array(phase)
    return amplitude * c, amplitude * s


def _probe_parts() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Unscaled soft-disk probe with quadratic (focusing) phase."""
    h, w = DETECTOR_SHAPE
    dy = (np.arange(h, dtype=np.float64) - float(h // 2)).reshape(-1, 1)
    dx = (np.arange(w, dtype=np.float64) - float(w // 2)).reshape(1, -1)
    r2 = dy * dy + dx * dx
    r = np.sqrt(r2)
    t = np.clip((_PROBE_OUTER_RADIUS - r) / (_PROBE_OUTER_RADIUS - _PROBE_INNER_RADIUS), 0.0, 1.0)
    amplitude = t * t * (3.0 - 2.0 * t)
    s, c = _sin_cos_array(_PROBE_CURVATURE * r2)
    return amplitude * c, amplitude * s


def _probe_scale(
    probe_re: NDArray[np.float64],
    probe_im: NDArray[np.float64],
    obj_re: NDArray[np.float64],
    obj_im: NDArray[np.float64],
) -> float:
    """Probe scale that puts the brightest diffraction amplitude near 1.7.

    Estimated without simulating the scan, so every caller gets the same probe: the
    target over the peak of the probe's own far field (ortho-normalised) times the mean
    object modulus over the scanned region. Bright object spots push the real maximum
    a little above the target (1.79 for the default scan).
    """
    h, w = probe_re.shape
    fr, fi = _fft2(probe_re[None], probe_im[None])
    norm = math.sqrt(float(h * w))
    fr = fr / norm
    fi = fi / norm
    peak = float(np.max(np.sqrt(fr * fr + fi * fi)))
    # Object pixels any scan position can illuminate.
    r0 = math.floor(Y_RANGE[0] - h // 2)
    r1 = math.floor(Y_RANGE[1] - h // 2) + h + 1
    c0 = math.floor(X_RANGE[0] - w // 2)
    c1 = math.floor(X_RANGE[1] - w // 2) + w + 1
    sub_re = obj_re[r0:r1, c0:c1]
    sub_im = obj_im[r0:r1, c0:c1]
    modulus = np.sqrt(sub_re * sub_re + sub_im * sub_im)
    mean_modulus = math.fsum(modulus.ravel().tolist()) / modulus.size
    return _TARGET_MAX_AMPLITUDE / (peak * mean_modulus)


def _raster_coordinates(positions: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Row-by-row jittered raster, rescaled so its extremes hit the Run1084 ranges."""
    columns = math.isqrt(positions - 1) + 1  # ceil(sqrt(positions))
    k = np.arange(positions)
    jitter_x = _uniforms(_STREAM_JITTER_X, positions)
    jitter_y = _uniforms(_STREAM_JITTER_Y, positions)
    xs = (k % columns).astype(np.float64) + _JITTER * (2.0 * jitter_x - 1.0)
    ys = (k // columns).astype(np.float64) + _JITTER * (2.0 * jitter_y - 1.0)
    return _fit_range(xs, *X_RANGE), _fit_range(ys, *Y_RANGE)


def _fit_range(values: NDArray[np.float64], lo: float, hi: float) -> NDArray[np.float64]:
    """Affine map of ``values`` onto [lo, hi] whose extremes land exactly on lo and hi.

    A single position has no extent and is put at the midpoint.
    """
    vmin = float(np.min(values))
    vmax = float(np.max(values))
    if vmax == vmin:
        return np.full_like(values, lo * 0.5 + hi * 0.5)
    t = (values - vmin) / (vmax - vmin)
    # lo*(1-t) + hi*t gives lo exactly at t=0 and hi exactly at t=1; the clip only
    # guards against a last-place overshoot in between.
    mapped = lo * (1.0 - t) + hi * t
    return np.clip(mapped, lo, hi)


def synthetic_scan(positions: int = SCAN_POSITIONS) -> SyntheticScan:
    """The deterministic synthetic scan with ``positions`` scan points (no diffraction).

    Object and probe do not depend on ``positions``. Every call builds fresh arrays.
    """
    if isinstance(positions, bool) or not isinstance(positions, (int, np.integer)):
        raise TypeError(f"positions must be an int, got {type(positions).__name__}")
    positions = int(positions)
    if positions < 1:
        raise ValueError(f"positions must be >= 1, got {positions}")
    obj_re, obj_im = _object_parts()
    probe_re, probe_im = _probe_parts()
    obj = _quantise_complex64(obj_re, obj_im)
    scale = _probe_scale(probe_re, probe_im, obj.real, obj.imag)
    probe = _quantise_complex64(probe_re * scale, probe_im * scale)
    xs, ys = _raster_coordinates(positions)
    return SyntheticScan(xcoords=xs, ycoords=ys, object=obj, probe=probe)


def simulate_source(
    positions: int = SCAN_POSITIONS, layout: str = "HWN", *, progress: Progress | None = None
) -> dict[str, NDArray[Any]]:
    """The full synthetic source as stored on disk.

    ``layout`` "HWN" stores diffraction as (H, W, P), "NHW" as (P, H, W). ``progress``
    is handed to :func:`forward`.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    scan = synthetic_scan(positions)
    amplitudes = forward(scan.probe, scan.object, scan.xcoords, scan.ycoords, progress=progress)
    if layout == "HWN":
        diffraction = np.ascontiguousarray(amplitudes.transpose(1, 2, 0))
    else:
        diffraction = amplitudes
    return {
        "diffraction": diffraction,
        "objectGuess": scan.object.copy(),
        "probeGuess": scan.probe.copy(),
        "xcoords": scan.xcoords.copy(),
        "ycoords": scan.ycoords.copy(),
        "xcoords_start": scan.xcoords.copy(),
        "ycoords_start": scan.ycoords.copy(),
    }
