"""DenseNet-121 for CIFAR (Huang et al. 2017, "Densely Connected Convolutional Networks"): bottleneck
dense blocks of 6, 12, 24, 16 layers, growth rate 32, compression 0.5, with the CIFAR stem of the
common training repositories (one 3×3 convolution to 2·growth channels, no max-pool), in the key
layout of kuangliu/pytorch-cifar so that its checkpoints load as they are.
About 6.96M parameters with 10 classes.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    def __init__(self, in_planes: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class Transition(nn.Module):
    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.relu(self.bn(x)))
        return F.avg_pool2d(out, 2, ceil_mode=True)


class DenseNet(nn.Module):
    """In the pytorch-cifar (kuangliu) key layout: ``conv1``, ``dense1``..``dense4``,
    ``trans1``..``trans3``, ``bn``, ``linear``."""

    def __init__(self, blocks: Sequence[int], growth: int = 32, reduction: float = 0.5,
                 num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if len(blocks) != 4:
            raise ValueError("DenseNet needs four dense blocks")
        planes = 2 * growth
        self.conv1 = nn.Conv2d(in_channels, planes, 3, padding=1, bias=False)
        for i, n in enumerate(blocks, start=1):
            layers = []
            for _ in range(n):
                layers.append(Bottleneck(planes, growth))
                planes += growth
            setattr(self, f"dense{i}", nn.Sequential(*layers))
            if i < len(blocks):
                out_planes = int(planes * reduction)
                setattr(self, f"trans{i}", Transition(planes, out_planes))
                planes = out_planes
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.trans3(self.dense3(out))
        out = self.dense4(out)
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)
        return self.linear(out)


def densenet121(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> DenseNet:
    return DenseNet([6, 12, 24, 16], growth=max(1, int(round(32 * width))), num_classes=num_classes,
                    in_channels=in_channels)
