"""Stacked Hourglass (Newell et al. 2016) with intermediate supervision."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import HeatmapModel
from .blocks import PreActResidual, conv_bn_relu, upsample_to

Tensor = torch.Tensor


class Hourglass(nn.Module):
    """Recursive hourglass: ``[B, f, h, w] -> [B, f, h, w]``, any ``h, w``.

    At each of ``depth`` levels: a residual skip at the current resolution plus a ceil-mode 2x2 max-pool,
    residual, inner hourglass (a residual at the bottom), residual, nearest x2 upsampling cropped back to the
    skip's size (see :mod:`heatlit.models.blocks` for why that keeps alignment).
    """

    def __init__(self, depth: int, features: int):
        super().__init__()
        self.up1 = PreActResidual(features, features)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.low1 = PreActResidual(features, features)
        self.low2 = Hourglass(depth - 1, features) if depth > 1 else PreActResidual(features, features)
        self.low3 = PreActResidual(features, features)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, f, h, w] -> [B, f, h, w]``."""
        low = self.low3(self.low2(self.low1(self.pool(x))))
        return self.up1(x) + upsample_to(low, 2, x.shape[-2:])


class StackedHourglass(HeatmapModel):
    """Stem to 1/4 resolution, then ``num_stacks`` hourglasses, each emitting (and supervised on) heatmaps.

    ``[B, C, H, W] -> list of num_stacks`` heatmaps ``[B, K, H/stride, W/stride]`` (or
    ``[B, K, D, H/stride, W/stride]``), the last stack's last; H, W multiples of ``max(4, stride)``. Between
    stacks the features and the predictions are mapped back (1x1 convs) and added to the next stack's input,
    as in the paper. Every stack has its own head (resampling for strides other than 4, see
    :mod:`heatlit.models.heads`); the predictions are brought back to the stride-4 grid for re-injection
    parameter-free (average pooling when finer, nearest upsampling when coarser) so both stay aligned.

    Args:
        num_joints, in_channels, stride, head, depth_bins, pretrained: the zoo contract
            (:class:`~heatlit.models.base.HeatmapModel`).
        num_stacks: hourglasses (SH_4S: 4).
        features: channels through the hourglasses (SH_4S: 128; the paper 256).
        depth: recursion depth of each hourglass (4 in the paper: 1/4 down to 1/64).
        stem_channels: width of the 7x7 stem conv (64 in the paper).

    Inputs below ``4 * 2**depth`` px on both sides bottom out at 1x1; training those needs batch >= 2
    (BatchNorm cannot normalise a single value per channel).
    """

    def __init__(
        self,
        num_joints: int = 17,
        in_channels: int = 1,
        stride: int = 4,
        head: str = "2d",
        depth_bins: int = 64,
        pretrained: str | None = None,
        num_stacks: int = 4,
        features: int = 128,
        depth: int = 4,
        stem_channels: int = 64,
    ):
        super().__init__(num_joints, in_channels, stride, head, depth_bins)
        if num_stacks < 1 or features < 2 or depth < 1 or stem_channels < 1:
            raise ValueError(
                f"need num_stacks >= 1, features >= 2, depth >= 1, stem_channels >= 1; got {num_stacks}, "
                f"{features}, {depth}, {stem_channels}"
            )
        self.num_stacks = num_stacks
        mid = min(128, features)  # the paper's stem: 64 -> 128 -> 128 -> features
        self.stem = nn.Sequential(
            *conv_bn_relu(in_channels, stem_channels, 7, 2),
            PreActResidual(stem_channels, mid),
            nn.MaxPool2d(2, 2),
            PreActResidual(mid, mid),
            PreActResidual(mid, features),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, features) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(PreActResidual(features, features), *conv_bn_relu(features, features, 1))
            for _ in range(num_stacks)
        )
        self.heads = nn.ModuleList(self.make_head(features, features) for _ in range(num_stacks))
        channels = num_joints * (self.depth_bins or 1)
        self.merge_features = nn.ModuleList(nn.Conv2d(features, features, 1) for _ in range(num_stacks - 1))
        self.merge_preds = nn.ModuleList(nn.Conv2d(channels, features, 1) for _ in range(num_stacks - 1))
        self._finish_init(pretrained)

    def _to_feature_grid(self, heatmaps: Tensor, size: tuple[int, int]) -> Tensor:
        """``[B, K(, D), h, w]`` at ``stride`` -> ``[B, K(*D), size]`` on the stride-4 grid."""
        y = heatmaps.flatten(1, 2) if heatmaps.ndim == 5 else heatmaps
        if self.stride < 4:
            return F.avg_pool2d(y, 4 // self.stride)
        return upsample_to(y, self.stride // 4, size)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B, C, H, W] -> num_stacks x [B, K, H/s, W/s]`` (or ``[B, K, D, H/s, W/s]``), final last."""
        size = self.heatmap_size(x)
        x = self.stem(x)
        outputs = []
        for i, (hourglass, features, head) in enumerate(zip(self.hourglasses, self.features, self.heads)):
            f = features(hourglass(x))
            heatmaps = head(f, size)
            outputs.append(heatmaps)
            if i < len(self.merge_features):
                hm = self._to_feature_grid(heatmaps, x.shape[-2:])
                x = x + self.merge_features[i](f) + self.merge_preds[i](hm)
        return outputs
