"""VGG-11/13/16/19 with BatchNorm (Simonyan & Zisserman 2015) in the two key layouts users' runs have.

- ``pytorch-cifar`` (kuangliu/pytorch-cifar; landscape's ``vgg11``...): 3×3 conv-BN-ReLU stacks
  with 2×2 max-pools in ``features`` and one linear ``classifier`` on the 512 pooled features.
  VGG-16-BN with 10 classes has about 14.7M parameters.
- ``torchvision`` (``torchvision.models.vgg11_bn``... with the last classifier layer replaced):
  the same ``features``, then a 7×7 adaptive average pool and the classifier
  Linear(25088, 4096)-ReLU-Dropout-Linear(4096, 4096)-ReLU-Dropout-Linear(4096, C) (keys
  ``classifier.0/3/6``); on 32×32 inputs the pool repeats the 1×1 feature map 49 times.
``width`` scales every conv and the 4096-wide hidden layers (small test models).
"""

from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torch import nn

CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def _features(cfg: Sequence[Union[int, str]], in_channels: int, width: float) -> tuple:
    layers: List[nn.Module] = []
    c = in_channels
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: small inputs stay >= 1x1
        else:
            out = max(1, int(round(int(item) * width)))
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            c = out
    return nn.Sequential(*layers), c


class VGG(nn.Module):
    """pytorch-cifar layout: ``features`` then one linear ``classifier``."""

    def __init__(self, cfg: Sequence[Union[int, str]], num_classes: int = 10, in_channels: int = 3,
                 width: float = 1.0) -> None:
        super().__init__()
        self.features, c = _features(cfg, in_channels, width)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(out)


class TorchvisionVGG(nn.Module):
    """torchvision layout: ``features``, 7×7 adaptive pool, three-layer ``classifier``."""

    def __init__(self, cfg: Sequence[Union[int, str]], num_classes: int = 10, in_channels: int = 3,
                 width: float = 1.0) -> None:
        super().__init__()
        self.features, c = _features(cfg, in_channels, width)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = max(1, int(round(4096 * width)))
        self.classifier = nn.Sequential(
            nn.Linear(c * 49, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def vgg11_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    return VGG(CFG["vgg11"], num_classes, in_channels, width)


def vgg13_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    return VGG(CFG["vgg13"], num_classes, in_channels, width)


def vgg16_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    return VGG(CFG["vgg16"], num_classes, in_channels, width)


def vgg19_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    return VGG(CFG["vgg19"], num_classes, in_channels, width)


def tv_vgg11_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> TorchvisionVGG:
    return TorchvisionVGG(CFG["vgg11"], num_classes, in_channels, width)


def tv_vgg13_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> TorchvisionVGG:
    return TorchvisionVGG(CFG["vgg13"], num_classes, in_channels, width)


def tv_vgg16_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> TorchvisionVGG:
    return TorchvisionVGG(CFG["vgg16"], num_classes, in_channels, width)


def tv_vgg19_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> TorchvisionVGG:
    return TorchvisionVGG(CFG["vgg19"], num_classes, in_channels, width)
