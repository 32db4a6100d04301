"""HRNet (Sun et al. 2019): parallel multi-resolution branches with repeated exchange (fuse) units.

Module and attribute names mirror the official ``pose_hrnet.py`` (``conv1``, ``layer1``, ``transition1``,
``stage2`` .. ``branches``, ``fuse_layers``) so official checkpoints load by key name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import HeatmapModel
from .blocks import BasicBlock, Bottleneck, conv_bn_relu, make_layer, upsample_to

Tensor = torch.Tensor


class ExchangeModule(nn.Module):
    """One HRNet module: ``num_blocks`` basic units per branch, then every branch fuses all others.

    ``[B, c_i, h_i, w_i] for each branch i -> same list`` (only branch 0 when ``multi_scale_output`` is
    false, as in the last module of the network). Branch ``i`` has stride ``4 * 2**i``. Finer-to-coarser
    exchange uses chains of 3x3/s2 convs, coarser-to-finer a 1x1 conv then nearest upsampling.
    """

    def __init__(self, channels: Sequence[int], num_blocks: int, multi_scale_output: bool = True):
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(make_layer(BasicBlock, c, c, num_blocks)[0] for c in channels)
        self.fuse_layers = nn.ModuleList()
        for i in range(n if multi_scale_output else 1):
            row: list[nn.Module | None] = []
            for j in range(n):
                if j > i:
                    row.append(nn.Sequential(*conv_bn_relu(channels[j], channels[i], 1, relu=False)))
                elif j == i:
                    row.append(None)
                else:
                    # i - j stride-2 steps; the last one changes width and skips the ReLU (summed before it).
                    steps = [
                        nn.Sequential(*conv_bn_relu(channels[j], channels[j], 3, 2)) for _ in range(i - j - 1)
                    ]
                    steps.append(nn.Sequential(*conv_bn_relu(channels[j], channels[i], 3, 2, relu=False)))
                    row.append(nn.Sequential(*steps))
            self.fuse_layers.append(nn.ModuleList(row))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        """``[x_0 .. x_{n-1}]`` with ``x_i [B, c_i, h_i, w_i]`` -> fused list (same shapes)."""
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            size = xs[i].shape[-2:]
            y = xs[i]
            for j, layer in enumerate(row):
                if j > i:
                    y = y + upsample_to(layer(xs[j]), 2 ** (j - i), size)
                elif j < i:
                    y = y + layer(xs[j])
            out.append(self.relu(y))
        return out


def _transition(prev: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
    """Per next-stage branch: adapt an existing branch's width (or None), or spawn a new coarser branch
    from the coarsest one with 3x3/s2 convs (the official layout, ModuleList entries None where identity)."""
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(prev):
            layers.append(None if c == prev[i] else nn.Sequential(*conv_bn_relu(prev[i], c, 3)))
        else:
            steps = []
            for k in range(i + 1 - len(prev)):
                out = c if k == i - len(prev) else prev[-1]
                steps.append(nn.Sequential(*conv_bn_relu(prev[-1], out, 3, 2)))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNet(HeatmapModel):
    """HRNet for heatmaps: 2-conv stem to 1/4, bottleneck stage 1, stages 2-4 with 2/3/4 branches.

    ``[B, C, H, W] -> [heatmaps]``: a one-element list of ``[B, K, H/stride, W/stride]`` (or
    ``[B, K, D, H/stride, W/stride]``), from the highest-resolution branch; H, W multiples of
    ``max(4, stride)``. Stride 2/1 add deconv stages of ``width`` channels before the 1x1 conv, stride 8 one
    4x4/s2 conv (see :mod:`heatlit.models.heads`).

    Args:
        num_joints, in_channels, stride, head, depth_bins, pretrained: the zoo contract
            (:class:`~heatlit.models.base.HeatmapModel`); official ``pose_hrnet`` checkpoints load by name.
        width: channels of the highest-resolution branch; branch i has ``width * 2**i`` (W32: 32).
        num_modules: exchange modules in stages 2, 3, 4. Standard HRNet-W32 uses ``(1, 4, 3)``; the
            reproduction's HRNet_4S ``(1, 1, 1)``.
        num_blocks: residual units per branch in every module (and bottlenecks in stage 1); an int or one
            per stage (4 values).
        stem_channels: stem width; stage 1 outputs ``4 * stem_channels``.
    """

    pretrained_aliases = {"final_layer.": "head.final."}

    def __init__(
        self,
        num_joints: int = 17,
        in_channels: int = 1,
        stride: int = 4,
        head: str = "2d",
        depth_bins: int = 64,
        pretrained: str | None = None,
        width: int = 32,
        num_modules: Sequence[int] = (1, 1, 1),
        num_blocks: int | Sequence[int] = 4,
        stem_channels: int = 64,
    ):
        super().__init__(num_joints, in_channels, stride, head, depth_bins)
        num_modules = tuple(int(m) for m in num_modules)
        blocks = (int(num_blocks),) * 4 if isinstance(num_blocks, int) else tuple(int(b) for b in num_blocks)
        if len(num_modules) != 3 or min(num_modules) < 1:
            raise ValueError(f"num_modules needs 3 positive counts (stages 2-4), got {num_modules}")
        if len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(
                f"num_blocks needs a positive int or 4 positive counts (stages 1-4), got {num_blocks}"
            )
        if width < 1 or stem_channels < 1:
            raise ValueError(f"width and stem_channels must be positive, got {width}, {stem_channels}")

        self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.layer1, c1 = make_layer(Bottleneck, stem_channels, stem_channels, blocks[0])

        prev = [c1]
        for s, modules in enumerate(num_modules, start=2):
            cur = [width * 2**i for i in range(s)]
            setattr(self, f"transition{s - 1}", _transition(prev, cur))
            last_stage = s == 4
            stage = [
                ExchangeModule(cur, blocks[s - 1], not (last_stage and m == modules - 1))
                for m in range(modules)
            ]
            setattr(self, f"stage{s}", nn.Sequential(*stage))
            prev = cur
        self.head = self.make_head(width, width)
        self._finish_init(pretrained)

    def forward(self, x: Tensor) -> list[Tensor]:
        """``[B, C, H, W] -> [ [B, K, H/s, W/s] ]`` (or ``[B, K, D, H/s, W/s]`` for the 3D head)."""
        size = self.heatmap_size(x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for s in (2, 3, 4):
            transition = getattr(self, f"transition{s - 1}")
            # Existing branches pass through (or adapt width); a new branch grows from the coarsest one.
            xs = []
            for i, t in enumerate(transition):
                src = ys[i] if i < len(ys) else ys[-1]
                xs.append(src if t is None else t(src))
            ys = getattr(self, f"stage{s}")(xs)
        return [self.head(ys[0], size)]
