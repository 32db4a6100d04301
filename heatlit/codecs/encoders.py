"""Gaussian target heatmaps from coordinates, quantised (biased) or unbiased (DARK), 2D or 3D.

Shapes and coordinate convention: see :mod:`heatlit.codecs`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from heatlit.codecs.coords import axis_grids

Tensor = torch.Tensor

UNDERFLOW = -40.0  # exp(-40) ~ 4e-18; the product of two such profile values is still a normal float32


def gaussian_profile(grid: Tensor, centre: Tensor, sigma: Tensor | float) -> Tensor:
    """``exp(-(grid - centre)^2 / (2 sigma^2))`` with exact zeros below ``exp(UNDERFLOW)``.

    ``grid [N]``, ``centre [B, K]``, ``sigma [B, K]`` or scalar -> ``[B, K, N]``. Beyond ~9 sigma the value
    is < 4e-18: an exact 0 rather than a float32 subnormal, which costs ~10x in exp and in every product
    downstream and is no target anyone can learn.
    """
    d = grid - centre[..., None]
    arg = -(d * d) / (2 * torch.as_tensor(sigma, dtype=d.dtype, device=d.device)[..., None] ** 2)
    return torch.exp(arg.clamp(min=UNDERFLOW)).masked_fill_(arg <= UNDERFLOW, 0.0)


def _heatmap_size(heatmap_size: Sequence[int], n: int) -> tuple[int, ...]:
    size = tuple(int(s) for s in heatmap_size)
    if len(size) not in (2, 3) or any(s <= 0 for s in size):
        raise ValueError(
            f"heatmap_size must be (H, W) or (D, H, W) of positive ints, got {tuple(heatmap_size)}"
        )
    if len(size) != n:
        raise ValueError(
            f"keypoints have {n} coordinates (x, y{', z' if n == 3 else ''}) but heatmap_size {size} "
            f"has {len(size)} axes; 2D maps need [B, K, 2] keypoints, 3D volumes [B, K, 3]"
        )
    return size


def _sigma_tensor(sigma: float | Sequence[float] | Tensor, like: Tensor) -> Tensor:
    """Broadcast a scalar, per-keypoint ``[K]`` or per-instance ``[B, K]`` sigma to ``[B, K]``."""
    sig = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    batch, joints = like.shape[:2]
    if sig.dim() == 1 and sig.shape[0] != joints:
        raise ValueError(f"per-keypoint sigma has {sig.shape[0]} entries but there are {joints} keypoints")
    try:
        sig = sig.expand(batch, joints)
    except RuntimeError as err:
        raise ValueError(
            f"sigma of shape {tuple(sig.shape)} does not broadcast to [B, K] = {[batch, joints]}"
        ) from err
    # Checked on the host only: a device tensor would need a sync (GaussianEncoder checks its sigma once).
    if sig.device.type == "cpu" and sig.numel() and not bool(torch.isfinite(sig).all() and (sig > 0).all()):
        raise ValueError("sigma must be finite and > 0")
    return sig


def gaussian_heatmaps(
    keypoints: Tensor,
    visible: Tensor,
    heatmap_size: Sequence[int],
    sigma: float | Sequence[float] | Tensor = 2.0,
    quantize: bool = False,
    truncate: float | None = None,
    box_sigmas: float = 3.0,
) -> tuple[Tensor, Tensor]:
    """Render one Gaussian of peak 1 per keypoint.

    Args:
        keypoints: ``[B, K, n]`` (x, y[, z]) in heatmap pixels; n = len(heatmap_size).
        visible: ``[B, K]`` bool or 0/1; invisible keypoints get an empty map and weight 0.
        heatmap_size: ``(H, W)`` or ``(D, H, W)``.
        sigma: scalar, ``[K]`` or ``[B, K]`` standard deviation in heatmap pixels.
        quantize: round the centre onto the grid first (``floor(x + 0.5)``), the standard biased
            encoding; False centres the Gaussian on the exact sub-pixel coordinate (DARK's unbiased one).
        truncate: zero the map beyond ``truncate * sigma`` along any axis (the classic 6-sigma+1 patch is
            ``truncate=3``); None keeps the whole Gaussian.
        box_sigmas: a keypoint whose ``box_sigmas * sigma`` box misses the map extent
            ``[-0.5, S - 0.5]`` on some axis is treated as out of frame: weight 0, empty map.

    Returns:
        ``heatmaps [B, K, *heatmap_size]`` float32 and ``weights [B, K]`` float32 (1 or 0). Non-finite
        keypoints get weight 0 and an empty map.
    """
    if not isinstance(keypoints, Tensor) or keypoints.dim() != 3:
        raise ValueError(
            f"keypoints must be a [B, K, n] tensor, got {getattr(keypoints, 'shape', type(keypoints))}"
        )
    size = _heatmap_size(heatmap_size, keypoints.shape[-1])
    visible = torch.as_tensor(visible, device=keypoints.device)
    if visible.shape != keypoints.shape[:2]:
        raise ValueError(f"visible must be [B, K] = {list(keypoints.shape[:2])}, got {list(visible.shape)}")
    kp = keypoints.float()
    sig = _sigma_tensor(sigma, kp)
    if quantize:
        kp = torch.floor(kp + 0.5)
    finite = torch.isfinite(kp).all(-1)
    kp = torch.where(finite[..., None], kp, torch.zeros_like(kp))
    weights = (visible > 0) & finite

    # Separable: the nD Gaussian is the outer product of n 1D profiles, so cost is O(H*W), not O(H*W*K*n).
    profiles = []
    for axis, grid in enumerate(axis_grids(size, device=kp.device)):
        centre = kp[..., axis]
        extent = grid.numel() - 0.5
        weights &= (centre + box_sigmas * sig >= -0.5) & (centre - box_sigmas * sig <= extent)
        g = gaussian_profile(grid, centre, sig)
        if truncate is not None:
            g = g * ((grid - centre[..., None]).abs() <= truncate * sig[..., None])
        profiles.append(g)

    weights = weights.float()
    x = profiles[0] * weights[..., None]
    if len(size) == 2:
        heatmaps = profiles[1][..., :, None] * x[..., None, :]
    else:
        heatmaps = profiles[2][..., :, None, None] * profiles[1][..., None, :, None] * x[..., None, None, :]
    return heatmaps, weights


class GaussianEncoder:
    """Gaussian target encoder; ``encoder(keypoints, visible, heatmap_size) -> (heatmaps, weights)``.

    See :func:`gaussian_heatmaps` for shapes and options. ``quantize=False`` is DARK's unbiased
    encoding ("w/o quant"), ``quantize=True`` the standard one ("w/ quant").
    """

    def __init__(
        self,
        sigma: float | Sequence[float] = 2.0,
        quantize: bool = False,
        truncate: float | None = None,
        box_sigmas: float = 3.0,
    ) -> None:
        _sigma_tensor(sigma, torch.zeros(1, 1 if isinstance(sigma, int | float) else len(sigma), 1))
        if truncate is not None and truncate <= 0:
            raise ValueError(f"truncate must be > 0 or None, got {truncate}")
        self.sigma = sigma if isinstance(sigma, int | float) else [float(s) for s in sigma]
        self.quantize = bool(quantize)
        self.truncate = truncate
        self.box_sigmas = float(box_sigmas)

    def __call__(
        self, keypoints: Tensor, visible: Tensor, heatmap_size: Sequence[int]
    ) -> tuple[Tensor, Tensor]:
        return gaussian_heatmaps(
            keypoints, visible, heatmap_size, self.sigma, self.quantize, self.truncate, self.box_sigmas
        )

    encode = __call__

    def __repr__(self) -> str:
        return f"GaussianEncoder(sigma={self.sigma}, quantize={self.quantize}, truncate={self.truncate})"
