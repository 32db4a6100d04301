"""Multi-peak decoding for heatmaps that hold several instances per channel (bottom-up / crowded maps).

Shapes and coordinate convention: see :mod:`heatlit.codecs`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from heatlit.codecs.coords import clamp_to_frame, unravel
from heatlit.codecs.decoders import _check_kernel, dark_refine, prepare_heatmaps

Tensor = torch.Tensor


def _pool(x: Tensor, kernel: int) -> Tensor:
    """Max over a ``kernel``-wide window, stride 1, same size. ``[B, K, *S] -> [B, K, *S]``."""
    pool = F.max_pool2d if x.dim() == 4 else F.max_pool3d
    b, k = x.shape[:2]
    out = pool(x.reshape(b * k, 1, *x.shape[2:]), kernel, stride=1, padding=kernel // 2)
    return out.reshape(x.shape)


def _plateau_representatives(candidates: Tensor) -> Tensor:
    """Keep one pixel per 8-connected group of candidate pixels.

    Adjacent NMS survivors always have equal values (each is the maximum of a window holding the other),
    so a connected group is one plateau. The smallest flat index in each group wins, found by propagating
    the minimum label through the group. This is the one data-dependent loop in the codecs: it runs
    (diameter of the largest plateau) + 1 times, a single pass when no two survivors touch.

    Args:
        candidates: ``[B, K, *S]`` bool.

    Returns:
        ``[B, K, *S]`` bool, a subset of ``candidates``.
    """
    spatial = candidates.shape[2:]
    n_pix = candidates[0, 0].numel() if candidates.numel() else 0
    # float64 holds every flat index exactly, and max-pooling needs a floating type.
    own = (
        torch.arange(n_pix, device=candidates.device, dtype=torch.float64)
        .reshape(spatial)
        .expand(candidates.shape)
    )
    big = torch.full_like(own, float(n_pix))
    label = torch.where(candidates, own, big)
    while True:
        spread = torch.minimum(label, -_pool(-label, 3))
        new = torch.where(candidates, spread, big)
        if torch.equal(new, label):
            break
        label = new
    return candidates & (label == own)


def multipeak_decode(
    heatmaps: Tensor,
    max_peaks: int = 20,
    threshold: float = 0.1,
    nms_kernel: int = 5,
    kernel: int = 11,
    refine: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Up to ``max_peaks`` local maxima per channel, strongest first.

    Max-pool NMS keeps pixels that are the maximum of their ``nms_kernel`` window and above
    ``threshold``; a plateau yields one peak; the survivors are refined with DARK (:func:`dark_refine`).

    Args:
        heatmaps: ``[B, K, H, W]`` or ``[B, K, D, H, W]``.
        max_peaks: P >= 1, the padded peak count.
        threshold: minimum peak value (strict).
        nms_kernel: odd NMS window width.
        kernel: odd DARK blur width (1 disables modulation); ``refine=False`` returns integer peaks.

    Returns:
        ``coords [B, K, P, n]`` (padding entries are 0), ``scores [B, K, P]`` (padding 0) and
        ``mask [B, K, P]`` bool, true for real peaks.
    """
    if int(max_peaks) != max_peaks or max_peaks < 1:
        raise ValueError(f"max_peaks must be a positive integer, got {max_peaks}")
    nms_kernel, kernel = _check_kernel(nms_kernel), _check_kernel(kernel)
    h, spatial = prepare_heatmaps(heatmaps, "multipeak")
    b, k = h.shape[:2]
    n = len(spatial)
    if h.numel() == 0:
        empty = h.new_zeros(b, k, max_peaks)
        return empty[..., None].expand(b, k, max_peaks, n).clone(), empty, empty.bool()
    peaks = (h == _pool(h, nms_kernel)) & (h > threshold)
    peaks = _plateau_representatives(peaks)
    flat = torch.where(peaks, h, torch.full_like(h, -torch.inf)).flatten(2)
    take = min(int(max_peaks), flat.shape[-1])
    values, index = flat.topk(take, dim=-1)
    if take < max_peaks:  # more slots than pixels: pad
        pad = max_peaks - take
        values = F.pad(values, (0, pad), value=-torch.inf)
        index = F.pad(index, (0, pad), value=0)
    mask = torch.isfinite(values)
    ints = unravel(index, spatial)
    coords = dark_refine(h, spatial, ints, kernel) if refine else ints.to(h.dtype)
    coords = clamp_to_frame(coords, spatial)
    coords = torch.where(mask[..., None], coords, torch.zeros_like(coords))
    scores = torch.where(mask, values, torch.zeros_like(values))
    return coords, scores, mask


class MultiPeakDecoder:
    """``decoder(heatmaps) -> (coords [B, K, P, n], scores [B, K, P], mask [B, K, P])``; see :func:`multipeak_decode`."""

    multi = True

    def __init__(
        self,
        max_peaks: int = 20,
        threshold: float = 0.1,
        nms_kernel: int = 5,
        kernel: int = 11,
        refine: bool = True,
    ) -> None:
        if int(max_peaks) != max_peaks or max_peaks < 1:
            raise ValueError(f"max_peaks must be a positive integer, got {max_peaks}")
        self.options = dict(
            max_peaks=int(max_peaks),
            threshold=float(threshold),
            nms_kernel=_check_kernel(nms_kernel),
            kernel=_check_kernel(kernel),
            refine=bool(refine),
        )

    def __call__(self, heatmaps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return multipeak_decode(heatmaps, **self.options)

    decode = __call__

    def __repr__(self) -> str:
        return "MultiPeakDecoder(" + ", ".join(f"{k}={v}" for k, v in self.options.items()) + ")"
