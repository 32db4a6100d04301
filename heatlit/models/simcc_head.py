"""SimCC's head (Li et al. 2022): two (or three) 1D classifiers on top of a heatmap model's K-channel maps.

Design note: the reference head is "optional deconvolutions, a 1x1 conv to K channels, flatten each
channel, one linear layer per axis". A heatlit heatmap model already ends with the first two (its
:class:`~heatlit.models.heads.HeatmapHead`), so :class:`SimCCModel` wraps any model of the zoo and adds only
the per-axis linear layers, shared by all keypoints and all supervised stages. Bins follow
:mod:`heatlit.codecs.simcc`: ``S * split_ratio`` per axis of the model's heatmap frame (2D: x over W, y
over H; a 3D head adds z over its depth bins).

Output: ``model(x[B, C, H, W]) -> list`` with one tuple ``(x_logits[B, K, W' k], y_logits[B, K, H' k][, z])``
per supervised stage, final stage last (``W' = W / stride``): the ``simcc`` output kind of
:mod:`heatlit.training.outputs` (flip test, scoring and figure), built by ``representation=simcc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from heatlit.codecs import simcc_bins

Tensor = torch.Tensor


class SimCCHead(nn.Module):
    """``maps [B, K, *S]`` -> tuple of per-axis logits ``[B, K, S_a * split_ratio]`` in (x, y[, z]) order.

    Args:
        spatial_size: ``S`` = ``(H, W)`` or ``(D, H, W)`` of the maps it reads.
        split_ratio: bins per pixel of that frame.
    """

    def __init__(self, spatial_size: Sequence[int], split_ratio: float = 2.0) -> None:
        super().__init__()
        self.spatial_size = tuple(int(s) for s in spatial_size)
        if len(self.spatial_size) not in (2, 3) or min(self.spatial_size) < 1:
            raise ValueError(
                f"SimCCHead: spatial_size must be (H, W) or (D, H, W), got {tuple(spatial_size)}"
            )
        features = math.prod(self.spatial_size)
        self.axes = nn.ModuleList(
            nn.Linear(features, simcc_bins(s, split_ratio)) for s in reversed(self.spatial_size)
        )

    def forward(self, maps: Tensor) -> tuple[Tensor, ...]:
        if tuple(maps.shape[2:]) != self.spatial_size:
            raise ValueError(
                f"SimCCHead reads maps of size {self.spatial_size}, got shape {list(maps.shape)}"
            )
        flat = maps.flatten(2)
        return tuple(linear(flat) for linear in self.axes)


class SimCCModel(nn.Module):
    """A heatmap model whose per-stage maps feed one shared :class:`SimCCHead`.

    Args:
        backbone: a model of the zoo (``stride``, ``num_joints``, ``head_dim``, ``depth_bins``; output a list
            of per-stage maps).
        input_size: ``(H, W)`` of the network input; sets the heatmap frame ``(H, W) / stride``.
        split_ratio: bins per heatmap pixel (as in the SimCC codec).

    Carries the backbone's ``stride``, ``num_joints``, ``head_dim``, ``depth_bins`` and ``in_channels``.
    """

    def __init__(self, backbone: nn.Module, input_size: Sequence[int], split_ratio: float = 2.0) -> None:
        super().__init__()
        h, w = (int(s) for s in input_size)
        stride = int(backbone.stride)
        if h % stride or w % stride:
            raise ValueError(
                f"SimCCModel: input_size {(h, w)} is not a multiple of the model stride {stride}"
            )
        spatial = (h // stride, w // stride)
        if backbone.head_dim == 3:
            spatial = (int(backbone.depth_bins), *spatial)
        self.backbone = backbone
        self.head = SimCCHead(spatial, split_ratio)
        self.split_ratio = float(split_ratio)
        for name in ("stride", "num_joints", "head_dim", "depth_bins", "in_channels"):
            setattr(self, name, getattr(backbone, name, None))

    def forward(self, x: Tensor) -> list[tuple[Tensor, ...]]:
        return [self.head(maps) for maps in self.backbone(x)]
