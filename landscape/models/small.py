"""Small models for tests, the bundled demo and quick studies: an MLP and a BatchNorm CNN."""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU, "softplus": nn.Softplus}


class MLP(nn.Module):
    """Flatten, then ``Linear -> act`` per hidden width, then a linear read-out."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, act: str = "relu") -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; choose {', '.join(ACTIVATIONS)}")
        layers: list = [nn.Flatten()]
        d = in_features
        for h in hidden:
            layers += [nn.Linear(d, h), ACTIVATIONS[act]()]
            d = h
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Two ``conv3x3 -> BN -> ReLU -> maxpool`` stages, global average pooling, one linear layer."""

    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0, bn: bool = True) -> None:
        super().__init__()
        c1, c2 = max(1, int(round(32 * width))), max(1, int(round(64 * width)))

        def stage(cin: int, cout: int) -> list:
            norm = [nn.BatchNorm2d(cout)] if bn else []
            return [nn.Conv2d(cin, cout, 3, padding=1), *norm, nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]

        self.features = nn.Sequential(*stage(in_channels, c1), *stage(c1, c2))
        self.classifier = nn.Linear(c2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(out)


def _hidden(hidden: Union[str, int, Sequence[int]], width: float) -> list:
    if isinstance(hidden, int):
        sizes = [hidden]
    elif isinstance(hidden, str):
        sizes = [int(h) for h in hidden.split("-") if h]
    else:
        sizes = list(hidden)
    return [max(1, int(round(h * width))) for h in sizes]


def mlp(num_classes: int = 10, input_shape: Sequence[int] = (1, 8, 8), width: float = 1.0,
        hidden: Union[str, int, Sequence[int]] = "200-200", act: str = "relu") -> MLP:
    in_features = 1
    for s in input_shape:
        in_features *= int(s)
    return MLP(in_features, _hidden(hidden, width), num_classes, act)


def cnn(num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32), width: float = 1.0,
        bn: bool = True) -> SmallCNN:
    return SmallCNN(int(input_shape[0]), num_classes, width, bn)
