"""SimpleBaseline (Xiao et al. 2018): ResNet + deconvolutions + 1x1 conv."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import HeatmapModel
from .ppm import PyramidPooling
from .resnet import ResNet

Tensor = torch.Tensor


class SimpleBaseline(HeatmapModel):
    """ResNet to stride 32, ``log2(32/stride)`` deconv (4x4, s2, BN, ReLU) stages, 1x1 conv.

    The paper's three 256-channel deconvs are the stride-4 case; stride 2/1 add deconvs and stride 8 drops one,
    so every stride is reached by the same learned upsampling. ``[B, C, H, W] -> [heatmaps]``, a one-element
    list of ``[B, K, H/stride, W/stride]`` or ``[B, K, D, H/stride, W/stride]``; H and W multiples of
    ``max(4, stride)`` (the backbone rounds sizes up; the surplus trailing pixels are cropped, see
    :mod:`heatlit.models.blocks`).

    Args:
        num_joints, in_channels, stride, head, depth_bins, pretrained: the zoo contract
            (:class:`~heatlit.models.base.HeatmapModel`); ``pretrained`` also takes torchvision ImageNet
            ResNet weights and the official PoseResNet checkpoints, by key name.
        resnet_depth: 18, 34, 50, 101 or 152.
        resnet_width: ResNet stem width (64 in the paper; smaller for tiny CPU variants).
        deconv_channels: width of the deconv stages (256 in the paper).
        ppm: insert a :class:`~heatlit.models.ppm.PyramidPooling` between backbone and head.
        ppm_bins: its bin sizes. ppm_channels: its output width.
    """

    feature_stride = 32
    pretrained_aliases = {"deconv_layers.": "head.resample.", "final_layer.": "head.final.", "": "backbone."}

    def __init__(
        self,
        num_joints: int = 17,
        in_channels: int = 1,
        stride: int = 4,
        head: str = "2d",
        depth_bins: int = 64,
        pretrained: str | None = None,
        resnet_depth: int = 50,
        resnet_width: int = 64,
        deconv_channels: int = 256,
        ppm: bool = False,
        ppm_bins: Sequence[int] = (1, 2, 3, 6),
        ppm_channels: int = 512,
    ):
        super().__init__(num_joints, in_channels, stride, head, depth_bins)
        self.backbone = ResNet(resnet_depth, in_channels, resnet_width)
        c = self.backbone.out_channels
        self.ppm = PyramidPooling(c, ppm_bins, ppm_channels) if ppm else None
        if self.ppm is not None:
            c = self.ppm.out_channels
        self.head = self.make_head(c, deconv_channels)
        self._finish_init(pretrained)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B, C, H, W] -> [ [B, K, H/s, W/s] ]`` (or ``[B, K, D, H/s, W/s]`` for the 3D head)."""
        size = self.heatmap_size(x)
        f = self.backbone(x)
        if self.ppm is not None:
            f = self.ppm(f)
        return [self.head(f, size)]
