"""Reading checkpoints in the formats users actually have, without being told which.

Recognised by content, not by key names: a raw ``state_dict``; a dict holding exactly one
state-dict-like value (tensors keyed by parameter names) or ``nn.Module`` wherever it sits
(``state_dict``, ``model_state``, ``net``, ``ema``, one level deeper too; several → a one-line
error naming ``--checkpoint-key``); the optimizer state by its ``state``/``param_groups``
structure; ``.safetensors`` files; key prefixes of DataParallel/DDP (``module.``) and
``torch.compile`` (``_orig_mod.``); epoch/step from the dict or the file name. Checkpoints saved
before PyTorch 0.4.1 lack BatchNorm's ``num_batches_tracked``: :func:`load_into` fills it and
says so once.
Loading uses ``torch.load(weights_only=True)``; a pickled ``nn.Module`` (which can run arbitrary
code when unpickled) needs ``trust=True`` (``--trust-checkpoint``).

The optimizer's per-parameter state is stored by torch under integer ids in ``param_groups``
order, which is ``model.parameters()`` order when the optimizer was built from it;
:func:`map_optimizer_state` maps it by that order (or by ``param_names`` where torch saved them)
and checks count and shapes, refusing to guess on a mismatch.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from .errors import CheckpointError, CheckpointOptionError
from .optim.families import recognise_state
from .params import ParamSpace

PREFIXES = ("module.", "_orig_mod.")
_NAME_NUMBER = re.compile(r"(epoch|ep|step|iter|it)[_\-]?(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class OptimizerState:
    """An optimizer's hyper-parameters and per-parameter buffers, keyed by parameter name.

    ``type`` is one of sgd, adam, adamw, radam, nadam, adamax, rmsprop, adagrad, adadelta,
    adabound, amsbound or ``unknown``; ``hyper`` is the first param group without ``params``; ``groups`` all of them;
    ``group_of`` maps each parameter name to its group index.
    """

    type: str
    hyper: Dict[str, Any]
    buffers: Dict[str, Dict[str, torch.Tensor]]
    groups: Tuple[Dict[str, Any], ...] = ()
    group_of: Dict[str, int] = field(default_factory=dict)
    notes: Tuple[str, ...] = ()

    @property
    def lr(self) -> Optional[float]:
        return _float(self.hyper.get("lr"))

    @property
    def momentum(self) -> float:
        return float(self.hyper.get("momentum", 0.0) or 0.0)

    @property
    def dampening(self) -> float:
        return float(self.hyper.get("dampening", 0.0) or 0.0)

    @property
    def nesterov(self) -> bool:
        return bool(self.hyper.get("nesterov", False))

    @property
    def betas(self) -> Optional[Tuple[float, float]]:
        b = self.hyper.get("betas")
        return (float(b[0]), float(b[1])) if b is not None else None

    @property
    def eps(self) -> Optional[float]:
        return _float(self.hyper.get("eps"))

    @property
    def weight_decay(self) -> float:
        return float(self.hyper.get("weight_decay", 0.0) or 0.0)

    @property
    def amsgrad(self) -> bool:
        return bool(self.hyper.get("amsgrad", False))

    @property
    def step(self) -> Optional[int]:
        """The optimizer's step count t (from the first parameter that records one)."""
        for bufs in self.buffers.values():
            if "step" in bufs:
                return int(float(bufs["step"]))
        return None

    def to_json(self) -> dict:
        return {
            "type": self.type,
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "nesterov": self.nesterov,
            "betas": list(self.betas) if self.betas else None,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
            "step": self.step,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds, with prefixes stripped; tensors on the CPU."""

    path: str
    state_dict: Dict[str, torch.Tensor]
    optimizer_raw: Optional[Dict[str, Any]] = None
    epoch: Optional[int] = None
    step: Optional[int] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    module: Optional[nn.Module] = None
    format: str = "state_dict"
    key: Optional[str] = None
    notes: Tuple[str, ...] = ()

    def sha256(self) -> str:
        """SHA-256 of the file (for provenance)."""
        h = hashlib.sha256()
        with open(self.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


def load_checkpoint(path: str | Path, *, trust: bool = False, key: Optional[str] = None) -> Checkpoint:
    """Read a checkpoint of any supported format (see module docstring); ``key`` picks the model
    weights where the file holds several (``--checkpoint-key``)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"{p} is a folder, not a checkpoint file")
    if p.suffix == ".safetensors":
        return _load_safetensors(p)
    obj = _torch_load(p, trust)
    return _interpret(p, obj, key)


def read_position(path: str | Path) -> Tuple[Optional[int], Optional[int]]:
    """``(epoch, step)`` recorded inside a checkpoint, read cheaply (memory-mapped, safe loading;
    safetensors metadata); ``(None, None)`` where the file records neither."""
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
        return _int(meta.get("epoch")), _int(meta.get("step"))
    with open(p, "rb") as f:
        zipped = f.read(2) == b"PK"
    obj = torch.load(p, map_location="cpu", weights_only=True, mmap=zipped)
    if not isinstance(obj, Mapping):
        return None, None
    step = obj.get("step", obj.get("global_step", obj.get("iteration")))
    return _int(obj.get("epoch")), _int(step)


def _torch_load(p: Path, trust: bool) -> Any:
    with open(p, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (PK..); legacy files are pickles (protocol byte 0x80).
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise CheckpointError(f"cannot read {p}: not a checkpoint (neither a torch archive nor a pickle)")
    try:
        return torch.load(p, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if not trust and "weights_only" in str(exc):
            raise CheckpointOptionError(
                "{p} holds Python objects that safe loading refuses (e.g. a pickled nn.Module); "
                "if you trust the file, pass {trust}", p=p
            ) from None
        raise CheckpointError(f"cannot read {p}: not a valid checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # torch raises many types for damaged files (KeyError, EOFError, ...)
        raise CheckpointError(f"cannot read {p}: truncated or corrupt file ({_first_line(exc)})") from None


def _load_safetensors(p: Path) -> Checkpoint:
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file

        tensors = load_file(str(p), device="cpu")
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:
        raise CheckpointError(f"cannot read {p}: corrupt safetensors file ({_first_line(exc)})") from None
    epoch, step = _numbers_from_name(p.name)
    return Checkpoint(str(p), strip_prefixes(tensors), None, _int(meta.get("epoch")) or epoch,
                      _int(meta.get("step")) or step, meta, None, "safetensors")


def _interpret(p: Path, obj: Any, key: Optional[str] = None) -> Checkpoint:
    """Find the model weights and the optimizer state in a loaded object by their structure."""
    name_epoch, name_step = _numbers_from_name(p.name)
    if isinstance(obj, nn.Module):
        return Checkpoint(str(p), strip_prefixes(obj.state_dict()), None, name_epoch, name_step,
                          {}, obj, "module")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{p} is not a checkpoint: it holds a {type(obj).__name__}")
    if is_state_dict(obj):
        return Checkpoint(str(p), strip_prefixes(obj), None, name_epoch, name_step, {}, None, "state_dict")
    models, optimizers = find_candidates(obj)
    if key is not None:
        if key not in models:
            raise CheckpointOptionError("{checkpoint_key} {key}: {p} holds no model weights there "
                                        "(weights found under: {found})", key=key, p=p,
                                        found=", ".join(models) or "none")
        models = {key: models[key]}
    if not models:
        raise CheckpointError(
            f"{p} holds no model weights: no state dict (tensors keyed by parameter names) and no "
            f"nn.Module in it (found keys: {', '.join(map(str, list(obj)[:8]))})")
    if len(models) > 1:
        raise CheckpointOptionError("{p} holds several sets of model weights ({found}); "
                                    "pick one with {checkpoint_key} KEY", p=p, found=", ".join(models))
    where, value = next(iter(models.items()))
    module = value if isinstance(value, nn.Module) else None
    weights = value.state_dict() if module is not None else value
    notes: Tuple[str, ...] = ()
    optimizer = None
    if len(optimizers) == 1:
        optimizer = next(iter(optimizers.values()))
    elif optimizers:
        notes = (f"several optimizer states ({', '.join(optimizers)}); none used",)
    meta = dict(obj.get("landscape") or {})
    epoch = _int(obj.get("epoch"))
    step = _int(obj.get("step", obj.get("global_step", obj.get("iteration"))))
    tensors = {k: v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    return Checkpoint(str(p), strip_prefixes(tensors), optimizer,
                      epoch if epoch is not None else name_epoch,
                      step if step is not None else name_step, meta, module, "dict", where, notes)


def is_state_dict(value: Any) -> bool:
    """Tensors keyed by (dotted) parameter names: what ``module.state_dict()`` returns."""
    return (isinstance(value, Mapping) and bool(value)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()))


def is_optimizer_state(value: Any) -> bool:
    """What ``optimizer.state_dict()`` returns: ``state`` and a list of ``param_groups``."""
    return (isinstance(value, Mapping) and "state" in value and "param_groups" in value
            and isinstance(value["param_groups"], (list, tuple)))


def find_candidates(obj: Mapping, prefix: str = "", depth: int = 2) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``({path: weights or module}, {path: optimizer state})`` anywhere in ``obj`` down to
    ``depth`` levels of nesting (paths joined with ``/``; lists of optimizer states too)."""
    models: Dict[str, Any] = {}
    optimizers: Dict[str, Any] = {}
    for k, v in obj.items():
        path = f"{prefix}{k}"
        if isinstance(v, nn.Module) or is_state_dict(v):
            models[path] = v
        elif is_optimizer_state(v):
            optimizers[path] = v
        elif isinstance(v, (list, tuple)) and v and all(is_optimizer_state(x) for x in v):
            optimizers.update({f"{path}/{i}": x for i, x in enumerate(v)})
        elif isinstance(v, Mapping) and depth > 1:
            inner_models, inner_opts = find_candidates(v, f"{path}/", depth - 1)
            models.update(inner_models)
            optimizers.update(inner_opts)
    return models, optimizers


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Remove ``module.`` / ``_orig_mod.`` prefixes (in any combination) from every key."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def check_nonfinite(state: Mapping[str, torch.Tensor], where: str) -> List[str]:
    """Names of floating tensors holding NaN/inf; warns once (analyses then record NaN losses)."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        warnings.warn(f"{where}: non-finite values in {len(bad)} tensor(s), e.g. {bad[0]}", stacklevel=2)
    return bad


def fill_legacy_buffers(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], *,
                        where: str = "checkpoint") -> Mapping[str, torch.Tensor]:
    """Checkpoints saved before PyTorch 0.4.1 have no BatchNorm ``num_batches_tracked``: fill the
    missing counters with 0 (they only matter for ``momentum=None`` BatchNorm) and say so once."""
    missing = [k for k in expected if k not in state and k.endswith("num_batches_tracked")]
    if not missing or any(k not in state for k in expected if not k.endswith("num_batches_tracked")):
        return state  # nothing to fill, or a different model: load_into reports what differs
    warnings.warn(f"{where}: legacy checkpoint (saved before PyTorch 0.4.1): {len(missing)} BatchNorm "
                  "layer(s) without num_batches_tracked; filled with 0", stacklevel=3)
    filled = dict(state)
    filled.update({k: torch.zeros_like(expected[k], device="cpu") for k in missing})
    return filled


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], *, where: str = "checkpoint") -> None:
    """Load weights into ``model`` after checking names and shapes; a mismatch lists what differs."""
    expected = model.state_dict()
    state = fill_legacy_buffers(state, expected, where=where)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shaped = [f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in expected.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shaped:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{label}: {', '.join(items[:3])}{more}")
        raise CheckpointOptionError("{where} does not match the model — {parts} (is {model} right?)",
                                    where=where, parts="; ".join(parts))
    check_nonfinite(state, where)
    with torch.no_grad():
        model.load_state_dict({k: state[k] for k in expected}, strict=True)


def infer_optimizer_type(raw: Mapping[str, Any]) -> Tuple[str, Tuple[str, ...]]:
    """Name the optimizer family from state keys and param-group keys (torch.optim layouts;
    :func:`landscape.optim.families.recognise_state`)."""
    return recognise_state(raw)


def map_optimizer_state(raw: Mapping[str, Any], space: ParamSpace,
                        recorded_type: Optional[str] = None) -> OptimizerState:
    """Map torch's id-keyed optimizer state to parameter names of ``space`` (see module docstring)."""
    groups = list(raw.get("param_groups") or [])
    if not groups:
        raise CheckpointError("optimizer state has no param_groups")
    ids: List[Any] = []
    group_index: List[int] = []
    names_saved: List[str] = []
    for gi, g in enumerate(groups):
        ids.extend(g.get("params", []))
        group_index.extend([gi] * len(g.get("params", [])))
        names_saved.extend(g.get("param_names", []) or [])
    if names_saved and len(names_saved) == len(ids):
        names = list(strip_prefixes({n: torch.empty(0) for n in names_saved}))
        unknown = [n for n in names if n not in space.names]
        if unknown:
            raise CheckpointError(f"optimizer state names parameters the model lacks: {', '.join(unknown[:3])}")
    else:
        if len(ids) != len(space.names):
            raise CheckpointError(
                f"optimizer state covers {len(ids)} parameters but the model has {len(space.names)} "
                "trainable ones; cannot map its buffers to parameters by order"
            )
        names = list(space.names)
    shape_of = dict(zip(space.names, space.shapes))
    state = raw.get("state") or {}
    buffers: Dict[str, Dict[str, torch.Tensor]] = {}
    for pid, name in zip(ids, names):
        entry = state.get(pid, state.get(str(pid)))
        if not entry:
            continue
        bufs = {k: v for k, v in entry.items() if isinstance(v, torch.Tensor)}
        for k, v in bufs.items():
            if v.dim() > 0 and tuple(v.shape) != tuple(shape_of[name]):
                raise CheckpointError(
                    f"optimizer buffer {k} for {name} has shape {tuple(v.shape)}, parameter has "
                    f"{tuple(shape_of[name])}: the optimizer was not built from model.parameters() in order"
                )
        buffers[name] = bufs
    inferred, notes = infer_optimizer_type(raw)
    opt_type = recorded_type or inferred
    hyper = {k: v for k, v in groups[0].items() if k not in ("params", "param_names")}
    clean_groups = tuple({k: v for k, v in g.items() if k not in ("params", "param_names")} for g in groups)
    if len({g.get("lr") for g in groups}) > 1:
        notes = notes + ("param groups have different learning rates; lr is the first group's",)
    return OptimizerState(opt_type, hyper, buffers, clean_groups, dict(zip(names, group_index)),
                          notes if not recorded_type else ())


def _numbers_from_name(name: str) -> Tuple[Optional[int], Optional[int]]:
    epoch = step = None
    for m in _NAME_NUMBER.finditer(name):
        kind = m.group(1).lower()
        if kind in ("epoch", "ep") and epoch is None:
            epoch = int(m.group(2))
        elif kind in ("step", "iter", "it") and step is None:
            step = int(m.group(2))
    return epoch, step


def _int(v: Any) -> Optional[int]:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> Optional[float]:
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
