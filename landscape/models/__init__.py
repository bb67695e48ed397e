"""Model registry and user factories.

``--model`` accepts
- a registry name, optionally with keyword options: ``resnet20``, ``mlp:hidden=64-64,act=tanh``;
- a user factory: ``path/to/file.py:factory`` or ``package.module:factory`` (called with no
  arguments, or with ``num_classes=`` when it accepts it); it must return an ``nn.Module``;
- ``torchvision:NAME`` when torchvision imports (called with ``num_classes=``).
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from torch import nn

from ..errors import SpecError
from ..specs import is_factory_spec, parse_kwargs, resolve_factory, split_spec
from . import densenet, resnet_cifar_he, resnet_cifar_wide, small, vgg

# name -> (factory, takes input_shape instead of in_channels)
REGISTRY: Dict[str, Tuple[Callable[..., nn.Module], bool]] = {
    "resnet18": (resnet_cifar_wide.resnet18, False),
    "resnet34": (resnet_cifar_wide.resnet34, False),
    "resnet50": (resnet_cifar_wide.resnet50, False),
    "tv_resnet18": (resnet_cifar_wide.tv_resnet18, False),
    "tv_resnet34": (resnet_cifar_wide.tv_resnet34, False),
    "tv_resnet50": (resnet_cifar_wide.tv_resnet50, False),
    "resnet20": (resnet_cifar_he.resnet20, False),
    "resnet32": (resnet_cifar_he.resnet32, False),
    "resnet44": (resnet_cifar_he.resnet44, False),
    "resnet56": (resnet_cifar_he.resnet56, False),
    "resnet110": (resnet_cifar_he.resnet110, False),
    "densenet121": (densenet.densenet121, False),
    "vgg11": (vgg.vgg11_bn, False),
    "vgg13": (vgg.vgg13_bn, False),
    "vgg16": (vgg.vgg16_bn, False),
    "vgg19": (vgg.vgg19_bn, False),
    "tv_vgg11_bn": (vgg.tv_vgg11_bn, False),
    "tv_vgg13_bn": (vgg.tv_vgg13_bn, False),
    "tv_vgg16_bn": (vgg.tv_vgg16_bn, False),
    "tv_vgg19_bn": (vgg.tv_vgg19_bn, False),
    "mlp": (small.mlp, True),
    "cnn": (small.cnn, True),
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: written into landscape's own checkpoints."""

    spec: str
    num_classes: int = 10
    input_shape: Tuple[int, ...] = (3, 32, 32)
    width: float = 1.0
    options: Dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_json(cls, d: dict) -> ModelSpec:
        return cls(d["spec"], int(d.get("num_classes", 10)), tuple(d.get("input_shape", (3, 32, 32))),
                   float(d.get("width", 1.0)), dict(d.get("options", {})))


def build_model(spec: str, *, num_classes: int = 10, input_shape: Sequence[int] = (3, 32, 32),
                width: float = 1.0) -> nn.Module:
    """Build the model named by ``spec`` (see module docstring) for the given data shape."""
    head, arg = split_spec(spec)
    if head == "torchvision":
        return _torchvision(arg, num_classes)
    if is_factory_spec(head):
        return _user_factory(spec, num_classes)
    if head not in REGISTRY:
        raise SpecError(f"unknown model {head!r}; registry: {', '.join(REGISTRY)}; "
                        "or give file.py:factory / package.module:factory")
    factory, wants_shape = REGISTRY[head]
    kwargs = parse_kwargs(arg)
    shape_kw = {"input_shape": tuple(input_shape)} if wants_shape else {"in_channels": int(input_shape[0])}
    try:
        model = factory(num_classes=num_classes, width=width, **shape_kw, **kwargs)
    except TypeError as exc:
        raise SpecError(f"bad options for model {head!r}: {exc}") from None
    # How to rebuild it: landscape.Monitor records this in checkpoints (no --model needed later).
    model.landscape_spec = ModelSpec(spec, int(num_classes), tuple(int(s) for s in input_shape), float(width))
    return model


def _user_factory(spec: str, num_classes: int) -> nn.Module:
    factory = resolve_factory(spec)
    if not callable(factory):
        raise SpecError(f"{spec} is not callable")
    try:
        params = inspect.signature(factory).parameters
        model = factory(num_classes=num_classes) if "num_classes" in params else factory()
    except Exception as exc:
        raise SpecError(f"model factory {spec} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise SpecError(f"model factory {spec} returned {type(model).__name__}, not an nn.Module")
    return model


def _torchvision(name: Optional[str], num_classes: int) -> nn.Module:
    try:
        import torchvision.models as tvm
    except Exception as exc:  # CUDA wheels fail to import on CPU torch
        raise SpecError(f"torchvision is not usable here ({type(exc).__name__}: {exc}); "
                        "use a registry model such as resnet18") from None
    if not name or not hasattr(tvm, name):
        raise SpecError(f"torchvision has no model {name!r}")
    return getattr(tvm, name)(num_classes=num_classes)


def model_from_spec(ms: ModelSpec) -> nn.Module:
    spec = ms.spec
    if ms.options and ":" not in spec:
        spec = spec + ":" + ",".join(f"{k}={v}" for k, v in ms.options.items())
    return build_model(spec, num_classes=ms.num_classes, input_shape=ms.input_shape, width=ms.width)
