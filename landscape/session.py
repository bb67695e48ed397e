"""From "a checkpoint + a model spec + a data spec + a loss" to ready-to-use Objectives.

:func:`open_session` is what every command (and a notebook) calls first: it reads the checkpoint,
resolves the model, data, loss, preprocessing and training split, loads and checks the weights,
maps the optimizer state, and builds the train and test :class:`~landscape.objective.Objective`
on the chosen device, dtype and subset. Each setting comes from, in this order: the argument
(command-line flag), what landscape recorded in its own checkpoint, the run folder's config file
(``config.yaml`` & co., :mod:`landscape.runfiles`), recognition of the weights
(:mod:`landscape.models.recognise`), a default; :attr:`Session.sources` says which. Where the
checkpoint's run has a log, the logged loss at its epoch is recomputed
(:mod:`landscape.logcheck`); an inconsistency is a one-line warning.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from . import distributed
from .checkpoint import Checkpoint, OptimizerState, load_checkpoint, load_into, map_optimizer_state
from .data import Dataset, load_data
from .errors import (
    CheckpointError,
    CheckpointOptionError,
    OptionError,
    Phrase,
    SpecError,
    SpecOptionError,
)
from .logcheck import LogCheck, check_against_log, fmt_rel, logged_loss
from .models import ModelSpec, model_from_spec
from .models.recognise import Recognition, recognise
from .objective import Objective
from .params import ParamSpace
from .runfiles import RunLog, RunSettings, find_config, find_log, run_root_of, run_settings
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
    sources: Dict[str, str] = field(default_factory=dict)
    notes: Tuple[str, ...] = ()
    recognition: Optional[Recognition] = None
    log_check: Optional[LogCheck] = None
    run_root: Optional[str] = None

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
            "normalize": self.data.normalize if self.data else None,
            "split": self.data.split_note if self.data else None,
            "sources": dict(self.sources),
            "recognised": self.recognition.description if self.recognition else None,
            "run": self.run_root,
            "landscape_version": __version__,
        }


def resolve_device(device: Optional[str]) -> torch.device:
    """``cpu``/``cuda``/``cuda:N``; ``cuda`` uses LOCAL_RANK under torchrun."""
    import os

    name = device or "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OptionError("{device} cuda requested but no CUDA device is available")
        if name == "cuda" and "LOCAL_RANK" in os.environ:
            name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return torch.device(name)


def open_session(checkpoint: Optional[str] = None, *, model: Optional[str] = None,
                 data: Optional[str] = None, loss: Optional[str] = None,
                 subset: Optional[int] = None, seed: int = 0, batch_size: int = 1024,
                 device: Optional[str] = None, dtype: str = "float32", bn_mode: str = "eval",
                 trust: bool = False, width: Optional[float] = None,
                 num_classes: Optional[int] = None, need_data: bool = True,
                 init_seed: Optional[int] = None, normalize: Optional[str] = None,
                 checkpoint_key: Optional[str] = None, check_log: bool = True,
                 data_cache: Optional[Dict[Any, Dataset]] = None) -> Session:
    """Load everything an analysis needs (see the module docstring for where settings come from).

    Without ``checkpoint``, a fresh model seeded by ``init_seed`` (or ``seed``) is used: useful for
    first-step probes from initialisation. ``normalize``: ``--normalize`` (preset or
    ``MEANS/STDS``; default: the data set's usual one). ``checkpoint_key`` picks the weights in a
    file holding several. ``check_log``: compare with the run's log (one extra evaluation of the
    logged split). ``data_cache`` lets the sessions of one run share their data
    (:meth:`landscape.runs.Run.session_at`)."""
    if dtype not in DTYPES:
        raise SpecError(f"unknown dtype {dtype!r}; choose float32 or float64")
    if int(batch_size) < 1:
        raise SpecError(f"batch_size must be at least 1 (got {batch_size})")
    if subset is not None and int(subset) < 1:
        raise SpecError(f"subset must be at least 1 sample (got {subset}); leave it unset for the whole set")
    distributed.init_from_env(device)
    ck = load_checkpoint(checkpoint, trust=trust, key=checkpoint_key) if checkpoint else None
    meta = ck.meta if ck else {}
    root, settings, log = _run_context(ck)
    cfg_src = f"run config ({settings.source})" if settings else ""
    sources: Dict[str, str] = {}
    notes: List[str] = list(ck.notes) if ck else []
    data_spec, sources["data"] = _pick(("flag", data),  # a recorded spec is checked only when it is used
                                       ("checkpoint", None if data else _recorded(meta, "data", ck, trust)),
                                       (cfg_src, settings.data if settings else None))
    ds = (_cached_data(data_spec, normalize, data_cache)
          if (data_spec or (need_data and not ck)) else None)
    if need_data and ds is None:
        raise SpecOptionError("this checkpoint does not record its data set; pass {data} (e.g. cifar10:/path)")
    if ds is not None:
        sources["normalize"] = "flag" if normalize is not None else "default for the data"
        if settings and settings.val_split:
            ds = ds.carve_validation(settings.val_split, seed=settings.split_seed or 0)
            sources["split"] = cfg_src
            notes.append(str(ds.split_note))
    net, mspec, recog, sources["model"] = _model(ck, model, ds, width, num_classes,
                                                 init_seed if init_seed is not None else seed, trust=trust,
                                                 settings=settings)
    if recog is not None:
        notes.extend(recog.notes)
        if settings and settings.model_name:
            notes.append(f"{settings.model_name} ({settings.source}) recognised as {recog.description}")
    if ck is not None and ck.module is None:
        _load_weights(net, ck, sources["model"])
    space = ParamSpace.from_model(net)
    opt = None
    if ck is not None and ck.optimizer_raw is not None:
        opt = map_optimizer_state(ck.optimizer_raw, space, meta.get("optimizer_type"))
    losses, sources["loss"] = _loss_candidates(loss, meta, settings)
    dev = resolve_device(device)
    check = None
    if ds is not None and log is not None and check_log and ck is not None:
        check = check_against_log(net, ds, log, ck.epoch, step=ck.step, losses=losses,
                                  batch_size=batch_size, device=dev, dtype=DTYPES[dtype])
    loss_name = _resolve_loss(losses, check, settings, ds, log, ck, notes, sources)
    if check is not None and not check.consistent:
        warnings.warn(check.warning(), stacklevel=2)
    train = test = None
    if ds is not None:
        ds = ds.subset(subset, seed=seed)
        train = Objective(net, ds.x_train, ds.y_train, loss=loss_name, batch_size=batch_size,
                          bn_mode=bn_mode, device=dev, dtype=DTYPES[dtype])
        _check_output(train, ds)
        test = train.with_data(ds.x_test, ds.y_test)
    return Session(ck, net, mspec, ds, loss_name, train, test, opt, space, sources, tuple(notes), recog,
                   check, str(root) if root else None)


def _load_weights(net: nn.Module, ck: Checkpoint, model_source: str) -> None:
    """Load the checkpoint's weights; when a ``--model`` given by hand does not fit them, say
    which architecture they are."""
    try:
        load_into(net, ck.state_dict, where=ck.path)
    except CheckpointError as exc:
        if model_source != "flag":
            raise
        try:
            recog = recognise(ck.state_dict)
        except SpecError:
            raise exc from None
        raise CheckpointOptionError("{exc}; the weights are {description}: pass {model} {spec} or leave {model} out",
                                    exc=exc, description=recog.description, spec=recog.spec) from None


def _run_context(ck: Optional[Checkpoint]) -> Tuple[Optional[Path], Optional[RunSettings], Optional[RunLog]]:
    """The run folder around a checkpoint, what its config says, and its log (each may be None)."""
    if ck is None:
        return None, None, None
    root = run_root_of(ck.path)
    if root is None:
        return None, None, None
    config = find_config(root)
    return root, (run_settings(config, root=root) if config else None), find_log(root)


def _pick(*options: Tuple[str, Any]) -> Tuple[Any, str]:
    """The first ``(source, value)`` whose value is set: ``(value, source)``."""
    for source, value in options:
        if value is not None and value != "":
            return value, source
    return None, "none"


def _loss_candidates(loss: Optional[str], meta: dict, settings: Optional[RunSettings]) -> Tuple[Tuple[str, ...], str]:
    """The loss conventions the run may have used, and where that came from."""
    if loss:
        return (loss,), "flag"
    if meta.get("loss"):
        return (str(meta["loss"]),), "checkpoint"
    if settings and settings.loss_name:
        if not settings.loss_candidates:
            raise SpecOptionError("the run config ({source}) names the loss {name!r}, which landscape does not "
                                  "know; pass {loss} (ce, mse, mse-sum or mse-softmax)", source=settings.source,
                                  name=settings.loss_name)
        return settings.loss_candidates, f"run config ({settings.source}: {settings.loss_name})"
    return ("ce",), "default"


def _resolve_loss(losses: Tuple[str, ...], check: Optional[LogCheck], settings: Optional[RunSettings],
                  ds: Optional[Dataset], log: Optional[RunLog], ck: Optional[Checkpoint], notes: List[str],
                  sources: Dict[str, str]) -> str:
    """One loss: the only candidate, or the one the run's log confirms (``mse`` is ambiguous)."""
    if len(losses) == 1:
        return losses[0]
    name = settings.loss_name if settings else "?"
    if check is not None:
        verdict = "matches" if check.consistent else "comes closest to"
        notes.append(f"loss {name!r} read as {check.loss}: its recomputed {check.split} loss {verdict} the log "
                     f"at epoch {check.epoch:g} (rel. diff {fmt_rel(check.rel_diff)})")
        sources["loss"] += f" -> {check.loss} (confirmed by the log)" if check.consistent else f" -> {check.loss}"
        return check.loss
    if ds is None:
        notes.append(f"loss {name!r} is ambiguous ({' or '.join(losses)}); {losses[0]} assumed (no data given)")
        return losses[0]
    why = ("the run has no log" if log is None else
           "its log has no recomputable loss at this checkpoint's epoch" if ck is None or
           logged_loss(log, ck.epoch, ds, step=ck.step) is None else "")
    raise SpecOptionError("the run config's loss {name!r} is ambiguous (on logits or on softmax outputs) and {why}; "
                          "pass {choices}", name=name, why=why,
                          choices=Phrase(" or ".join("{loss} " + n for n in losses)))


def _cached_data(spec: Optional[str], normalize: Optional[str], cache: Optional[Dict[Any, Dataset]]) -> Dataset:
    """``load_data(spec, normalize=...)``, through ``cache`` when one is given."""
    if cache is None:
        return load_data(spec, normalize=normalize)
    key = (spec or "", normalize)
    if key not in cache:
        cache[key] = load_data(spec, normalize=normalize)
    return cache[key]


def _recorded(meta: dict, what: str, ck: Optional[Checkpoint], trust: bool) -> Optional[str]:
    """A data spec recorded in the checkpoint, refused when it would import code untrusted."""
    spec = meta.get(what)
    if spec is None or ck is None:
        return None
    return check_recorded_spec(spec, what=what, source=ck.path, trust=trust)


def _model(ck: Optional[Checkpoint], spec: Optional[str], ds: Optional[Dataset],
           width: Optional[float], num_classes: Optional[int], seed: int, *, trust: bool = False,
           settings: Optional[RunSettings] = None) -> Tuple[nn.Module, Optional[ModelSpec], Optional[Recognition], str]:
    """``(model, spec, recognition, source)``: the flag, the checkpoint's own record, else the
    architecture recognised from the weights."""
    if ck is not None and ck.module is not None and spec is None:
        return copy.deepcopy(ck.module), None, None, "checkpoint (pickled module)"
    recorded = (ck.meta.get("model") if ck else None) if spec is None else None
    source = "flag" if spec else "checkpoint"
    recog = None
    if isinstance(recorded, str):  # safetensors metadata holds plain strings
        spec, recorded = check_recorded_spec(recorded, what="model", source=ck.path, trust=trust), None
    if recorded:
        ms = _recorded_model(recorded, ck, trust)
    elif spec:
        if ds is None and not num_classes:
            raise SpecOptionError("pass {data} (or {num_classes}) so the model's input and output sizes are known")
        ms = ModelSpec(spec, num_classes or (ds.num_classes if ds else 10),
                       tuple(ds.input_shape) if ds else (3, 32, 32), float(width or 1.0))
    elif ck is not None:
        recog = recognise(ck.state_dict)
        ms = ModelSpec(recog.spec, recog.num_classes, _input_shape(recog, ds), recog.width)
        source = "recognised from the weights" + (f" ({settings.model_name} in {settings.source})"
                                                  if settings and settings.model_name else "")
    else:
        raise SpecOptionError("no checkpoint and no {model}: pass {model} (e.g. resnet18)")
    torch.manual_seed(seed)
    net = model_from_spec(ms)
    return net, ms, recog, source


def _input_shape(recog: Recognition, ds: Optional[Dataset]) -> Tuple[int, ...]:
    """The data's input shape where it fits the recognised model, else the model's natural one."""
    if recog.in_features is not None:
        if ds is not None and math.prod(ds.input_shape) == recog.in_features:
            return tuple(ds.input_shape)
        return (recog.in_features,)
    if ds is not None and len(ds.input_shape) == 3 and ds.input_shape[0] == recog.in_channels:
        return tuple(ds.input_shape)
    return (recog.in_channels, 32, 32)


def _recorded_model(recorded: object, ck: Checkpoint, trust: bool) -> ModelSpec:
    """The model entry landscape recorded in a checkpoint, checked before anything is built."""
    try:
        ms = ModelSpec.from_json(recorded)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpecOptionError("{path} records an invalid model entry ({kind}); pass {model} yourself",
                              path=ck.path, kind=type(exc).__name__) from None
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
