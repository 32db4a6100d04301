"""Bottom-up targets: every person's keypoints of one type in one heatmap channel.

Shapes and coordinate convention: see :mod:`heatlit.codecs`.

People are combined by the pixelwise **maximum** of their maps (as OpenPose and HigherHRNet do), not the
sum: under the maximum each person's peak keeps its height (1) and its exact location whenever the others'
maps are lower there, so an unbiased encoder stays unbiased and a peak decoder can recover every person; a
sum lifts the saddle between two nearby people, moves both modes towards each other and can merge them
into one peak above 1 (``tests/test_multiperson.py`` measures both).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Tensor = torch.Tensor

COMBINE = ("max", "sum")


def bottom_up_heatmaps(
    encoder: Callable,
    keypoints: Tensor,
    visible: Tensor,
    heatmap_size: Sequence[int],
    combine: str = "max",
) -> tuple[Tensor, Tensor]:
    """Encode each person with ``encoder``, then combine the people per channel.

    Args:
        encoder: a heatmap encoder, ``encoder(keypoints[N, K, n], visible[N, K], heatmap_size) ->
            (heatmaps [N, K, *heatmap_size], weights [N, K])`` (e.g. :class:`GaussianEncoder`).
        keypoints: ``[B, M, K, n]`` (x, y[, z]) heatmap px of M people (padding slots: not visible).
        visible: ``[B, M, K]`` bool; an invisible keypoint adds nothing to its channel.
        heatmap_size: ``(H, W)`` or ``(D, H, W)``.
        combine: ``"max"`` (the default, see the module docstring) or ``"sum"``.

    Returns:
        ``heatmaps [B, K, *heatmap_size]`` and ``weights [B, K]`` float32, all 1: every channel is a target
        everywhere (a channel without a visible keypoint is a target of zeros, which says "no joint here").
    """
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
    if not isinstance(keypoints, Tensor) or keypoints.dim() != 4:
        raise ValueError(
            f"keypoints must be a [B, M, K, n] tensor of M people, got {getattr(keypoints, 'shape', keypoints)}"
        )
    b, m, k, n = keypoints.shape
    visible = torch.as_tensor(visible, device=keypoints.device)
    if visible.shape != (b, m, k):
        raise ValueError(f"visible must be [B, M, K] = {[b, m, k]}, got {list(visible.shape)}")
    size = tuple(int(s) for s in heatmap_size)
    if m == 0:
        return keypoints.new_zeros(b, k, *size, dtype=torch.float32), keypoints.new_ones(
            b, k, dtype=torch.float32
        )
    maps, _ = encoder(keypoints.reshape(b * m, k, n), visible.reshape(b * m, k), size)
    if not isinstance(maps, Tensor) or maps.shape != (b * m, k, *size):
        raise ValueError(
            f"bottom-up targets need a heatmap encoder returning [N, K, *{list(size)}] maps; "
            f"{type(encoder).__name__} returned {getattr(maps, 'shape', type(maps).__name__)}"
        )
    maps = maps.reshape(b, m, k, *size)
    heatmaps = maps.amax(1) if combine == "max" else maps.sum(1)
    return heatmaps, torch.ones(b, k, dtype=torch.float32, device=heatmaps.device)
