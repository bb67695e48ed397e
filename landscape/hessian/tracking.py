"""Sharpness tracked while training: a train hook that writes ``RUN_DIR/sharpness.csv``.

Every ``every`` optimizer steps (and after the first) :class:`SharpnessTracker` measures, at the
live weights, on a fixed evaluation subset of the training set:

- ``lambda_max``: the top Hessian eigenvalue (Lanczos, warm-started from the previous
  eigenvector, so a measurement usually costs a handful of products) — the quantity that rises
  (progressive sharpening) and then hovers at 2/η under full-batch gradient descent (Cohen et al.
  2021, "Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability");
- ``preconditioned_lambda_max`` for adaptive optimizers: λ₁(P^{-1/2}(H + wd)P^{-1/2}) with P read
  from the live optimizer state (Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of
  Stability": it equilibrates at (2 + 2β₁)/((1 − β₁)η), 38/η for β₁ = 0.9);
- ``batch_sharpness`` for mini-batch SGD: E_B[g_Bᵀ H_B g_B/‖g_B‖²] over mini-batches of the
  training batch size (Andreyev & Beneventano 2024), whose threshold is again 2/η (momentum:
  (2 + 2β)/η);

each next to its threshold for the optimizer in use (:func:`landscape.hessian.verdict.curvature_verdict`), and the
verdict's ``sharpness``/``threshold``/``ratio`` (the quantity the optimizer's stability is about).
The tracker never changes the training: it reads the weights and optimizer state, and evaluates a
private :class:`~landscape.objective.Objective` copy (BatchNorm with per-batch statistics, the
loss being trained).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from ..checkpoint import map_optimizer_state
from ..distributed import is_main
from ..errors import LandscapeError, OptionError
from ..objective import Objective
from ..optim.families import recognise_optimizer
from .batch_sharpness import batch_sharpness
from .preconditioner import is_adaptive
from .verdict import curvature_verdict

SHARPNESS_COLUMNS = (
    "step", "epoch", "lr", "loss", "lambda_max", "lambda_max_residual", "lambda_max_threshold",
    "preconditioned_lambda_max", "preconditioned_residual", "preconditioned_threshold",
    "batch_sharpness", "batch_sharpness_stderr", "batch_sharpness_threshold",
    "sharpness", "threshold", "ratio", "rule", "on", "hvps", "seconds",
)


class SharpnessTracker:
    """Train hook (``train(..., hooks=[tracker])``) measuring sharpness every ``every`` steps.

    Args:
        out_dir: the run folder; rows are appended to ``out_dir/sharpness.csv``.
        x, y: the training set; a fixed subset of ``subset`` samples (seeded) is evaluated.
        loss: the loss being trained.
        every: steps between measurements (also measured after step 1).
        train_batch_size: the training batch size; below the subset size (and for non-adaptive
            optimizers) the batch sharpness is measured over ``batches`` mini-batches of it.
        tol: Lanczos relative residual tolerance.
    """

    def __init__(self, out_dir: str | Path, *, x: torch.Tensor, y: torch.Tensor, loss: str, every: int,
                 train_batch_size: int, subset: Optional[int] = None, batches: int = 10, seed: int = 0,
                 tol: float = 1e-3, eval_batch_size: int = 1024) -> None:
        if every < 1:
            raise OptionError("{every} must be at least 1")
        if subset is not None and not 0 < subset:
            raise OptionError("{subset} must be positive")
        n = len(y)
        if subset is not None and subset < n:
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:subset]
            x, y = x[idx.to(x.device)], y[idx.to(y.device)]
        self.x, self.y, self.loss_name = x, y, loss
        self.path = Path(out_dir) / "sharpness.csv"
        self.every, self.batches, self.seed, self.tol = int(every), int(batches), int(seed), float(tol)
        self.train_batch_size = int(train_batch_size)
        self.full_batch = self.train_batch_size >= n
        self.eval_batch_size = int(eval_batch_size)
        self.objective: Optional[Objective] = None
        self.warm: Dict[str, torch.Tensor] = {}
        self.rows: list = []
        self._started = False

    def _write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append ``rows`` to ``sharpness.csv``; the first write (re)creates it with its header.
        Nothing is written when the tracker is built, so the run folder stays empty until training
        starts (``landscape train`` refuses a folder that already holds run files)."""
        if not is_main():
            return
        if not self._started:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a" if self._started else "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=SHARPNESS_COLUMNS, extrasaction="ignore")
            if not self._started:
                writer.writeheader()
            for r in rows:
                writer.writerow(dict(r))
        self._started = True

    def __call__(self, state: Any) -> None:
        if state.step == 1 or state.step % self.every == 0:
            row = self.measure(state)
            self.rows.append(row)
            self._write([row])

    def restore(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Keep the rows a resumed run measured before (written back as they were read)."""
        for r in rows:
            self.rows.append({k: _as_number(v) for k, v in r.items()})
        if rows:
            self._write(rows)

    def _objective(self, model: torch.nn.Module) -> Objective:
        if self.objective is None:
            has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
            bs = min(self.train_batch_size, self.eval_batch_size) if has_bn else self.eval_batch_size
            self.objective = Objective(model, self.x, self.y, loss=self.loss_name, batch_size=bs,
                                       bn_mode="train" if has_bn else "eval")
        return self.objective

    def measure(self, state: Any) -> Dict[str, Any]:
        """One row of ``sharpness.csv`` at the live weights and optimizer state."""
        t0 = time.perf_counter()
        obj = self._objective(state.model)
        live = dict(state.model.named_parameters())
        theta = obj.space.flatten({n: live[n].detach() for n in obj.space.names}).to(obj.dtype)
        opt = map_optimizer_state(state.optimizer.state_dict(), obj.space,
                                  _type_of(state.optimizer))
        lr = float(state.optimizer.param_groups[0]["lr"])
        hvps0 = obj.hvp_count
        v = curvature_verdict(obj, opt, lr=lr, tol=self.tol, seed=self.seed, warm=self.warm, theta=theta,
                              train_batch_size=obj.batch_size)
        self.warm = dict(v.warm)
        st = v.stability
        nan = float("nan")
        row: Dict[str, Any] = {"step": state.step, "epoch": state.epoch, "lr": lr,
                               "loss": obj.evaluate(theta).loss, "lambda_max": v.lambda_max,
                               "lambda_max_residual": v.lambda_max_residual}
        thr, rule = st.threshold, st.rule
        adaptive = is_adaptive(opt)
        row["lambda_max_threshold"] = nan if adaptive else thr
        row.update(preconditioned_lambda_max=nan, preconditioned_residual=nan, preconditioned_threshold=nan)
        if v.preconditioned is not None:
            row.update(preconditioned_lambda_max=v.preconditioned_lambda_max,
                       preconditioned_residual=float(v.preconditioned.residuals[0]), preconditioned_threshold=thr)
        row.update(batch_sharpness=nan, batch_sharpness_stderr=nan, batch_sharpness_threshold=nan)
        bs_hvps = 0
        if not adaptive and not self.full_batch and self.train_batch_size < obj.n:
            bs = batch_sharpness(obj, batch_size=self.train_batch_size, batches=self.batches,
                                 seed=self.seed, theta=theta)
            bs_hvps = bs.hvps
            row.update(batch_sharpness=bs.value, batch_sharpness_stderr=bs.stderr, batch_sharpness_threshold=thr)
        on_batch = not math.isnan(row["batch_sharpness"])
        sharp = row["batch_sharpness"] if on_batch else st.sharpness
        row.update(sharpness=sharp, threshold=st.threshold,
                   ratio=sharp / st.threshold if st.threshold > 0 else nan,
                   rule=rule, on="batch sharpness" if on_batch else st.on,
                   hvps=obj.hvp_count - hvps0 + bs_hvps, seconds=time.perf_counter() - t0)
        return row


def _type_of(optimizer: torch.optim.Optimizer) -> Optional[str]:
    return recognise_optimizer(optimizer)


def read_sharpness(path: str | Path) -> Dict[str, list]:
    """``sharpness.csv`` as columns (numbers as floats)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: Dict[str, list] = {k: [] for k in (rows[0].keys() if rows else SHARPNESS_COLUMNS)}
    for r in rows:
        for k, v in r.items():
            try:
                cols[k].append(float(v))
            except (TypeError, ValueError):
                cols[k].append(v)
    return cols


def edge_of_stability_summary(cols: Dict[str, list], *, key: str = "sharpness", last: float = 0.4) -> Dict[str, float]:
    """How a tracked series relates to its threshold: the first value, the peak, and the mean,
    min and max of ``key/threshold`` over the last ``last`` fraction of the measurements (the
    "hover" of the edge of stability: mean within 10% of 1 in Cohen et al.'s sense)."""
    vals = [float(v) for v in cols[key]]
    thr = [float(t) for t in cols["threshold"]]
    if not vals:
        raise LandscapeError("no sharpness measurements")
    start = min(len(vals) - 1, int(len(vals) * (1 - last)))
    ratios = [v / t for v, t in zip(vals[start:], thr[start:]) if t > 0 and math.isfinite(v)]
    return {"first": vals[0], "first_ratio": vals[0] / thr[0], "peak": max(vals), "threshold": thr[-1],
            "from_step": float(cols["step"][start]), "last_mean_ratio": sum(ratios) / len(ratios),
            "last_min_ratio": min(ratios), "last_max_ratio": max(ratios), "measurements": float(len(vals))}


def _as_number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
