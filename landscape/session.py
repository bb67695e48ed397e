"""From "a checkpoint + a model spec + a data spec + a loss" to ready-to-use Objectives.

:func:`open_session` is what every command (and a notebook) calls first: it reads the checkpoint,
resolves the model and data (from the arguments, or from what landscape recorded in its own
checkpoints), loads and checks the weights, maps the optimizer state, and builds the train and
test :class:`~landscape.objective.Objective` on the chosen device, dtype and subset.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import nn

from . import distributed
from .checkpoint import Checkpoint, OptimizerState, load_checkpoint, load_into, map_optimizer_state
from .data import Dataset, load_data
from .errors import LandscapeError, SpecError
from .models import ModelSpec, model_from_spec
from .objective import Objective
from .params import ParamSpace
from .specs import check_recorded_spec

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class Session:
    """A loaded checkpoint with its model, data, loss and Objectives (train; test if data)."""

    checkpoint: Optional[Checkpoint]
    model: nn.Module
    model_spec: Optional[ModelSpec]
    data: Optional[Dataset]
    loss: str
    train: Optional[Objective]
    test: Optional[Objective]
    optimizer: Optional[OptimizerState]
    space: ParamSpace

    @property
    def n_params(self) -> int:
        return self.space.size

    def provenance(self) -> dict:
        """Where the numbers came from (checkpoint path, model, data, loss, subset)."""
        from .version import __version__

        ck = self.checkpoint
        return {
            "checkpoint": ck.path if ck else None,
            "epoch": ck.epoch if ck else None,
            "model": self.model_spec.spec if self.model_spec else type(self.model).__name__,
            "data": self.data.spec if self.data else None,
            "loss": self.loss,
            "n_train": self.train.n if self.train else None,
            "n_test": self.test.n if self.test else None,
            "landscape_version": __version__,
        }


def resolve_device(device: Optional[str]) -> torch.device:
    """``cpu``/``cuda``/``cuda:N``; ``cuda`` uses LOCAL_RANK under torchrun."""
    import os

    name = device or "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LandscapeError("--device cuda requested but no CUDA device is available")
        if name == "cuda" and "LOCAL_RANK" in os.environ:
            name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return torch.device(name)


def open_session(checkpoint: Optional[str] = None, *, model: Optional[str] = None,
                 data: Optional[str] = None, loss: Optional[str] = None,
                 subset: Optional[int] = None, seed: int = 0, batch_size: int = 1024,
                 device: Optional[str] = None, dtype: str = "float32", bn_mode: str = "eval",
                 trust: bool = False, width: Optional[float] = None,
                 num_classes: Optional[int] = None, need_data: bool = True,
                 init_seed: Optional[int] = None,
                 data_cache: Optional[Dict[str, Dataset]] = None) -> Session:
    """Load everything an analysis needs. Without ``checkpoint``, a fresh model seeded by
    ``init_seed`` (or ``seed``) is used: useful for first-step probes from initialisation.
    ``data_cache`` (spec -> Dataset) lets several sessions of one run share their data
    (:meth:`landscape.runs.Run.session_at`)."""
    if dtype not in DTYPES:
        raise SpecError(f"unknown dtype {dtype!r}; choose float32 or float64")
    if int(batch_size) < 1:
        raise SpecError(f"batch_size must be at least 1 (got {batch_size})")
    if subset is not None and int(subset) < 1:
        raise SpecError(f"subset must be at least 1 sample (got {subset}); leave it unset for the whole set")
    distributed.init_from_env(device)
    ck = load_checkpoint(checkpoint, trust=trust) if checkpoint else None
    meta = ck.meta if ck else {}
    data_spec = data or _recorded(meta, "data", ck, trust)
    ds = _cached_data(data_spec, data_cache) if (data_spec or (need_data and not ck)) else None
    if need_data and ds is None:
        raise SpecError("this checkpoint does not record its data set; pass --data (e.g. cifar10:/path)")
    loss_name = loss or meta.get("loss") or "ce"
    net, mspec = _model(ck, model, ds, width, num_classes, init_seed if init_seed is not None else seed,
                        trust=trust)
    if ck is not None and ck.module is None:
        load_into(net, ck.state_dict, where=ck.path)
    space = ParamSpace.from_model(net)
    opt = None
    if ck is not None and ck.optimizer_raw is not None:
        opt = map_optimizer_state(ck.optimizer_raw, space, meta.get("optimizer_type"))
    dev = resolve_device(device)
    train = test = None
    if ds is not None:
        ds = ds.subset(subset, seed=seed)
        train = Objective(net, ds.x_train, ds.y_train, loss=loss_name, batch_size=batch_size,
                          bn_mode=bn_mode, device=dev, dtype=DTYPES[dtype])
        _check_output(train, ds)
        test = train.with_data(ds.x_test, ds.y_test)
    return Session(ck, net, mspec, ds, loss_name, train, test, opt, space)


def _cached_data(spec: Optional[str], cache: Optional[Dict[str, Dataset]]) -> Dataset:
    """``load_data(spec)``, through ``cache`` when one is given."""
    if cache is None:
        return load_data(spec)
    key = spec or ""
    if key not in cache:
        cache[key] = load_data(spec)
    return cache[key]


def _recorded(meta: dict, what: str, ck: Optional[Checkpoint], trust: bool) -> Optional[str]:
    """A data spec recorded in the checkpoint, refused when it would import code untrusted."""
    spec = meta.get(what)
    if spec is None or ck is None:
        return None
    return check_recorded_spec(spec, what=what, source=ck.path, trust=trust)


def _model(ck: Optional[Checkpoint], spec: Optional[str], ds: Optional[Dataset],
           width: Optional[float], num_classes: Optional[int], seed: int, *, trust: bool = False) -> tuple:
    if ck is not None and ck.module is not None and spec is None:
        return copy.deepcopy(ck.module), None
    recorded = (ck.meta.get("model") if ck else None) if spec is None else None
    if isinstance(recorded, str):  # safetensors metadata holds plain strings
        spec, recorded = check_recorded_spec(recorded, what="model", source=ck.path, trust=trust), None
    if recorded:
        ms = _recorded_model(recorded, ck, trust)
    elif spec:
        if ds is None and not num_classes:
            raise SpecError("pass --data (or --num-classes) so the model's input and output sizes are known")
        ms = ModelSpec(spec, num_classes or (ds.num_classes if ds else 10),
                       tuple(ds.input_shape) if ds else (3, 32, 32), float(width or 1.0))
    else:
        raise SpecError("the checkpoint does not record its model; pass --model (e.g. resnet18)")
    torch.manual_seed(seed)
    net = model_from_spec(ms)
    return net, ms


def _recorded_model(recorded: object, ck: Checkpoint, trust: bool) -> ModelSpec:
    """The model entry landscape recorded in a checkpoint, checked before anything is built."""
    try:
        ms = ModelSpec.from_json(recorded)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpecError(f"{ck.path} records an invalid model entry ({type(exc).__name__}); "
                        "pass --model yourself") from None
    check_recorded_spec(ms.spec, what="model", source=ck.path, trust=trust)
    return ms


def _check_output(obj: Objective, ds: Dataset) -> None:
    try:
        with torch.no_grad():
            out = obj.forward(obj.params(), obj.x[:2])
    except Exception as exc:
        raise SpecError(f"the model cannot run on this data (input shape {ds.input_shape}): "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from None
    if out.dim() != 2 or out.shape[1] < ds.num_classes:
        raise SpecError(f"model outputs shape {tuple(out.shape)} but the data has {ds.num_classes} classes")
