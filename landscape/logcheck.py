"""Checking a checkpoint against its run's own log: are we computing the run's numbers?

A run's log records, per epoch, losses that can be recomputed exactly from the checkpoint of that
epoch: the eval-mode ``test`` (and ``val``) losses. Recomputing one and comparing says whether the
model, loss, preprocessing and split landscape uses are the run's own. ``consistent`` means a
relative difference of at most :data:`TOLERANCE`. When it fails, the other preprocessing presets
and loss conventions are tried on the same logits' inputs, and the flags that would make the check
pass are named. (The ``train`` column of a log is usually a running mean over augmented
mini-batches in train mode and cannot be recomputed; it is never used.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .data import NORMALIZE_PRESETS, Dataset, parse_normalize
from .errors import SpecError
from .losses import LOSSES, get_loss
from .objective import Objective
from .runfiles import RunLog

TOLERANCE = 1e-3
SPLITS = ("test", "val")  # recomputable (eval-mode) splits, in order of preference


@dataclass(frozen=True)
class LogCheck:
    """One logged loss against the same loss recomputed from the checkpoint."""

    epoch: float
    split: str
    logged: float
    recomputed: float
    rel_diff: float
    consistent: bool
    loss: str
    normalize: str
    log: str
    suggestions: Tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"epoch": self.epoch, "split": self.split, "logged": self.logged, "recomputed": self.recomputed,
                "rel_diff": self.rel_diff, "consistent": self.consistent, "loss": self.loss,
                "normalize": self.normalize, "log": self.log, "suggestions": list(self.suggestions)}

    def warning(self) -> str:
        """The one-line warning for an inconsistent check."""
        fix = (f"consistent with {' or '.join(self.suggestions)}" if self.suggestions
               else "no --normalize preset or --loss convention makes it consistent")
        return (f"the run's log has {self.split} loss {self.logged:.6g} at epoch {_fmt(self.epoch)}, "
                f"recomputed {self.recomputed:.6g} (rel. diff {self.rel_diff:.2g} > {TOLERANCE:g}) with "
                f"loss {self.loss} and preprocessing {self.normalize}: the numbers may not be the run's own; {fix}")


def logged_loss(log: RunLog, epoch: Optional[float], ds: Dataset, *,
                step: Optional[int] = None) -> Optional[Tuple[str, float]]:
    """``(split, logged loss)`` of the first recomputable split the log has at ``epoch`` (and at
    ``step``, where both the log and the checkpoint record one: a checkpoint saved inside an
    epoch is not the one the epoch's row describes)."""
    if epoch is None:
        return None
    row = log.at_epoch(epoch)
    if row is None:
        return None
    logged_step = row.get("step")
    if step is not None and isinstance(logged_step, float) and math.isfinite(logged_step) \
            and int(logged_step) != int(step):
        return None
    for split in SPLITS:
        value = row.get(f"{split}_loss")
        if isinstance(value, float) and math.isfinite(value) and _has_split(ds, split):
            return split, value
    return None


def check_against_log(model: nn.Module, ds: Dataset, log: RunLog, epoch: Optional[float], *,
                      losses: Sequence[str], step: Optional[int] = None, batch_size: int = 1024,
                      device: Optional[torch.device] = None,
                      dtype: torch.dtype = torch.float32) -> Optional[LogCheck]:
    """Recompute the logged loss at ``epoch`` under each of ``losses`` (the candidates for the
    run's loss; the closest wins); ``None`` when the log has no recomputable loss there."""
    found = logged_loss(log, epoch, ds, step=step)
    if found is None:
        return None
    split, logged = found
    values = _losses(model, ds, split, losses, batch_size, device, dtype)
    best = min(losses, key=lambda name: _rel(values[name], logged))
    rel = _rel(values[best], logged)
    check = LogCheck(float(epoch), split, logged, values[best], rel, rel <= TOLERANCE,  # type: ignore[arg-type]
                     best, ds.normalize, str(log.path))
    if check.consistent:
        return check
    return LogCheck(**{**check.__dict__, "suggestions": tuple(_suggest(model, ds, split, logged, check,
                                                                      batch_size, device, dtype))})


def _suggest(model: nn.Module, ds: Dataset, split: str, logged: float, check: LogCheck, batch_size: int,
             device: Optional[torch.device], dtype: torch.dtype) -> List[str]:
    """The ``--normalize``/``--loss`` flags under which the recomputed loss matches the log."""
    channels = ds.input_shape[0] if len(ds.input_shape) == 3 else 1
    out: List[str] = []
    usual = ds.default_normalize[0] if ds.default_normalize else "none"
    for norm in (ds.normalize, *NORMALIZE_PRESETS, "none", "default"):
        if norm == "default" and usual in (ds.normalize, *NORMALIZE_PRESETS, "none"):
            continue  # the usual preprocessing is a preset tried anyway
        if norm not in (ds.normalize, "default"):
            try:
                parse_normalize(norm, channels=channels)
            except SpecError:
                continue
        other = ds if norm == ds.normalize else ds.renormalized(norm)
        values = _losses(model, other, split, tuple(LOSSES), batch_size, device, dtype)
        for name, value in values.items():
            if _rel(value, logged) <= TOLERANCE and (name, norm) != (check.loss, check.normalize):
                flags = ([f"--normalize {norm}" if norm != "default" else "no --normalize"]
                         if norm != ds.normalize else []) + ([f"--loss {name}"] if name != check.loss else [])
                out.append(" ".join(flags))
    return list(dict.fromkeys(out))


def _losses(model: nn.Module, ds: Dataset, split: str, names: Sequence[str], batch_size: int,
            device: Optional[torch.device], dtype: torch.dtype) -> Dict[str, float]:
    """Mean eval-mode loss of ``split`` under each loss in ``names`` (one forward pass)."""
    x, y = ds.split(split)
    obj = Objective(model, x, y, loss="ce", batch_size=batch_size, bn_mode="eval", device=device, dtype=dtype,
                    shard=False)
    params = obj.params()
    sums = {name: torch.zeros((), dtype=torch.float64, device=obj.x.device) for name in names}
    with torch.no_grad():
        for a in range(0, obj.n, obj.batch_size):
            logits = obj.forward(params, obj.x[a:a + obj.batch_size])
            yb = obj.y[a:a + obj.batch_size]
            for name in names:
                sums[name] += get_loss(name)(logits, yb).double()
    return {name: float(s) / obj.n for name, s in sums.items()}


def _has_split(ds: Dataset, split: str) -> bool:
    try:
        ds.split(split)
    except ValueError:
        return False
    return True


def _rel(value: float, logged: float) -> float:
    if not (math.isfinite(value) and math.isfinite(logged)):
        return math.inf
    return abs(value - logged) / max(abs(logged), 1e-12)


def fmt_rel(value: float) -> str:
    """A relative difference for people: ``2.4e-02``, or ``< 1e-6`` for agreement to float precision."""
    return f"{value:.1e}" if value >= 1e-6 else "< 1e-6"


def _fmt(epoch: float) -> str:
    return str(int(epoch)) if float(epoch).is_integer() else f"{epoch:g}"
