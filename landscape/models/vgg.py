"""VGG-11/16 with BatchNorm for CIFAR (Simonyan & Zisserman 2015; the BN variant of the common CIFAR
repositories): 3×3 conv-BN-ReLU stacks with 2×2 max-pools and one linear classifier on the 512
features. VGG-16-BN with 10 classes has about 14.7M parameters.
"""

from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torch import nn

CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    def __init__(self, cfg: Sequence[Union[int, str]], num_classes: int = 10, in_channels: int = 3,
                 width: float = 1.0) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        c = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: small inputs stay >= 1x1
            else:
                out = max(1, int(round(int(item) * width)))
                layers += [nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
                c = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(out)


def vgg11_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    return VGG(CFG["vgg11"], num_classes, in_channels, width)


def vgg16_bn(num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> VGG:
    return VGG(CFG["vgg16"], num_classes, in_channels, width)
