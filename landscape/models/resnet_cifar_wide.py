"""ResNet-18/34/50 (He et al. 2016, "Deep Residual Learning") in the two key layouts users' runs have.

- ``pytorch-cifar`` (kuangliu/pytorch-cifar, landscape's ``resnet18``/``resnet34``/``resnet50``):
  blocks with a ``shortcut`` Sequential, the head named ``linear``.
- ``torchvision`` (``torchvision.models.resnet18``/``34``/``50``): blocks with ``downsample``, the
  head named ``fc``; as torchvision builds it (``stem="imagenet"``: 7×7 stride-2 ``conv1`` and a
  3×3 stride-2 max-pool) or as CIFAR studies modify it (``stem="cifar"``: ``conv1`` replaced by a
  3×3 stride-1 padding-1 conv without bias, the max-pool by identity).

Both are the same function with the same stem: four stages of BasicBlocks (ResNet-18/34) or
Bottlenecks (ResNet-50, stride on the 3×3 conv as torchvision v1.5 and pytorch-cifar do) with
64, 128, 256, 512 planes, global average pooling and one linear layer. ResNet-18 with 10 classes
has 11,173,962 parameters in either layout. Our own code (no torchvision import needed).
"""

from __future__ import annotations

from typing import Optional, Sequence, Type, Union

import torch
import torch.nn.functional as F
from torch import nn

LAYOUTS = ("pytorch-cifar", "torchvision")
STEMS = ("cifar", "imagenet")


def _projection(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, layout: str = "pytorch-cifar") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        _add_shortcut(self, in_planes, planes * self.expansion, stride, layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + _shortcut(self, x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, layout: str = "pytorch-cifar") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        _add_shortcut(self, in_planes, planes * self.expansion, stride, layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + _shortcut(self, x))


def _add_shortcut(block: nn.Module, in_planes: int, out_planes: int, stride: int, layout: str) -> None:
    """A projection where the shape changes, under the layout's name (``shortcut``/``downsample``)."""
    needed = stride != 1 or in_planes != out_planes
    if layout == "torchvision":
        block.downsample = _projection(in_planes, out_planes, stride) if needed else None
    else:
        block.shortcut = _projection(in_planes, out_planes, stride) if needed else nn.Sequential()


def _shortcut(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    proj = getattr(block, "downsample", None) if hasattr(block, "downsample") else block.shortcut
    return proj(x) if proj is not None else x


Block = Union[Type[BasicBlock], Type[Bottleneck]]


class CifarResNet(nn.Module):
    """ResNet with a CIFAR or ImageNet stem in the pytorch-cifar or torchvision key layout."""

    def __init__(self, blocks: Sequence[int], num_classes: int = 10, in_channels: int = 3, width: float = 1.0,
                 block: Block = BasicBlock, stem: str = "cifar", layout: str = "pytorch-cifar") -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(STEMS)}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")
        widths = [max(1, int(round(c * width))) for c in (64, 128, 256, 512)]
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.maxpool: Optional[nn.Module] = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else None
        layers, in_planes = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stage = []
            for j in range(n):
                stage.append(block(in_planes, w, 2 if (i > 0 and j == 0) else 1, layout))
                in_planes = w * block.expansion
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        head = nn.Linear(in_planes, num_classes)
        if layout == "torchvision":
            self.fc = head
        else:
            self.linear = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            out = self.maxpool(out)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out) if hasattr(self, "fc") else self.linear(out)


DEPTHS = {18: ([2, 2, 2, 2], BasicBlock), 34: ([3, 4, 6, 3], BasicBlock), 50: ([3, 4, 6, 3], Bottleneck)}


def _resnet(depth: int, num_classes: int, in_channels: int, width: float, stem: str, layout: str) -> CifarResNet:
    blocks, block = DEPTHS[depth]
    return CifarResNet(blocks, num_classes, in_channels, width, block, stem, layout)


def resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, stem: str = "cifar") -> CifarResNet:
    return _resnet(18, num_classes, in_channels, width, stem, "pytorch-cifar")


def resnet34(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, stem: str = "cifar") -> CifarResNet:
    return _resnet(34, num_classes, in_channels, width, stem, "pytorch-cifar")


def resnet50(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, stem: str = "cifar") -> CifarResNet:
    return _resnet(50, num_classes, in_channels, width, stem, "pytorch-cifar")


def tv_resnet18(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, stem: str = "cifar") -> CifarResNet:
    return _resnet(18, num_classes, in_channels, width, stem, "torchvision")


def tv_resnet34(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, stem: str = "cifar") -> CifarResNet:
    return _resnet(34, num_classes, in_channels, width, stem, "torchvision")


def tv_resnet50(num_classes: int = 10, in_channels: int = 3, width: float = 1.0, stem: str = "cifar") -> CifarResNet:
    return _resnet(50, num_classes, in_channels, width, stem, "torchvision")
