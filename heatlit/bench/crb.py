"""The Cramer-Rao bound of locating a sampled Gaussian in white noise: the floor DARK is measured against."""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor


def gaussian_crb(
    centres: Tensor,
    heatmap_size: Sequence[int],
    sigma: float,
    noise_std: float,
    amplitude: float = 1.0,
    estimate_amplitude: bool = False,
) -> Tensor:
    """Cramer-Rao bound on the per-axis std of any unbiased estimate of a Gaussian's centre.

    Model: pixel ``(i, j)`` (``x = j, y = i``) reads ``mu = A exp(-((x - x0)^2 + (y - y0)^2) / (2 s^2))``
    plus i.i.d. ``N(0, noise_std^2)`` noise, on the finite ``H x W`` grid. The Fisher information is
    ``I = sum_pixels grad mu grad mu^T / noise_std^2`` over ``theta = (x0, y0)`` (amplitude known) or
    ``(x0, y0, A)`` (``estimate_amplitude``); the bound is ``sqrt(diag(I^-1))`` for x0 and y0. The
    amplitude-known bound is the lower (tighter) one. In the continuum limit, far from the borders,
    ``I_xx -> A^2 pi / (2 noise_std^2)``, i.e. the bound -> ``noise_std sqrt(2 / pi) / A``, whatever s.

    The Gaussian is separable, so every sum is a product of two 1D sums: O(H + W) per centre.

    Args:
        centres: ``[N, 2]`` (x0, y0) in heatmap pixels.
        heatmap_size: ``(H, W)``.

    Returns:
        ``[N, 2]`` float64 per-axis std bounds (x, y), in pixels.
    """
    height, width = (int(s) for s in heatmap_size)
    c = centres.to(torch.float64).reshape(-1, 2)
    s2 = float(sigma) ** 2
    amp = float(amplitude)
    dx = torch.arange(width, dtype=torch.float64) - c[:, :1]  # [N, W]
    dy = torch.arange(height, dtype=torch.float64) - c[:, 1:]  # [N, H]
    gx2 = torch.exp(-(dx * dx) / s2)  # squared 1D profiles: exp(-d^2 / (2 s^2))^2
    gy2 = torch.exp(-(dy * dy) / s2)
    # Moments m_k = sum g^2 d^k per axis: d mu/d x0 = mu (x - x0) / s^2, d mu/d A = mu / A.
    x0, x1, x2 = gx2.sum(-1), (gx2 * dx).sum(-1), (gx2 * dx * dx).sum(-1)
    y0, y1, y2 = gy2.sum(-1), (gy2 * dy).sum(-1), (gy2 * dy * dy).sum(-1)
    i_xx = amp**2 * x2 * y0 / s2**2
    i_yy = amp**2 * x0 * y2 / s2**2
    i_xy = amp**2 * x1 * y1 / s2**2
    if estimate_amplitude:
        i_xa = amp * x1 * y0 / s2
        i_ya = amp * x0 * y1 / s2
        i_aa = x0 * y0
        fim = torch.stack(
            [
                torch.stack([i_xx, i_xy, i_xa], -1),
                torch.stack([i_xy, i_yy, i_ya], -1),
                torch.stack([i_xa, i_ya, i_aa], -1),
            ],
            -2,
        )
    else:
        fim = torch.stack([torch.stack([i_xx, i_xy], -1), torch.stack([i_xy, i_yy], -1)], -2)
    cov = torch.linalg.inv(fim / noise_std**2)
    return cov.diagonal(dim1=-2, dim2=-1)[:, :2].sqrt()
