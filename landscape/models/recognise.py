"""Which registry architecture (and layout variant) a state dict is, from its keys and shapes alone.

Each candidate is built on the meta device (no memory, no time) and its state dict's keys and
shapes are compared with the checkpoint's; ``num_batches_tracked`` is ignored (checkpoints from
before PyTorch 0.4.1 lack it). The number of classes comes from the candidate's last linear layer,
the input channels from its first convolution, the width multiplier from the first layer's
output size; the candidate is then rebuilt with those and must match every shape. No match → a
one-line error with the closest candidates and their first differing keys/shapes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import SpecOptionError


@dataclass(frozen=True)
class Candidate:
    """A registry model with fixed options, and what to call it when it is recognised."""

    name: str
    options: Tuple[Tuple[str, Any], ...]
    description: str

    @property
    def spec(self) -> str:
        opts = ",".join(f"{k}={_opt(v)}" for k, v in self.options)
        return f"{self.name}:{opts}" if opts else self.name


@dataclass(frozen=True)
class Recognition:
    """A recognised architecture: the ``--model`` spec that rebuilds it and its sizes."""

    spec: str
    description: str
    num_classes: int
    in_channels: int
    width: float
    n_params: int
    in_features: Optional[int] = None  # MLPs: the flattened input size
    notes: Tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"spec": self.spec, "description": self.description, "num_classes": self.num_classes,
                "in_channels": self.in_channels, "width": self.width, "n_params": self.n_params,
                "notes": list(self.notes)}


def _opt(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _candidates() -> Tuple[Candidate, ...]:
    out: List[Candidate] = []
    for depth in (18, 34, 50):
        out.append(Candidate(f"resnet{depth}", (), f"pytorch-cifar ResNet-{depth} (kuangliu layout: shortcut/linear "
                                                     "keys), CIFAR stem: 3×3 conv1, no max-pool"))
        out.append(Candidate(f"tv_resnet{depth}", (("stem", "cifar"),),
                             f"torchvision ResNet-{depth}, CIFAR stem: 3×3 conv1, no max-pool"))
        out.append(Candidate(f"tv_resnet{depth}", (("stem", "imagenet"),),
                             f"torchvision ResNet-{depth}, ImageNet stem: 7×7 stride-2 conv1, 3×3 max-pool"))
    for depth in (20, 32, 44, 56, 110):
        out.append(Candidate(f"resnet{depth}", (), f"ResNet-{depth} for CIFAR (He et al. option-A shortcuts; "
                                                     "akamaster layout)"))
    out.append(Candidate("densenet121", (), "DenseNet-121 for CIFAR (pytorch-cifar layout)"))
    for depth in (11, 13, 16, 19):
        out.append(Candidate(f"vgg{depth}", (), f"VGG-{depth}-BN, pytorch-cifar layout (one linear classifier)"))
        out.append(Candidate(f"tv_vgg{depth}_bn", (), f"torchvision VGG-{depth}-BN (7×7 adaptive pool, "
                                                       "25088→4096→4096→C classifier)"))
    out.append(Candidate("cnn", (("bn", True),), "landscape cnn (two conv-BN-ReLU-pool stages)"))
    out.append(Candidate("cnn", (("bn", False),), "landscape cnn without BatchNorm"))
    return tuple(out)


CANDIDATES = _candidates()


def _build_meta(c: Candidate, num_classes: int, in_channels: int, width: float) -> nn.Module:
    from . import build_model

    with torch.device("meta"):
        return build_model(c.spec, num_classes=num_classes, input_shape=(in_channels, 32, 32), width=width)


def _shapes(net: nn.Module) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


@functools.cache
def _reference(c: Candidate) -> Tuple[Dict[str, Tuple[int, ...]], str, str]:
    """Shapes at width 1 with 10 classes and 3 input channels, the first layer's key and the
    last linear layer's weight key."""
    net = _build_meta(c, 10, 3, 1.0)
    shapes = _shapes(net)
    first = next(k for k, s in shapes.items() if len(s) in (2, 4))
    head = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)][-1] + ".weight"
    return shapes, first, head


def recognise(state: Mapping[str, torch.Tensor]) -> Recognition:
    """The registry architecture whose keys and shapes ``state`` has (see module docstring)."""
    got = {k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")}
    mlp = _recognise_mlp(got)
    if mlp is not None:
        return mlp
    misses: List[Tuple[int, str, str]] = []
    for c in CANDIDATES:
        ref, first, head = _reference(c)
        if set(ref) != set(got):
            missing = [k for k in ref if k not in got]
            extra = [k for k in got if k not in ref]
            misses.append((len(missing) + len(extra), c.spec, _key_diff(missing, extra)))
            continue
        width = got[first][0] / ref[first][0]
        in_channels, num_classes = got[first][1], got[head][0]
        net = _build_meta(c, num_classes, in_channels, width) if (width, in_channels, num_classes) != (1.0, 3, 10) else None
        shapes = _shapes(net) if net is not None else ref
        wrong = [k for k in shapes if shapes[k] != got[k]]
        if not wrong:
            n_params = sum(p.numel() for p in (net or _build_meta(c, 10, 3, 1.0)).parameters())
            return Recognition(c.spec, c.description, int(num_classes), int(in_channels), float(width), int(n_params))
        misses.append((len(wrong), c.spec, f"shape of {wrong[0]}: {got[wrong[0]]} here, {shapes[wrong[0]]} in {c.spec}"))
    misses.sort(key=lambda m: m[0])
    closest = "; ".join(f"{spec} ({diff})" for _, spec, diff in misses[:3])
    raise SpecOptionError("the checkpoint's weights match no known architecture (closest: {closest}); "
                          "pass {model} NAME or {model} file.py:factory", closest=closest)


def _key_diff(missing: Sequence[str], extra: Sequence[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing here, e.g. {missing[0]}")
    if extra:
        parts.append(f"{len(extra)} unexpected, e.g. {extra[0]}")
    return ", ".join(parts)


_MLP_KEY = re.compile(r"^net\.(\d+)\.(weight|bias)$")


def _recognise_mlp(got: Mapping[str, Tuple[int, ...]]) -> Optional[Recognition]:
    """landscape's ``mlp``: ``net.{1,3,5,...}.weight/bias`` linear layers after a Flatten."""
    if not got or not all(_MLP_KEY.match(k) for k in got):
        return None
    layers = sorted({int(_MLP_KEY.match(k).group(1)) for k in got})  # type: ignore[union-attr]
    if layers != list(range(1, 2 * len(layers), 2)):
        return None
    weights = [got.get(f"net.{i}.weight") for i in layers]
    if any(w is None or len(w) != 2 for w in weights) or any(f"net.{i}.bias" not in got for i in layers):
        return None
    if any(weights[j][1] != weights[j - 1][0] for j in range(1, len(weights))):  # type: ignore[index]
        return None
    hidden = [w[0] for w in weights[:-1]]  # type: ignore[index]
    spec = "mlp:hidden=" + "-".join(str(h) for h in hidden) if hidden else "mlp:hidden="
    n_params = sum(w[0] * w[1] + w[0] for w in weights)  # type: ignore[index]
    return Recognition(spec, f"landscape mlp with hidden widths {hidden or 'none'}", int(weights[-1][0]), 1,  # type: ignore[index]
                       1.0, int(n_params), in_features=int(weights[0][1]),  # type: ignore[index]
                       notes=("the activation is not in the weights: relu assumed (pass --model "
                              f"{spec},act=tanh if it was another)",))
