"""Single-peak decoders: heatmaps ``[B, K, H, W]`` or ``[B, K, D, H, W]`` -> ``coords [B, K, n]``, ``scores [B, K]``.

Shapes and coordinate convention: see :mod:`heatlit.codecs`. Every decoder here shares the same
bad-input policy (:func:`prepare_heatmaps`) and the same score (the clamped maximum).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from heatlit.codecs.coords import axis_grids, frame_centre, ravel, unravel

Tensor = torch.Tensor


def prepare_heatmaps(heatmaps: Tensor, name: str = "decoder") -> tuple[Tensor, tuple[int, ...]]:
    """Validate and sanitise heatmaps.

    Args:
        heatmaps: ``[B, K, H, W]`` or ``[B, K, D, H, W]``, any real dtype.

    Returns:
        ``(maps, spatial)``: floating maps in which every non-finite value (NaN, +-Inf) is replaced by
        the smallest finite value of its own map (0 for a map with none): such values carry no usable
        evidence, and a single one would otherwise poison every coordinate downstream. The per-map
        minimum, not 0, keeps logits (where -Inf is legitimate) ordered. Also the spatial size.
    """
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
    if not heatmaps.is_floating_point():
        heatmaps = heatmaps.float()
    finite = torch.isfinite(heatmaps)
    floor = torch.where(finite, heatmaps, torch.inf).flatten(2).amin(-1)
    floor = torch.where(torch.isfinite(floor), floor, 0).reshape(*floor.shape, *([1] * len(spatial)))
    return torch.where(finite, heatmaps, floor.to(heatmaps.dtype)), spatial


def _finish(coords: Tensor, flat: Tensor, maxval: Tensor, spatial: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Shared epilogue: frame centre and score 0 for flat maps, coordinates clamped into the frame.

    Args:
        coords: ``[B, K, n]``; flat: ``[B, K, N]`` sanitised maps; maxval: ``[B, K]``.
    """
    no_peak = flat.amin(-1) == maxval
    coords = torch.where(no_peak[..., None], frame_centre(spatial, coords), coords)
    upper = torch.tensor([s - 0.5 for s in reversed(spatial)], device=coords.device, dtype=coords.dtype)
    coords = torch.minimum(torch.clamp(coords, min=-0.5), upper)
    scores = torch.where(no_peak, torch.zeros_like(maxval), maxval.clamp(min=0))
    return coords, scores


def _argmax(flat: Tensor, spatial: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """``flat [B, K, N]`` -> ``(index [B, K] long, integer coords [B, K, n] long, maxval [B, K])``."""
    maxval, index = flat.max(-1)
    return index, unravel(index, spatial), maxval


def _flat(h: Tensor) -> Tensor:
    return h.flatten(2)


def argmax_decode(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Integer location of the maximum. ``[B, K, *S] -> coords [B, K, n], scores [B, K]``."""
    h, spatial = prepare_heatmaps(heatmaps, "argmax")
    flat = _flat(h)
    _, ints, maxval = _argmax(flat, spatial)
    return _finish(ints.to(h.dtype), flat, maxval, spatial)


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
    h, spatial = prepare_heatmaps(heatmaps, "standard")
    flat = _flat(h)
    index, ints, maxval = _argmax(flat, spatial)
    coords = ints.to(h.dtype)
    n_pix = flat.shape[-1]
    offsets = []
    for axis, step in enumerate(_axis_steps(spatial)):
        size = spatial[-1 - axis]
        inner = (ints[..., axis] > 0) & (ints[..., axis] < size - 1)
        hi = flat.gather(-1, (index + step).clamp(max=n_pix - 1)[..., None])[..., 0]
        lo = flat.gather(-1, (index - step).clamp(min=0)[..., None])[..., 0]
        offsets.append(torch.where(inner, shift * torch.sign(hi - lo), torch.zeros_like(hi)))
    return _finish(coords + torch.stack(offsets, -1), flat, maxval, spatial)


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
    span = torch.arange(-radius, radius + 1, device=flat.device)
    # itertools.product varies the last factor fastest; listing z, y, x keeps x fastest as documented.
    grid = torch.tensor(list(itertools.product(range(2 * radius + 1), repeat=n)), device=flat.device)
    offsets = span[grid].flip(-1)  # [L^n, n] in (x, y[, z]) order
    pos = centres[..., None, :] + offsets
    limits = torch.tensor(list(reversed(spatial)), device=flat.device)
    inside = ((pos >= 0) & (pos < limits)).all(-1)
    index = ravel(torch.minimum(pos.clamp(min=0), limits - 1), spatial)
    b, k, p, m = index.shape
    values = flat.gather(-1, index.reshape(b, k, p * m)).reshape(b, k, p, m)
    return values * inside, pos, inside


def _gaussian_kernel1d(size: int, sigma: float | None, device, dtype) -> Tensor:
    if sigma is None:  # OpenCV's rule for sigma=0, which the DARK reference implementation relies on
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    k = torch.exp(-(x * x) / (2 * sigma * sigma))
    return k / k.sum()


def _blur_valid(patches: Tensor, n: int, kernel: int, sigma: float | None) -> Tensor:
    """Separable Gaussian blur, 'valid' mode. ``[M, L, L(, L)] -> [M, L-k+1, ...]``."""
    if kernel == 1:
        return patches
    k1 = _gaussian_kernel1d(kernel, sigma, patches.device, patches.dtype)
    conv = F.conv2d if n == 2 else F.conv3d
    x = patches[:, None]
    for axis in range(n):
        shape = [1, 1] + [1] * n
        shape[2 + axis] = kernel
        x = conv(x, k1.reshape(shape))
    return x[:, 0]


def _newton_offsets(logv: Tensor, n: int) -> Tensor:
    """One Newton step on a ``3^n`` log-patch. ``logv [M, 3^n]`` (x fastest) -> ``offset [M, n]``.

    Gradient and Hessian by central differences (the full Hessian, mixed terms included). Where the
    Hessian is not negative definite the point is no maximum of a Gaussian and the step is skipped.
    """

    def at(*d: int) -> Tensor:  # d = (dx, dy[, dz]) in {-1, 0, 1}
        return logv[:, sum((di + 1) * 3**i for i, di in enumerate(d))]

    unit = [tuple(int(i == a) for i in range(n)) for a in range(n)]
    neg = [tuple(-v for v in u) for u in unit]
    centre = at(*([0] * n))
    grad = torch.stack([0.5 * (at(*unit[a]) - at(*neg[a])) for a in range(n)], -1)
    hess = logv.new_zeros(logv.shape[0], n, n)
    for a in range(n):
        hess[:, a, a] = at(*unit[a]) - 2 * centre + at(*neg[a])
        for b in range(a + 1, n):
            pp = tuple(ua + ub for ua, ub in zip(unit[a], unit[b]))
            pm = tuple(ua - ub for ua, ub in zip(unit[a], unit[b]))
            hab = 0.25 * (at(*pp) - at(*pm) - at(*(-v for v in pm)) + at(*(-v for v in pp)))
            hess[:, a, b] = hab
            hess[:, b, a] = hab
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
    values, _, _ = gather_patches(maps.flatten(2), spatial, peaks, radius)
    b, k, p, m = values.shape
    side = 2 * radius + 1
    patches = values.reshape(b * k * p, *([side] * n))
    blurred = _blur_valid(patches, n, kernel, blur_sigma).reshape(b * k * p, 3**n)
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
    h, spatial = prepare_heatmaps(heatmaps, "dark")
    flat = _flat(h)
    _, ints, maxval = _argmax(flat, spatial)
    coords = dark_refine(h, spatial, ints[:, :, None], kernel, blur_sigma)[:, :, 0]
    return _finish(coords, flat, maxval, spatial)


def com_decode(heatmaps: Tensor, radius: int | None = None) -> tuple[Tensor, Tensor]:
    """Centre of mass of the positive part of the map.

    Args:
        heatmaps: ``[B, K, *S]``.
        radius: None uses the whole map; r >= 0 uses the ``(2r+1)^n`` window around the argmax (which
            keeps far-away background from pulling the estimate to the frame centre).

    Returns:
        ``coords [B, K, n]``, ``scores [B, K]``; a map with no positive mass falls back to its argmax.
    """
    h, spatial = prepare_heatmaps(heatmaps, "com")
    flat = _flat(h)
    _, ints, maxval = _argmax(flat, spatial)
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
    return _finish(coords, flat, maxval, spatial)


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
    flat = _flat(h.detach())
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
