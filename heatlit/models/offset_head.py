"""UDP's combined target as a model output: a heatmap model with ``1 + n`` maps per keypoint, grouped by keypoint.

Design note: UDP's head is a plain heatmap head with ``K * (1 + n)`` channels (per keypoint a classification
map, then n offset maps, keypoint-major as the reference interleaves them). :class:`OffsetMapsModel` wraps
a model of the zoo built with that many "joints" and views each stage's output as ``[B, K, 1 + n, *S]``, the
layout of :func:`heatlit.codecs.udp_offset_maps` and :func:`heatlit.codecs.udp_offset_decode`.
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


class OffsetMapsModel(nn.Module):
    """``x[B, C, H, W] -> list`` of ``[B, K, channels, *S]`` per supervised stage, final stage last.

    Args:
        backbone: a model of the zoo built with ``num_joints = K * channels``.
        channels: maps per keypoint, ``1 + n`` (3 for 2D heads, 4 for 3D).

    Carries the backbone's ``stride``, ``head_dim``, ``depth_bins`` and ``in_channels``; ``num_joints`` is K.
    """

    def __init__(self, backbone: nn.Module, channels: int) -> None:
        super().__init__()
        total = int(backbone.num_joints)
        if channels < 1 or total % channels:
            raise ValueError(
                f"OffsetMapsModel: the backbone's {total} output channels are not a multiple of {channels} maps "
                "per keypoint"
            )
        self.backbone = backbone
        self.channels = int(channels)
        self.num_joints = total // self.channels
        for name in ("stride", "head_dim", "depth_bins", "in_channels"):
            setattr(self, name, getattr(backbone, name, None))

    def forward(self, x: Tensor) -> list[Tensor]:
        return [m.unflatten(1, (self.num_joints, self.channels)) for m in self.backbone(x)]
