"""The model contract shared by the zoo (see docs/CONTRACTS.md, "Models")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from .heads import HEAD_TYPES, HeatmapHead, resample_steps
from .pretrained import load_pretrained

Tensor = torch.Tensor

STRIDES = (1, 2, 4, 8)


class HeatmapModel(nn.Module):
    """Base class: argument checks, input checks, weight init and pretrained loading.

    Subclasses build their layers, call :meth:`_finish_init`, and implement
    ``forward(x[B, C, H, W]) -> list[Tensor]``: one heatmap tensor per supervised stage, the final prediction
    last, each ``[B, K, H/stride, W/stride]`` (2D head) or ``[B, K, D, H/stride, W/stride]`` (3D head).

    Attributes:
        num_joints: ``K``. in_channels: ``C``. stride: input pixels per heatmap pixel.
        head_dim: 2 or 3. depth_bins: ``D`` for the 3D head, else None.
    """

    #: ``{old_prefix: new_prefix}`` renames that let published checkpoints load by name.
    pretrained_aliases: ClassVar[Mapping[str, str]] = {}
    #: Stride of the features the head reads.
    feature_stride: ClassVar[int] = 4

    def __init__(self, num_joints: int, in_channels: int, stride: int, head: str, depth_bins: int):
        super().__init__()
        for name, value in (
            ("num_joints", num_joints),
            ("in_channels", in_channels),
            ("depth_bins", depth_bins),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if stride not in STRIDES:
            raise ValueError(f"stride must be one of {STRIDES}, got {stride!r}")
        if head not in HEAD_TYPES:
            raise ValueError(f"head must be one of {HEAD_TYPES}, got {head!r}")
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.stride = stride
        self.head_dim = 3 if head == "3d" else 2
        self.depth_bins = depth_bins if head == "3d" else None
        self._head_type = head

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this: 4 (the stem) or the stride if larger."""
        return max(4, self.stride)

    def make_head(self, in_channels: int, channels: int) -> HeatmapHead:
        """A :class:`HeatmapHead` taking this model's ``feature_stride`` features to its ``stride``."""
        up, down = resample_steps(self.feature_stride, self.stride)
        return HeatmapHead(
            in_channels,
            self.num_joints,
            head=self._head_type,
            depth_bins=self.depth_bins or 1,
            upsample=up,
            downsample=down,
            channels=channels,
        )

    def heatmap_size(self, x: Tensor) -> tuple[int, int]:
        """Validate ``x[B, C, H, W]`` and return the heatmap size ``(H/stride, W/stride)``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects input [B, {self.in_channels}, H, W], got {list(x.shape)}"
            )
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(
                f"{type(self).__name__} with stride {self.stride} needs H and W to be multiples of {m}; got "
                f"{h}x{w} (e.g. {max(m, h // m * m)}x{max(m, w // m * m)} or {-(-h // m) * m}x{-(-w // m) * m} work)"
            )
        return h // self.stride, w // self.stride

    def _finish_init(self, pretrained: str | None) -> None:
        """Initialise every layer, then overwrite from ``pretrained`` (a local file) if given."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                # BN follows nearly every conv, so the gain matters little; fan_out matches torchvision.
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, HeatmapHead):
                m.reset_final()
        if pretrained is not None:
            load_pretrained(self, pretrained, self.pretrained_aliases)
