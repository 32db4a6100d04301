"""Building blocks shared by every model in the zoo: residual units and size-safe resampling.

Resampling convention (see :mod:`heatlit.codecs`): a stride-s map's pixel i covers input pixels
``[s*i, s*(i+1))``. Every stride-2 reduction here rounds *up* (``ceil(n/2)``, what a 3x3/s2/p1 conv, a
1x1/s2 conv or a ceil-mode 2x2 pool give), so index 0 always stays on the top-left corner. Upsampling by
an integer factor then yields at least the finer size, and the extra trailing rows/columns (which only
cover padding beyond the image) are cropped. That keeps maps aligned for any input that is a multiple of
4, without requiring the multiples of 32 or 64 the reference code needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, relu: bool = True
) -> list:
    """Layers of conv (symmetric padding, no bias since BN follows) + BN (+ ReLU), to splice into a Sequential.

    ``[B, in, H, W] -> [B, out, ceil(H/stride), ceil(W/stride)]`` for odd ``kernel``.
    """
    layers = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """Shortcut projection (1x1 conv + BN) when a residual unit changes width or resolution, else None."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(*conv_bn_relu(in_channels, out_channels, 1, stride, relu=False))


class BasicBlock(nn.Module):
    """ResNet basic unit, two 3x3 convs: ``[B, inplanes, H, W] -> [B, planes, ceil(H/s), ceil(W/s)]``.

    Attribute names follow torchvision / the official HRNet so their checkpoints load by name.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(inplanes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, inplanes, H, W] -> [B, planes, ceil(H/stride), ceil(W/stride)]``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3 with the stride, 1x1 x4): ``[B, inplanes, H, W] -> [B, 4*planes, H/s, W/s]``.

    The stride sits on the 3x3 conv (torchvision "ResNet v1.5"), which is what the published ResNet-50
    SimpleBaseline and HRNet stage 1 use.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(inplanes, planes * self.expansion, stride)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, inplanes, H, W] -> [B, 4*planes, ceil(H/stride), ceil(W/stride)]``."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_layer(
    block: type[BasicBlock | Bottleneck], inplanes: int, planes: int, blocks: int, stride: int = 1
):
    """A ResNet stage: ``blocks`` units, the first one carrying the stride and the width change.

    Returns:
        ``(nn.Sequential, out_channels)``; ``[B, inplanes, H, W] -> [B, planes*expansion, H/s, W/s]``.
    """
    layers = [block(inplanes, planes, stride)]
    out_channels = planes * block.expansion
    layers += [block(out_channels, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers), out_channels


class PreActResidual(nn.Module):
    """Newell et al.'s residual module: pre-activation bottleneck BN-ReLU-1x1(out/2)-BN-ReLU-3x3-BN-ReLU-1x1(out).

    ``[B, in, H, W] -> [B, out, H, W]``; a 1x1 conv skip when the width changes. Pre-activation (rather than
    :class:`Bottleneck`) because the hourglass sums many of these branches, and keeping the identity path free
    of ReLU is what the original design relies on.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = max(out_channels // 2, 1)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in, H, W] -> [B, out, H, W]``."""
        identity = x if self.skip is None else self.skip(x)
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + identity


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Keep the first ``size = (h, w)`` rows/columns of ``[..., H, W]`` (H >= h, W >= w).

    Only trailing pixels go: they cover the padding that ceil-rounded reductions added past the image's
    bottom/right edge, so the remaining pixels keep their positions.
    """
    h, w = size
    if x.shape[-2] < h or x.shape[-1] < w:
        raise RuntimeError(f"cannot crop a {tuple(x.shape[-2:])} map to {size}: the map is smaller")
    return x[..., :h, :w]


def upsample_to(x: Tensor, factor: int, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour upsampling by an integer ``factor`` then :func:`crop_to` ``size``.

    ``[B, C, h, w] -> [B, C, size[0], size[1]]``; output pixel ``i`` copies ``i // factor``, the coarse pixel
    whose extent contains it (what ``F.interpolate(size=...)`` would not guarantee for non-multiples).
    """
    if factor > 1:
        x = F.interpolate(x, scale_factor=factor, mode="nearest")
    return crop_to(x, size)
