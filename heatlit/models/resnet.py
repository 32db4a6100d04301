"""ResNet backbone (He et al. 2016), written here because torchvision is not a dependency."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import BasicBlock, Bottleneck, make_layer

Tensor = torch.Tensor

#: depth -> (unit, units per stage)
RESNET_SPECS: dict[int, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """ResNet without pooling/classifier: ``[B, C, H, W] -> [B, out_channels, ceil(H/32), ceil(W/32)]``.

    Args:
        depth: 18, 34, 50, 101 or 152.
        in_channels: ``C``.
        width: channels of the stem and first stage (64 in the paper); stages use width x (1, 2, 4, 8).

    Attribute names are torchvision's (``conv1``, ``bn1``, ``layer1`` .. ``layer4``) so ImageNet weights load.
    """

    stride = 32

    def __init__(self, depth: int = 50, in_channels: int = 3, width: int = 64):
        super().__init__()
        if depth not in RESNET_SPECS:
            raise ValueError(f"unknown ResNet depth {depth!r}; choose one of {sorted(RESNET_SPECS)}")
        if width < 1:
            raise ValueError(f"ResNet width must be positive, got {width}")
        block, counts = RESNET_SPECS[depth]
        self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = width
        self.layer1, c = make_layer(block, c, width, counts[0])
        self.layer2, c = make_layer(block, c, width * 2, counts[1], stride=2)
        self.layer3, c = make_layer(block, c, width * 4, counts[2], stride=2)
        self.layer4, c = make_layer(block, c, width * 8, counts[3], stride=2)
        self.out_channels = c

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, out_channels, ceil(H/32), ceil(W/32)]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))
