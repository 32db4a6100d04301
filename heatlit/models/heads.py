"""Heatmap heads: learned resampling from the backbone's stride to the requested one, then a 1x1 conv.

Stride choices (one rule for every model):

- finer than the features (stride 2 or 1 from stride-4 features, or anything from SimpleBaseline's
  stride-32 features): one ``ConvTranspose2d(k=4, s=2, p=1)`` + BN + ReLU per factor 2. Output pixels
  ``2i`` and ``2i+1`` sit symmetrically inside input pixel ``i``, so the pixel-extent convention holds.
- coarser (stride 8 from stride-4 features): one ``Conv2d(k=4, s=2, p=1)`` + BN + ReLU, whose window over
  pixels ``2i-1 .. 2i+2`` is centred on the output pixel's extent ``[2i, 2i+2)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .blocks import crop_to

Tensor = torch.Tensor

HEAD_TYPES = ("2d", "3d")


def resample_steps(feature_stride: int, stride: int) -> tuple[int, int]:
    """How many x2 upsamplings and /2 downsamplings take ``feature_stride`` features to ``stride``.

    Returns:
        ``(upsample, downsample)``, at most one of them nonzero.
    """
    ratio = math.log2(feature_stride / stride)
    if ratio != int(ratio):
        raise ValueError(f"stride {stride} is not a power-of-two multiple or divisor of {feature_stride}")
    return (int(ratio), 0) if ratio >= 0 else (0, int(-ratio))


def deconv_bn_relu(in_channels: int, out_channels: int) -> list:
    """Layers of a learned x2 upsampling (SimpleBaseline's unit): ``[B, in, h, w] -> [B, out, 2h, 2w]``."""
    return [
        nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class HeatmapHead(nn.Module):
    """Resampling stages then a 1x1 conv to heatmaps.

    ``[B, C, h, w] -> [B, K, h', w']`` (``head="2d"``) or ``[B, K, D, h', w']`` (``head="3d"``: the 1x1 conv
    emits ``K*D`` channels, reshaped as in Sun et al. 2018's integral regression), where
    ``h' = h * 2**upsample / 2**downsample`` before the optional crop to ``out_size``.

    Args:
        in_channels: feature channels ``C``.
        num_joints: ``K``.
        head: ``"2d"`` or ``"3d"``.
        depth_bins: ``D`` for the 3D head.
        upsample: number of deconv x2 stages.
        downsample: number of conv /2 stages.
        channels: width of the resampling stages.
    """

    def __init__(
        self,
        in_channels: int,
        num_joints: int,
        *,
        head: str = "2d",
        depth_bins: int = 64,
        upsample: int = 0,
        downsample: int = 0,
        channels: int = 256,
    ):
        super().__init__()
        if head not in HEAD_TYPES:
            raise ValueError(f"head must be one of {HEAD_TYPES}, got {head!r}")
        self.num_joints = num_joints
        self.depth_bins = depth_bins if head == "3d" else None
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(upsample):
            layers += deconv_bn_relu(c, channels)
            c = channels
        for _ in range(downsample):
            layers += [
                nn.Conv2d(c, channels, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            c = channels
        # Flat Sequential so the indices match SimpleBaseline's published `deconv_layers.N` checkpoint keys.
        self.resample = nn.Sequential(*layers)
        self.final = nn.Conv2d(c, num_joints * (self.depth_bins or 1), 1)
        self.reset_final()

    def reset_final(self) -> None:
        """Initialise the heatmap conv as the reference code does: N(0, 0.001), zero bias (near-zero maps)."""
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, x: Tensor, out_size: tuple[int, int] | None = None) -> Tensor:
        """``[B, C, h, w] -> [B, K, H, W]`` or ``[B, K, D, H, W]``; ``(H, W) = out_size`` when given."""
        x = self.resample(x)
        if out_size is not None:
            x = crop_to(x, out_size)
        y = self.final(x)
        if self.depth_bins is not None:
            y = y.view(y.shape[0], self.num_joints, self.depth_bins, *y.shape[-2:])
        return y
