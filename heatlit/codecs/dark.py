"""DARK decoding (Zhang et al. 2020): Gaussian modulation, log, one Newton step with the full Hessian,
and the border rule that keeps it exact at the edge of the frame.

Shapes and coordinate convention: see :mod:`heatlit.codecs`.

Border rule (why it is right)
-----------------------------
DARK rests on one fact: the blur of a Gaussian by a Gaussian is a Gaussian with the same centre, so the
log of the modulated map is a quadratic whose Newton step lands on the centre. That holds only where the
blur reads real pixels. Within ``r + 1`` pixels of an edge (``r = (kernel - 1) // 2``) the blur reaches
outside the frame, where the map is unknown, and every way of inventing the missing pixels moves the
peak: for sigma-2 targets centred within 1.5 px of the edge and the reference kernel (11, sigma 2), zero
padding (the reference's) pulls DARK 0.8-1.2 px inwards on average (``make bench``, border table), and
reflection or normalised convolution move it by as much in 1D trials. The reference codes skip the step
there (argmax error).

So near an edge heatlit takes DARK's step without the modulation: it fits DARK's own model, a quadratic in
the log of the map (a Gaussian of any covariance), to the in-frame pixels of the window of radius
``max(2, ceil(1.5 * blur_sigma))`` around the argmax, and moves to the fitted maximum. The fit is weighted
least squares with weight ``value^2`` (``var(log v) ~ noise^2 / v^2`` under additive noise), so faint
pixels, whose logarithm is noise, hardly count; non-positive ones are left out. On a noise-free Gaussian
the log is exactly quadratic and the fit is exact wherever the window holds six (3D: ten) positive
pixels, corners included. As in the interior, a fit that is not a maximum (Hessian not negative definite),
or that is singular, gives no step; and the step is clamped to one pixel per axis, since the true
maximum of a peak is never further than half a pixel from its argmax, so only noise can ask for more.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

import heatlit.codecs.base as base
from heatlit.codecs.base import Decoder, Peaks, argmax_flat, check_heatmaps, find_peaks, finish
from heatlit.codecs.blur import check_kernel, gaussian_kernel1d, opencv_sigma
from heatlit.codecs.patches import inside_frame, patch_offsets, patch_values, window_values

Tensor = torch.Tensor


def modulation_for_sigma(sigma: float) -> tuple[int, float]:
    """``(kernel, blur_sigma)`` for targets of width ``sigma``: blur at the target's own width, kernel
    ``2 ceil(2.5 sigma) + 1``. For sigma 2 this is the reference's (11, 2.0), so a sweep over sigma keeps
    DARK's modulation in the same proportion to the target as the published setting."""
    if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(
            f"target_sigma must be one positive number (heatmap pixels), got {sigma!r}; for per-keypoint "
            "sigmas set kernel and blur_sigma by hand"
        )
    return 2 * math.ceil(2.5 * sigma) + 1, float(sigma)


@functools.lru_cache(maxsize=64)
def _blur_band(
    kernel: int, sigma: float | None, side: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``[side - kernel + 1, side]`` matrix whose rows are the shifted 1D Gaussian kernel."""
    k1 = gaussian_kernel1d(kernel, sigma, dtype).to(device)
    band = torch.zeros(side - kernel + 1, side, dtype=dtype, device=device)
    for i in range(side - kernel + 1):
        band[i, i : i + kernel] = k1
    return band


def _blur_patches(patches: Tensor, kernel: int, sigma: float | None) -> Tensor:
    """Separable 'valid' Gaussian blur. ``[M, L, L(, L)]`` (``[..., (z,) y, x]``) -> ``[M, L-k+1, ...]``.

    For the few output pixels needed here one product per axis with a banded ``[L-k+1, L]`` matrix beats
    a convolution call.
    """
    band = _blur_band(kernel, sigma, patches.shape[-1], patches.dtype, patches.device)
    n = patches.dim() - 1
    out, side = band.shape
    if n == 2:  # the hot path: two plain GEMMs against the shared band
        # (band @ rows^T)^T rather than rows @ band^T: BLAS is far faster with the long dimension last
        x = (band @ patches.reshape(-1, side).mT).mT.reshape(-1, side, out)  # [M, y, x_out]
        x = (band @ x.transpose(1, 2).reshape(-1, side).mT).mT.reshape(-1, out, out)
        return x.transpose(1, 2)  # [M, y_out, x_out]
    x = patches
    for axis in range(n):
        x = torch.movedim(torch.movedim(x, -1 - axis, -1) @ band.T, -1, -1 - axis)
    return x


@functools.lru_cache(maxsize=64)
def _modulation_2d(
    kernel: int, sigma: float | None, side: int, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """``[9, side^2]``: the 'valid' 2D blur of a ``side x side`` patch (x fastest) at its central 3x3 pixels,
    as one matrix (the Kronecker product of the 1D bands): ``matrix @ patches^T`` is a single GEMM with the
    long dimension last, several times faster on CPUs than two separable products for the ~10^3-10^4
    patches decoded at once."""
    band = _blur_band(kernel, sigma, side, dtype, device)
    return torch.kron(band, band)


def _modulated_rows(patches: Tensor, n: int, kernel: int, sigma: float | None) -> Tensor:
    """``[M, L^n]`` patches -> ``[3^n, M]``, their central ``3^n`` pixels after the modulation (kernel 1:
    none), one row per pixel (x fastest)."""
    if kernel == 1:
        return patches.mT
    side = round(patches.shape[-1] ** (1 / n))
    if n == 2:
        return _modulation_2d(kernel, sigma, side, patches.dtype, patches.device) @ patches.mT
    return _blur_patches(patches.reshape(-1, *([side] * n)), kernel, sigma).reshape(len(patches), -1).mT


def _log_floor(x: Tensor, floor: float = 1e-10) -> Tensor:
    """``log(max(x, floor))`` (DARK's floor by default); numpy's vectorised log on CPU (~3x torch's)."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:
        # both passes in numpy: single-threaded, so no torch thread team to wait for on a busy CPU
        a = x.numpy()
        return torch.from_numpy(np.log(np.maximum(a, np.array(floor, a.dtype))))
    return torch.log(x.clamp(min=floor))


def central_differences(rows: Tensor, n: int) -> Tensor:
    """Gradient and full Hessian (mixed terms included) by central differences at the centre of ``3^n``
    patches: rows ``[3^n, M]`` (one per pixel, x fastest) -> ``[n + n*n, M]`` (the gradient, then the
    Hessian row-major).

    Elementwise over contiguous rows rather than one product with a stencil matrix: a matrix product this
    thin gains nothing from BLAS, whose threads stall on a busy CPU (tens of ms at 2 threads under load).
    On CPU the rows are combined in numpy (a fraction of torch's per-op overhead for these short rows).
    """
    host = base.host_checks(rows) and rows.dtype in (torch.float32, torch.float64) and not rows.requires_grad
    x = rows.numpy() if host else rows
    c = (3**n - 1) // 2  # the centre pixel; axis a's neighbours are 3^a rows away
    step = [3**a for a in range(n)]
    grad = [(x[c + s] - x[c - s]) * 0.5 for s in step]
    hess = [[None] * n for _ in range(n)]
    for a, sa in enumerate(step):
        hess[a][a] = (x[c + sa] + x[c - sa]) - 2 * x[c]
        for b in range(a):
            sb = step[b]
            mixed = ((x[c + sa + sb] - x[c + sa - sb]) - (x[c - sa + sb] - x[c - sa - sb])) * 0.25
            hess[a][b] = hess[b][a] = mixed
    out = grad + [hess[a][b] for a in range(n) for b in range(n)]
    return torch.from_numpy(np.stack(out)) if host else torch.stack(out)


def newton_step(d: Tensor, n: int) -> Tensor:
    """``-H^-1 g`` from derivative rows ``d [n + n*n, M]`` (the gradient, then the Hessian row-major) ->
    ``[M, n]``; 0 where H is not negative definite (the point is no maximum of a Gaussian, and a step there
    would jump)."""
    if n == 2:  # closed form on contiguous rows: cheaper than a batched factorisation for 2x2
        gx, gy, dxx, dxy, dyy = d[0], d[1], d[2], d[3], d[5]
        det = dxx * dyy - dxy * dxy
        ok = (dxx < 0) & (det > 0)
        safe = torch.where(ok, det, 1)
        step = torch.stack([dxy * gy - dyy * gx, dxy * gx - dxx * gy]) / safe
        return torch.where(ok, step, 0).mT
    grad, hess = d[:n].mT, d[n:].mT.reshape(-1, n, n)
    chol, info = torch.linalg.cholesky_ex(-hess)  # succeeds iff -H is positive definite
    ok = info == 0
    chol = torch.where(ok[:, None, None], chol, torch.eye(n, dtype=chol.dtype, device=chol.device))
    step = torch.cholesky_solve(grad[..., None], chol)[..., 0]  # (-H)^-1 g = -H^-1 g
    return torch.where(ok[:, None], step, 0)


@functools.lru_cache(maxsize=16)
def _quadratic_design(n: int, radius: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Float64 design of a full quadratic over a patch.

    Returns ``A [L^n, q]`` (columns 1, x_i, then x_i x_j for i <= j), ``Q [L^n, q*q]`` (each row's outer
    product, so a weighted normal matrix is one GEMM) and ``to_hessian [q, n*n]`` (coefficients -> the
    flattened Hessian of the quadratic).
    """
    d = patch_offsets(n, radius).double()
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    quad = [d[:, i : i + 1] * d[:, j : j + 1] for i, j in pairs]
    a = torch.cat([torch.ones(len(d), 1, dtype=torch.float64), d, *quad], 1)
    q = a.shape[1]
    to_hessian = torch.zeros(q, n * n, dtype=torch.float64)
    for col, (i, j) in enumerate(pairs):
        to_hessian[1 + n + col, i * n + j] = to_hessian[1 + n + col, j * n + i] = 2.0 if i == j else 1.0
    return a.to(device), (a[:, :, None] * a[:, None, :]).reshape(-1, q * q).to(device), to_hessian.to(device)


def fit_log_quadratic(values: Tensor, inside: Tensor, n: int, radius: int) -> tuple[Tensor, Tensor]:
    """Weighted least-squares fit of a quadratic to the log of a window; its gradient and Hessian at the centre.

    Args:
        values: ``[M, L^n]`` window around integer points (x fastest), L = 2 radius + 1.
        inside: ``[M, L^n]`` bool, the entries to use (inside the frame).

    Returns:
        ``grad [M, n]`` and ``hess [M, n, n]`` of the fitted quadratic at the window centre, in the dtype of
        ``values``; the gradient is 0 (no step) where the fit is singular (fewer than six, in 3D ten,
        positive entries, or a degenerate layout). Weights are ``value^2``, non-positive values get 0;
        see the module docstring.
    """
    rows = _fit_rows(values, inside, n, radius)
    return rows[:n].mT, rows[n:].mT.reshape(-1, n, n)


def _fit_rows(values: Tensor, inside: Tensor, n: int, radius: int) -> Tensor:
    """:func:`fit_log_quadratic` as derivative rows ``[n + n*n, M]`` (gradient, then Hessian row-major)."""
    a, q_rows, to_hessian = _quadratic_design(n, radius, values.device)
    q = a.shape[1]
    v = torch.where(inside, values, 0).clamp(min=0)  # off the frame or not positive: weight 0
    logv = _log_floor(v, torch.finfo(v.dtype).tiny).double()  # finite; counts 0 where w is 0
    v = v.double()
    w = v.square()  # float64 holds any map's scale
    coef, info = torch.linalg.solve_ex((w @ q_rows).reshape(-1, q, q), (w * logv) @ a)
    ok = (info == 0) & ((v > 0).sum(-1) >= q)  # at least q pixels with weight
    coef = torch.where(ok[:, None], coef, 0).mT
    return torch.cat([coef[1 : 1 + n], to_hessian.mT @ coef]).to(values.dtype)


def fit_radius(kernel: int, blur_sigma: float | None) -> int:
    """Window radius of the border rule: about 1.5 modulation sigmas (the scale DARK expects), at least 2."""
    sigma = opencv_sigma(kernel) if blur_sigma is None else blur_sigma
    return max(2, math.ceil(1.5 * sigma))


def _border_rule(
    d: Tensor,
    flat: Tensor,
    spatial: tuple[int, ...],
    peaks: Tensor,
    reach: int,
    radius: int,
    read: list[Tensor],
) -> Tensor:
    """Replace the derivative rows ``d [n + n*n, M]`` of peaks within ``reach`` px of an edge by those of
    :func:`fit_log_quadratic` on their ``radius`` window; the windows read are appended to ``read``.

    ``flat [B, K, N]`` and ``peaks [B, K, P, n]`` (M = B K P). On CPU only the border peaks are fitted;
    elsewhere all are (no host sync) and the border ones kept.
    """
    n = len(spatial)
    if base.host_checks(peaks):  # the bookkeeping in numpy: a few small arrays, at a fraction of the cost
        at = peaks.reshape(-1, n).numpy()
        border = np.zeros(len(at), np.bool_)
        for axis, size in enumerate(reversed(spatial)):
            border |= (at[:, axis] < reach) | (at[:, axis] >= size - reach)
        rows = np.flatnonzero(border)
        if not len(rows):
            return d
        centres = torch.from_numpy(at[rows])
        rows = torch.from_numpy(rows)
        windows = window_values(
            flat.reshape(-1, flat.shape[-1]), rows // peaks.shape[2], centres, spatial, radius
        )
    else:
        limits = torch.tensor(list(reversed(spatial)), device=peaks.device)
        border = ((peaks < reach) | (peaks >= limits - reach)).any(-1).reshape(-1)
        rows, centres = None, peaks.reshape(-1, n)
        windows = patch_values(flat, spatial, peaks, radius).reshape(len(centres), -1)
    read.append(windows)
    fitted = _fit_rows(windows, inside_frame(centres, spatial, radius), n, radius)
    if rows is None:
        return torch.where(border, fitted, d)
    d[:, rows] = fitted  # d is the caller's fresh product: updated in place
    return d


def dark_refine(
    maps: Tensor,
    spatial: tuple[int, ...],
    peaks: Tensor,
    kernel: int = 11,
    blur_sigma: float | None = None,
    patches: Tensor | None = None,
) -> Tensor:
    """DARK's distribution-aware refinement of integer peaks (Zhang et al. 2020).

    Gaussian modulation (blur with a ``kernel``-wide Gaussian), log, and one Newton/Taylor step with the
    full Hessian by central differences, evaluated only around each peak; near the frame's edge the border
    rule (module docstring). The step is skipped where the Hessian is not negative definite and clamped to
    one pixel per axis (the maximum of a peak is never further than half a pixel from its argmax; only
    noise asks for more). The reference code's rescaling of the blurred map to the original maximum is a
    constant in log space and changes nothing, so it is omitted.

    Args:
        maps: ``[B, K, *spatial]`` sanitised heatmaps (see :func:`heatlit.codecs.base.prepare_heatmaps`).
        peaks: ``[B, K, P, n]`` long integer peaks (x, y[, z]) inside the frame.
        kernel: odd blur width; 1 disables modulation.
        blur_sigma: blur standard deviation; None uses OpenCV's rule for the width (2.0 for 11).
        patches: ``[B, K, P, L^n]`` the pixels around the peaks as
            :func:`~heatlit.codecs.patches.patch_values` reads them with ``shift_inside`` and radius
            ``(kernel - 1) // 2 + 1``, when the caller has them already.

    Returns:
        ``[B, K, P, n]`` refined coordinates (not yet clamped into the frame).
    """
    return _refine(maps.flatten(2), spatial, peaks, kernel, blur_sigma, patches)[0]


def _refine(
    flat: Tensor,
    spatial: tuple[int, ...],
    peaks: Tensor,
    kernel: int,
    blur_sigma: float | None,
    patches: Tensor | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """:func:`dark_refine` on ``flat [B, K, N]`` maps; also returns every pixel value it read (patches and
    border windows), so that a caller that skipped sanitising can check them."""
    n = len(spatial)
    reach = (kernel - 1) // 2 + 1  # the blur's reach plus the stencil's one pixel
    # border peaks' patches are discarded (the border rule), so they may be shifted inside the frame
    if patches is None:
        patches = patch_values(flat, spatial, peaks, reach, shift_inside=True)
    read = [patches]
    # one row per derivative and one column per peak: each product and elementwise op then runs over
    # contiguous rows, the layout CPU kernels are fastest on
    modulated = _modulated_rows(patches.reshape(-1, patches.shape[-1]), n, kernel, blur_sigma)
    d = central_differences(_log_floor(modulated), n)
    d = _border_rule(d, flat, spatial, peaks, reach, fit_radius(kernel, blur_sigma), read)
    step = newton_step(d, n).clamp(-1, 1)
    return (peaks.reshape(-1, n).to(flat.dtype) + step).reshape(peaks.shape), read


def dark_decode(heatmaps: Tensor, kernel: int = 11, blur_sigma: float | None = None) -> tuple[Tensor, Tensor]:
    """DARK decoding: argmax, then :func:`dark_refine`. ``[B, K, *S] -> coords [B, K, n], scores [B, K]``."""
    kernel = check_kernel(kernel)
    h, spatial = check_heatmaps(heatmaps, "dark")
    if base.host_checks(h) and not h.requires_grad and h.numel():
        out = _decode_finite(h, spatial, kernel, blur_sigma)
        if out is not None:
            return out
    peaks = find_peaks(h, "dark")
    coords = dark_refine(peaks.maps, peaks.spatial, peaks.ints[:, :, None], kernel, blur_sigma)[:, :, 0]
    return finish(coords, peaks)


def _decode_finite(
    h: Tensor, spatial: tuple[int, ...], kernel: int, blur_sigma: float | None
) -> tuple[Tensor, Tensor] | None:
    """:func:`dark_decode` on CPU without :func:`~heatlit.codecs.base.find_peaks`' pass for the minimum.

    The argmax exposes NaN and +Inf; the pixels the refinement reads must then be finite too (a -Inf
    elsewhere changes nothing that is computed), and a map is flat only if its patch around the maximum
    is, so the minimum is needed for those maps alone. None where a check fails: the caller sanitises.
    """
    flat = h.flatten(2)
    index, ints, maxval = argmax_flat(flat, spatial)
    if not bool(torch.isfinite(maxval).all()):
        return None
    coords, read = _refine(flat, spatial, ints[:, :, None], kernel, blur_sigma)
    if not all(bool(torch.isfinite(values.sum())) for values in read):
        return None
    level = read[0].flatten(2).amin(-1) == maxval  # the patch holds the maximum: level means maybe flat
    no_peak = torch.zeros_like(level)
    if bool(level.any()):
        no_peak[level] = flat[level].amin(-1) == maxval[level]
    return finish(coords[:, :, 0], Peaks(h, flat, spatial, index, ints, maxval, no_peak))


class DarkDecoder(Decoder):
    """:func:`dark_decode`. ``target_sigma`` (the encoding's sigma), when set, replaces ``kernel`` and
    ``blur_sigma`` by :func:`modulation_for_sigma`; the default keeps the reference's kernel 11."""

    fn = staticmethod(dark_decode)

    def __init__(
        self, kernel: int = 11, blur_sigma: float | None = None, target_sigma: float | None = None
    ) -> None:
        if target_sigma is not None:
            kernel, blur_sigma = modulation_for_sigma(target_sigma)
        if blur_sigma is not None and not (math.isfinite(blur_sigma) and blur_sigma > 0):
            raise ValueError(f"blur_sigma must be > 0 or None, got {blur_sigma}")
        super().__init__(kernel=check_kernel(kernel), blur_sigma=blur_sigma)
