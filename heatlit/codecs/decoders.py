"""Single-peak decoders: heatmaps ``[B, K, H, W]`` or ``[B, K, D, H, W]`` -> ``coords [B, K, n]``, ``scores [B, K]``.

Shapes and coordinate convention: see :mod:`heatlit.codecs`. Every decoder here shares the same
bad-input policy (:func:`prepare_heatmaps`) and the same score (the clamped maximum).
"""

from __future__ import annotations

import functools
import itertools
from typing import NamedTuple

import numpy as np
import torch

from heatlit.codecs.coords import axis_grids, clamp_to_frame, frame_centre, ravel, unravel

Tensor = torch.Tensor


def check_heatmaps(heatmaps: Tensor, name: str = "decoder") -> tuple[Tensor, tuple[int, ...]]:
    """Validate shapes and dtype. ``[B, K, H, W]`` or ``[B, K, D, H, W]`` -> ``(floating maps, spatial)``."""
    if not isinstance(heatmaps, Tensor):
        raise ValueError(f"{name}: heatmaps must be a torch.Tensor, got {type(heatmaps).__name__}")
    if heatmaps.dim() not in (4, 5):
        raise ValueError(
            f"{name}: heatmaps must be [B, K, H, W] (2D) or [B, K, D, H, W] (3D), got shape {list(heatmaps.shape)}"
        )
    spatial = tuple(heatmaps.shape[2:])
    if any(s == 0 for s in spatial):
        raise ValueError(f"{name}: heatmaps have an empty spatial size {list(spatial)}")
    if heatmaps.is_complex():
        raise ValueError(f"{name}: complex heatmaps are not supported")
    return (heatmaps if heatmaps.is_floating_point() else heatmaps.float()), spatial


def sanitize(heatmaps: Tensor) -> Tensor:
    """Replace every non-finite value (NaN, +-Inf) by the smallest finite value of its own map (0 if none).

    Such values carry no usable evidence, and one of them would otherwise poison every coordinate
    downstream. The per-map minimum, not 0, keeps logits (where -Inf is legitimate) ordered.
    ``[B, K, *S] -> [B, K, *S]``.
    """
    finite = torch.isfinite(heatmaps)
    floor = torch.where(finite, heatmaps, torch.inf).flatten(2).amin(-1)
    floor = torch.where(torch.isfinite(floor), floor, 0).reshape(*floor.shape, *([1] * (heatmaps.dim() - 2)))
    return torch.where(finite, heatmaps, floor.to(heatmaps.dtype))


def prepare_heatmaps(heatmaps: Tensor, name: str = "decoder") -> tuple[Tensor, tuple[int, ...]]:
    """:func:`check_heatmaps` then :func:`sanitize`: ``(maps, spatial)`` with only finite values."""
    h, spatial = check_heatmaps(heatmaps, name)
    if h.device.type == "cpu" and h.numel() and bool(torch.isfinite(h.flatten(2).sum(-1)).all()):
        return h, spatial  # a finite sum per map proves every value finite, at a fraction of the cost
    return sanitize(h), spatial


class Peaks(NamedTuple):
    """The maximum of every map: what every single-peak decoder starts from.

    maps ``[B, K, *S]`` (finite), flat ``[B, K, N]``, index ``[B, K]`` long, ints ``[B, K, n]`` long
    (x, y[, z]), maxval ``[B, K]``, no_peak ``[B, K]`` bool (a flat map: max == min).
    """

    maps: Tensor
    flat: Tensor
    spatial: tuple[int, ...]
    index: Tensor
    ints: Tensor
    maxval: Tensor
    no_peak: Tensor


def find_peaks(heatmaps: Tensor, name: str = "decoder") -> Peaks:
    """Validate, sanitise only when needed, and locate each map's maximum (first one on ties)."""
    h, spatial = check_heatmaps(heatmaps, name)
    on_cpu = h.device.type == "cpu"
    if not on_cpu:
        h = sanitize(h)  # on GPUs the elementwise pass is cheap and a finiteness check would need a sync
    flat = h.flatten(2)
    index, ints, maxval = _argmax(flat, spatial)
    low = flat.amin(-1)
    # NaN wins numpy's argmax and torch's amin, and +-Inf shows in the max or the min: finite extremes
    # prove the whole map finite without an elementwise pass.
    if on_cpu and flat.numel() and not bool((torch.isfinite(low) & torch.isfinite(maxval)).all()):
        h = sanitize(h)
        flat = h.flatten(2)
        index, ints, maxval = _argmax(flat, spatial)
        low = flat.amin(-1)
    return Peaks(h, flat, spatial, index, ints, maxval, low == maxval)


def _finish(coords: Tensor, peaks: Peaks) -> tuple[Tensor, Tensor]:
    """Shared epilogue: frame centre and score 0 for flat maps, coordinates clamped into the frame.

    Args:
        coords: ``[B, K, n]``.
    """
    spatial, maxval, no_peak = peaks.spatial, peaks.maxval, peaks.no_peak
    coords = torch.where(no_peak[..., None], frame_centre(spatial, coords), coords)
    coords = clamp_to_frame(coords, spatial)
    scores = torch.where(no_peak, torch.zeros_like(maxval), maxval.clamp(min=0))
    return coords, scores


def _argmax(flat: Tensor, spatial: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """``flat [B, K, N]`` -> ``(index [B, K] long, integer coords [B, K, n] long, maxval [B, K])``.

    Ties go to the first index, as in torch and numpy alike.
    """
    if flat.device.type == "cpu" and not flat.requires_grad and flat.dtype in (torch.float32, torch.float64):
        # torch's CPU argmax is ~12x slower than numpy's vectorised one; the array is shared, not copied.
        index = torch.from_numpy(np.argmax(flat.contiguous().numpy(), axis=-1))
    else:
        index = flat.argmax(-1)
    maxval = flat.gather(-1, index[..., None])[..., 0]
    return index, unravel(index, spatial), maxval


def argmax_decode(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integer location of the maximum. ``[B, K, *S] -> coords [B, K, n], scores [B, K]``."""
    peaks = find_peaks(heatmaps, "argmax")
    return _finish(peaks.ints.to(peaks.maps.dtype), peaks)


def _axis_steps(spatial: tuple[int, ...]) -> list[int]:
    """Flat-index step of a +1 move along x, y(, z)."""
    steps, step = [], 1
    for size in reversed(spatial):
        steps.append(step)
        step *= size
    return steps


def standard_decode(heatmaps: Tensor, shift: float = 0.25) -> tuple[Tensor, Tensor]:
    """Argmax plus ``shift`` pixels towards the higher neighbour on each axis (Newell et al.; HRNet).

    An axis without both neighbours inside the frame (peak on the border) is not shifted. HRNet's
    reference code shifts only when both axes are strictly inside by two pixels; per-axis is the
    cleaner reading of the same rule.

    ``[B, K, *S] -> coords [B, K, n], scores [B, K]``.
    """
    peaks = find_peaks(heatmaps, "standard")
    flat, spatial, index, ints = peaks.flat, peaks.spatial, peaks.index, peaks.ints
    coords = ints.to(flat.dtype)
    n_pix = flat.shape[-1]
    offsets = []
    for axis, step in enumerate(_axis_steps(spatial)):
        size = spatial[-1 - axis]
        inner = (ints[..., axis] > 0) & (ints[..., axis] < size - 1)
        hi = flat.gather(-1, (index + step).clamp(max=n_pix - 1)[..., None])[..., 0]
        lo = flat.gather(-1, (index - step).clamp(min=0)[..., None])[..., 0]
        offsets.append(torch.where(inner, shift * torch.sign(hi - lo), torch.zeros_like(hi)))
    return _finish(coords + torch.stack(offsets, -1), peaks)


@functools.lru_cache(maxsize=64)
def _patch_layout(
    spatial: tuple[int, ...], radius: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """``span [L]``, ``offsets [L^n, n]`` (x, y[, z]; x fastest) and their flat-index offsets ``[L^n]``."""
    span = torch.arange(-radius, radius + 1, device=device)
    # itertools.product varies the last factor fastest; listing z, y, x keeps x fastest.
    grid = torch.tensor(list(itertools.product(range(2 * radius + 1), repeat=len(spatial))), device=device)
    offsets = span[grid].flip(-1)
    steps = torch.tensor(_axis_steps(spatial), device=device)
    return span, offsets, (offsets * steps).sum(-1)


def _raw_patches(
    flat: Tensor, spatial: tuple[int, ...], centres: Tensor, radius: int
) -> tuple[Tensor, list[Tensor]]:
    """Neighbourhood values before masking, and the per-axis in-frame masks.

    Returns ``values [B, K, P, L^n]`` (x fastest; entries off the frame hold arbitrary in-range pixels) and
    ``[inside_x, inside_y(, inside_z)]``, each ``[B, K, P, L]`` bool: the frame is a box, so the patch mask
    is their outer product and never needs to be built for all ``L^n`` entries. None when every patch is
    known to lie inside the frame.
    """
    span, _, flat_offsets = _patch_layout(spatial, radius, flat.device)
    index = ravel(centres, spatial)[..., None] + flat_offsets  # the centre's flat index plus fixed offsets
    b, k, p, m = index.shape
    limits = torch.tensor(list(reversed(spatial)), device=flat.device)
    if flat.device.type == "cpu" and bool(((centres >= radius) & (centres < limits - radius)).all()):
        # Every patch inside the frame (the usual case; checking costs no device sync on CPU): no masks.
        axis_inside = None
    else:
        index.clamp_(0, flat.shape[-1] - 1)  # keeps the gather legal; off-frame entries are masked
        axis_inside = [
            (centres[..., a, None] + span >= 0) & (centres[..., a, None] + span < spatial[-1 - a])
            for a in range(len(spatial))
        ]
    return flat.gather(-1, index.reshape(b, k, p * m)).reshape(b, k, p, m), axis_inside


def gather_patches(
    flat: Tensor, spatial: tuple[int, ...], centres: Tensor, radius: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Values of the ``(2r+1)^n`` neighbourhood of integer points, zero outside the frame.

    Only the neighbourhoods are read, so refining a peak costs O(r^n) per map instead of a full-map filter.

    Args:
        flat: ``[B, K, N]`` maps flattened over ``spatial``.
        centres: ``[B, K, P, n]`` long, (x, y[, z]) inside the frame.
        radius: r >= 0.

    Returns:
        ``values [B, K, P, L^n]``, ``positions [B, K, P, L^n, n]`` long and ``inside [B, K, P, L^n]`` bool,
        with L = 2r + 1 and the patch laid out with x fastest (reshape to ``[..., L, L(, L)]`` gives
        ``[..., (z,) y, x]``).
    """
    n = len(spatial)
    values, axis_inside = _raw_patches(flat, spatial, centres, radius)
    if axis_inside is None:
        axis_inside = [
            torch.ones(*centres.shape[:-1], 2 * radius + 1, dtype=torch.bool, device=flat.device)
        ] * n
    inside = axis_inside[0][..., None, :] & axis_inside[1][..., :, None]
    if n == 3:
        inside = inside[..., None, :, :] & axis_inside[2][..., :, None, None]
    inside = inside.flatten(-n)
    offsets = _patch_layout(spatial, radius, flat.device)[1]
    return values * inside, centres[..., None, :] + offsets, inside


def _gaussian_kernel1d(size: int, sigma: float | None, device, dtype) -> Tensor:
    if sigma is None:  # OpenCV's rule for sigma=0, which the DARK reference implementation relies on
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    k = torch.exp(-(x * x) / (2 * sigma * sigma))
    return k / k.sum()


@functools.lru_cache(maxsize=64)
def _blur_band(
    kernel: int, sigma: float | None, side: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``[side - kernel + 1, side]`` matrix whose rows are the shifted 1D Gaussian kernel."""
    k1 = _gaussian_kernel1d(kernel, sigma, device, dtype)
    band = torch.zeros(side - kernel + 1, side, dtype=dtype, device=device)
    for i in range(side - kernel + 1):
        band[i, i : i + kernel] = k1
    return band


def _blur_masked(
    patches: Tensor, axis_inside: list[Tensor] | None, kernel: int, sigma: float | None
) -> Tensor:
    """Separable 'valid' Gaussian blur of patches whose off-frame entries count as zero.

    Args:
        patches: ``[M, L, L(, L)]`` (``[..., (z,) y, x]``); axis_inside: per axis ``[M, L]`` bool, or
            None when every entry is inside the frame.

    Returns:
        ``[M, L-k+1, ...]``. Per axis: zero the off-frame entries (the frame mask is separable), then one
        product with a banded ``[L-k+1, L]`` matrix; for the few output pixels needed here that beats a
        convolution call.
    """
    band_t = _blur_band(kernel, sigma, patches.shape[-1], patches.dtype, patches.device).T
    x = patches
    n = patches.dim() - 1
    side, out = band_t.shape

    def masked(x: Tensor, axis: int) -> Tensor:  # x with the axis last; off-frame entries -> 0
        if axis_inside is None:
            return x
        mask = axis_inside[axis].reshape(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1])
        return x * mask.to(x.dtype)  # the maps are finite here (find_peaks), so 0 * value is 0

    if n == 2:  # the hot path: two plain GEMMs against the shared band
        band = band_t.T
        # (band @ rows^T)^T rather than rows @ band^T: BLAS is far faster with the long dimension last
        x = (band @ masked(x, 0).reshape(-1, side).mT).mT.reshape(-1, side, out)  # [M, y, x_out]
        x = (band @ masked(x.transpose(1, 2), 1).reshape(-1, side).mT).mT.reshape(-1, out, out)
        return x.transpose(1, 2)  # [M, y_out, x_out]
    for axis in range(n):
        x = torch.movedim(masked(torch.movedim(x, -1 - axis, -1), axis) @ band_t, -1, -1 - axis)
    return x


@functools.lru_cache(maxsize=16)
def _difference_stencils(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[3^n, n + n*n]``: columns map a ``3^n`` patch (x fastest) to the central-difference gradient and the
    full Hessian (mixed terms included) at its centre, so both come out of one matrix product."""

    def idx(d) -> int:  # d = (dx, dy[, dz]) in {-1, 0, 1}
        return sum((di + 1) * 3**i for i, di in enumerate(d))

    unit = [tuple(int(i == a) for i in range(n)) for a in range(n)]
    neg = [tuple(-v for v in u) for u in unit]
    stencil = torch.zeros(3**n, n + n * n, dtype=torch.float64)
    for a in range(n):
        stencil[idx(unit[a]), a], stencil[idx(neg[a]), a] = 0.5, -0.5
        col = n + a * n + a
        stencil[idx(unit[a]), col] += 1
        stencil[idx([0] * n), col] -= 2
        stencil[idx(neg[a]), col] += 1
        for b in range(n):
            if b != a:
                pp = [ua + ub for ua, ub in zip(unit[a], unit[b])]
                pm = [ua - ub for ua, ub in zip(unit[a], unit[b])]
                col = n + a * n + b
                for d, w in ((pp, 0.25), (pm, -0.25), ([-v for v in pm], -0.25), ([-v for v in pp], 0.25)):
                    stencil[idx(d), col] += w
    return stencil.to(dtype=dtype, device=device)


def _newton_offsets(logv: Tensor, n: int) -> Tensor:
    """One Newton step on a ``3^n`` log-patch. ``logv [M, 3^n]`` (x fastest) -> ``offset [M, n]``.

    Gradient and full Hessian by central differences. Where the Hessian is not negative definite the
    point is no maximum of a Gaussian and the step is skipped (offset 0).
    """
    diffs = logv @ _difference_stencils(n, logv.dtype, logv.device)
    grad, hess = diffs[:, :n], diffs[:, n:].reshape(-1, n, n)
    if n == 2:  # closed form: cheaper than a batched factorisation for 2x2
        dxx, dxy, dyy = hess[:, 0, 0], hess[:, 0, 1], hess[:, 1, 1]
        det = dxx * dyy - dxy * dxy
        ok = (dxx < 0) & (det > 0)
        safe = torch.where(ok, det, torch.ones_like(det))
        gx, gy = grad[:, 0], grad[:, 1]
        step = torch.stack([-(dyy * gx - dxy * gy) / safe, -(dxx * gy - dxy * gx) / safe], -1)
        return torch.where(ok[:, None], step, torch.zeros_like(step))
    chol, info = torch.linalg.cholesky_ex(-hess)  # succeeds iff -H is positive definite
    ok = info == 0
    chol = torch.where(ok[:, None, None], chol, torch.eye(n, dtype=chol.dtype, device=chol.device))
    step = torch.cholesky_solve(grad[..., None], chol)[..., 0]  # (-H)^-1 g = -H^-1 g
    return torch.where(ok[:, None], step, torch.zeros_like(step))


def dark_refine(
    maps: Tensor, spatial: tuple[int, ...], peaks: Tensor, kernel: int = 11, blur_sigma: float | None = None
) -> Tensor:
    """DARK's distribution-aware refinement of integer peaks (Zhang et al. 2020).

    Gaussian modulation (blur with a ``kernel``-wide Gaussian, zero outside the frame like the reference
    code), log, and one Newton/Taylor step with the full Hessian, evaluated only around each peak. The
    reference code's rescaling of the blurred map to the original maximum is a constant in log space and
    changes nothing, so it is omitted.

    Args:
        maps: ``[B, K, *spatial]`` sanitised heatmaps (see :func:`prepare_heatmaps`).
        peaks: ``[B, K, P, n]`` long integer peaks (x, y[, z]) inside the frame.
        kernel: odd blur width; 1 disables modulation.
        blur_sigma: blur standard deviation; None uses OpenCV's rule for the width (2.0 for 11).

    Returns:
        ``[B, K, P, n]`` refined coordinates (not yet clamped into the frame).
    """
    n = len(spatial)
    radius = (kernel - 1) // 2 + 1
    values, axis_inside = _raw_patches(maps.flatten(2), spatial, peaks, radius)
    b, k, p, m = values.shape
    side = 2 * radius + 1
    patches = values.reshape(b * k * p, *([side] * n))
    masks = None if axis_inside is None else [a.reshape(b * k * p, side) for a in axis_inside]
    blurred = _blur_masked(patches, masks, kernel, blur_sigma)
    blurred = blurred.reshape(b * k * p, 3**n)
    logv = torch.log(blurred.clamp(min=1e-10))
    offset = _newton_offsets(logv, n).reshape(b, k, p, n)
    return peaks.to(maps.dtype) + offset


def _check_kernel(kernel: int) -> int:
    if int(kernel) != kernel or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd integer, got {kernel}")
    return int(kernel)


def dark_decode(heatmaps: Tensor, kernel: int = 11, blur_sigma: float | None = None) -> tuple[Tensor, Tensor]:
    """DARK decoding: argmax, then :func:`dark_refine`. ``[B, K, *S] -> coords [B, K, n], scores [B, K]``."""
    kernel = _check_kernel(kernel)
    peaks = find_peaks(heatmaps, "dark")
    coords = dark_refine(peaks.maps, peaks.spatial, peaks.ints[:, :, None], kernel, blur_sigma)[:, :, 0]
    return _finish(coords, peaks)


def com_decode(heatmaps: Tensor, radius: int | None = None) -> tuple[Tensor, Tensor]:
    """Centre of mass of the positive part of the map.

    Args:
        heatmaps: ``[B, K, *S]``.
        radius: None uses the whole map; r >= 0 uses the ``(2r+1)^n`` window around the argmax (which
            keeps far-away background from pulling the estimate to the frame centre).

    Returns:
        ``coords [B, K, n]``, ``scores [B, K]``; a map with no positive mass falls back to its argmax.
    """
    peaks = find_peaks(heatmaps, "com")
    h, flat, spatial, ints = peaks.maps, peaks.flat, peaks.spatial, peaks.ints
    if radius is None:
        w = h.clamp(min=0)
        mass = w.flatten(2).sum(-1)
        sums = []
        for axis, grid in enumerate(axis_grids(spatial, h.device, h.dtype)):
            other = [2 + d for d in range(len(spatial)) if d != len(spatial) - 1 - axis]
            sums.append((w.sum(other) * grid).sum(-1))
        weighted = torch.stack(sums, -1)
    else:
        if int(radius) != radius or radius < 0:
            raise ValueError(f"com radius must be a non-negative integer or None, got {radius}")
        values, pos, _ = gather_patches(flat, spatial, ints[:, :, None], int(radius))
        w = values[:, :, 0].clamp(min=0)
        mass = w.sum(-1)
        weighted = (w[..., None] * pos[:, :, 0].to(h.dtype)).sum(-2)
    has_mass = mass > 0
    coords = torch.where(
        has_mass[..., None], weighted / torch.where(has_mass, mass, 1)[..., None], ints.to(h.dtype)
    )
    return _finish(coords, peaks)


def soft_argmax(heatmaps: Tensor, beta: float = 1.0) -> tuple[Tensor, Tensor]:
    """Soft-argmax / integral regression: ``E[x]`` under ``softmax(beta * h)``; differentiable.

    The coordinates are a convex combination of pixel centres, so they are inside the frame by
    construction and are not clamped (clamping would cut the gradient).

    ``[B, K, *S] -> coords [B, K, n], scores [B, K]`` (scores carry no gradient).
    """
    if not beta > 0:
        raise ValueError(f"soft_argmax beta must be > 0, got {beta}")
    h, spatial = prepare_heatmaps(heatmaps, "soft_argmax")
    prob = torch.softmax(beta * h.flatten(2), -1).reshape(h.shape)
    coords = []
    for axis, grid in enumerate(axis_grids(spatial, h.device, h.dtype)):
        other = [2 + d for d in range(len(spatial)) if d != len(spatial) - 1 - axis]
        coords.append((prob.sum(other) * grid).sum(-1))
    flat = h.detach().flatten(2)
    maxval = flat.amax(-1)
    flat_map = flat.amin(-1) == maxval
    return torch.stack(coords, -1), torch.where(flat_map, torch.zeros_like(maxval), maxval.clamp(min=0))


class _Decoder:
    """Callable decoder object: ``decoder(heatmaps) -> (coords, scores)``; configured once, used per batch."""

    fn = staticmethod(argmax_decode)
    dims = (2, 3)

    def __init__(self, **options) -> None:
        self.options = options

    def __call__(self, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        if isinstance(heatmaps, Tensor) and heatmaps.dim() - 2 not in self.dims:
            raise ValueError(
                f"{type(self).__name__} decodes {self.dims}-D maps, got shape {list(heatmaps.shape)}"
            )
        return type(self).fn(heatmaps, **self.options)

    decode = __call__

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


class ArgmaxDecoder(_Decoder):
    fn = staticmethod(argmax_decode)


class StandardDecoder(_Decoder):
    fn = staticmethod(standard_decode)

    def __init__(self, shift: float = 0.25) -> None:
        super().__init__(shift=shift)


class DarkDecoder(_Decoder):
    fn = staticmethod(dark_decode)

    def __init__(self, kernel: int = 11, blur_sigma: float | None = None) -> None:
        super().__init__(kernel=_check_kernel(kernel), blur_sigma=blur_sigma)


class CentreOfMassDecoder(_Decoder):
    fn = staticmethod(com_decode)

    def __init__(self, radius: int | None = None) -> None:
        super().__init__(radius=radius)


class SoftArgmaxDecoder(_Decoder):
    fn = staticmethod(soft_argmax)

    def __init__(self, beta: float = 1.0) -> None:
        if not beta > 0:
            raise ValueError(f"soft_argmax beta must be > 0, got {beta}")
        super().__init__(beta=beta)
