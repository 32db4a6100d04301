"""Pyramid pooling module (Zhao et al., PSPNet 2017): global context at several bin sizes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import conv_bn_relu

Tensor = torch.Tensor


class PyramidPooling(nn.Module):
    """``[B, C, h, w] -> [B, out_channels, h, w]``.

    Each bin size ``b`` average-pools to ``b x b``, reduces to ``C / len(bins)`` channels and is upsampled
    bilinearly (align_corners=False treats bins as pixel extents, matching adaptive pooling); the maps are
    concatenated with the input and fused by a 1x1 conv + BN + ReLU. The bin branches have a bias and no BN
    because the 1x1 bin holds one value per channel, which BN cannot normalise at batch size 1. The fusion
    is 1x1 rather than PSPNet's 3x3 so the module costs about what it saves in the deconv head.

    Args:
        in_channels: ``C``. bins: pooled grid sizes. out_channels: fused width.
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6), out_channels: int = 512):
        super().__init__()
        bins = tuple(int(b) for b in bins)
        if not bins or min(bins) < 1:
            raise ValueError(f"pyramid pooling bins must be positive ints, got {bins}")
        reduced = max(in_channels // len(bins), 1)
        self.bins = bins
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_channels, reduced, 1), nn.ReLU(inplace=True))
            for b in bins
        )
        self.fuse = nn.Sequential(*conv_bn_relu(in_channels + reduced * len(bins), out_channels, 1))
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, h, w] -> [B, out_channels, h, w]``."""
        size = x.shape[-2:]
        pooled = [F.interpolate(s(x), size=size, mode="bilinear", align_corners=False) for s in self.stages]
        return self.fuse(torch.cat([x, *pooled], dim=1))
