"""Spike probe: causes of a test-loss spike that are not the landscape (REFERENCES.md, "Not
geometry at all"), registered as hypotheses of :mod:`landscape.probes.spikes`.

- ``bn_statistics``: BatchNorm running statistics lag behind the weights. At the spike checkpoint
  the statistics are recomputed on the training batches (a private copy in train mode, no
  gradients, cumulative average: ``momentum=None``) and the test loss re-evaluated with them; if
  the spike disappears (≥ 70% of its excess over the baseline gone) the cause is the statistics.
- ``ce_overconfidence``: (cross-entropy) the test error stays flat while the test loss spikes, the
  loss concentrates in a few examples (share of the top 1% of per-example losses) and the mean
  logit norm rises.
- ``logging_artefact``: the epoch-averaged train loss in the log hides a train-loss spike that
  re-evaluating the train loss at the checkpoint shows (the spike is then not test-only).
- ``period2_oscillation``: the steps between consecutive checkpoints, projected on the top
  Hessian eigenvector at the event, alternate in sign (GD's period-2 orbit at the edge of
  stability, Cohen et al. 2021).
- ``last_layer_norm``: the last layer's weight norm grows into the spike — the "slingshot"
  signature of adaptive optimizers (Thilak et al. 2022).

Every verdict reports the numbers behind it; thresholds are stated in each function.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..checkpoint import load_checkpoint
from ..hessian.verdict import top_eigenpair
from ..objective import Objective
from ..session import open_session
from .hypotheses import EventContext, Verdict, _fmt, _theta_of, hypothesis

_BN = nn.modules.batchnorm._BatchNorm
SPIKE_GONE = 0.7      # share of the spike's excess test loss that recomputed statistics must remove
FLAT_ERROR = 0.02     # |Δ test error| counted as flat
TOP_SHARE = 0.2       # share of the test loss in the top 1% of examples counted as concentrated
HIDDEN_RISE = 1.5     # re-evaluated / logged train loss counted as a hidden spike
NORM_GROWTH = 0.05    # relative last-layer norm growth counted as growth


# ----------------------------------------------------------------------------- measurements
@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, objective: Objective,
                            theta: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """BatchNorm running statistics recomputed over ``objective``'s batches: a private copy of
    ``model`` (never the caller's) at ``theta`` in train mode, statistics reset, cumulative average
    (``momentum=None``), no gradients. Returns ``{buffer name: tensor}`` for
    :meth:`Objective.with_buffers`."""
    clone = copy.deepcopy(model).to(device=objective.device, dtype=objective.dtype)
    named = dict(clone.named_parameters())
    for name, value in objective.params(theta).items():
        named[name].copy_(value)
    clone.train()
    bns = {n: m for n, m in clone.named_modules() if isinstance(m, _BN)}
    for m in bns.values():
        m.reset_running_stats()
        m.momentum = None
    for xb, _ in objective.batches():
        clone(xb)
    out: Dict[str, torch.Tensor] = {}
    for n, m in bns.items():
        prefix = f"{n}." if n else ""
        if m.running_mean is not None:
            out[prefix + "running_mean"] = m.running_mean.detach().clone()
            out[prefix + "running_var"] = m.running_var.detach().clone()
    return out


@torch.no_grad()
def per_example(objective: Objective, theta: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """Per-example losses and logit norms over the objective's batches (this rank's share)."""
    params = objective.params(theta)
    losses, norms = [], []
    fn = objective._sum_loss
    for xb, yb in objective.batches():
        out = objective.forward(params, xb)
        losses.append(torch.stack([fn(out[i:i + 1], yb[i:i + 1]) for i in range(len(yb))]))
        norms.append(out.norm(dim=-1))
    return {"loss": torch.cat(losses).double(), "logit_norm": torch.cat(norms).double()}


def top_share(losses: torch.Tensor, fraction: float = 0.01) -> float:
    """Share of the total loss carried by the top ``fraction`` of examples (at least one)."""
    k = max(1, int(math.ceil(fraction * losses.numel())))
    total = float(losses.sum())
    return float(losses.topk(k).values.sum()) / total if total > 0 else float("nan")


def alternating(projections: Sequence[float], norms: Sequence[float], *, min_cos: float = 0.1) -> bool:
    """Consecutive projections alternate in sign, each a non-negligible part of its step."""
    if len(projections) < 2:
        return False
    big = all(abs(p) >= min_cos * n for p, n in zip(projections, norms))
    flips = all(a * b < 0 for a, b in zip(projections, projections[1:]))
    return big and flips


def last_layer_weight(state: Dict[str, torch.Tensor]) -> Optional[str]:
    """Name of the last weight matrix (≥ 2-D) of a state dict (the classifier in these models)."""
    names = [n for n, t in state.items() if n.endswith("weight") and t.dim() >= 2 and t.is_floating_point()]
    return names[-1] if names else None


# ----------------------------------------------------------------------------- helpers
def _baseline(ctx: EventContext) -> Optional[float]:
    before = ctx.probes.get("before")
    if before is not None:
        return before.test_loss
    prev = [r["test_loss"] for r in ctx.log if isinstance(r.get("epoch"), float) and r["epoch"] < ctx.epoch
            and isinstance(r.get("test_loss"), float) and math.isfinite(r["test_loss"])]
    return float(sorted(prev)[len(prev) // 2]) if prev else None


def _event_path(ctx: EventContext) -> Optional[Path]:
    at = ctx.probes.get("at")
    if at is not None:
        return Path(at.path)
    return ctx.checkpoints.get(int(ctx.epoch)) if int(ctx.epoch) == ctx.epoch else None


# ----------------------------------------------------------------------------- hypotheses
def bn_statistics_verdict(*, epoch: float, spike_loss: float, baseline: Optional[float],
                          recomputed_loss: float) -> Verdict:
    """Supported when recomputing BN statistics removes ≥ ``SPIKE_GONE`` of the spike's excess."""
    name = "bn_statistics"
    nums = {"test_loss": spike_loss, "test_loss_recomputed_bn": recomputed_loss, "baseline": baseline}
    if baseline is None or not spike_loss > baseline:
        return Verdict(name, epoch, "inconclusive",
                       f"no baseline below the event's test loss {spike_loss:.4g} (with BatchNorm statistics "
                       f"recomputed on the training batches: {recomputed_loss:.4g})", nums)
    removed = (spike_loss - recomputed_loss) / (spike_loss - baseline)
    nums["share_removed"] = removed
    status = "supported" if removed >= SPIKE_GONE else ("inconclusive" if removed >= 0.3 else "not supported")
    return Verdict(name, epoch, status,
                   f"test loss {spike_loss:.4g} → {recomputed_loss:.4g} with BatchNorm statistics recomputed on "
                   f"the training batches (baseline {baseline:.4g}; {removed:.0%} of the spike removed)", nums)


@hypothesis("bn_statistics")
def _bn_statistics(ctx: EventContext) -> Verdict:
    path = _event_path(ctx)
    if path is None:
        return Verdict("bn_statistics", ctx.epoch, "not measured", "no checkpoint at the event", {})
    kwargs = {**ctx.session_kwargs, "bn_mode": "eval"}
    s = open_session(str(path), **kwargs)
    if not any(isinstance(m, _BN) for m in s.model.modules()):
        return Verdict("bn_statistics", ctx.epoch, "not supported", "the model has no BatchNorm", {})
    if s.test is None:
        return Verdict("bn_statistics", ctx.epoch, "not measured", "no test data", {})
    fresh = recompute_bn_statistics(s.model, s.train)
    spike = s.test.evaluate().loss
    recomputed = s.test.with_buffers(fresh).evaluate().loss
    return bn_statistics_verdict(epoch=ctx.epoch, spike_loss=spike, baseline=_baseline(ctx),
                                 recomputed_loss=recomputed)


def overconfidence_verdict(*, epoch: float, loss_name: str, before: Dict[str, float],
                           at: Dict[str, float]) -> Verdict:
    """``before``/``at``: test_loss, test_error, top1_share, logit_norm. Supported when the error is
    flat (|Δ| ≤ ``FLAT_ERROR``), the loss rose, and the loss is concentrated (top-1% share ≥
    ``TOP_SHARE`` and higher than before) with a rising logit norm."""
    name = "ce_overconfidence"
    nums = {"before": before, "at": at, "loss": loss_name}
    if loss_name != "ce":
        return Verdict(name, epoch, "not supported", f"loss is {loss_name}, not cross-entropy", nums)
    flat = abs(at["test_error"] - before["test_error"]) <= FLAT_ERROR
    rose = at["test_loss"] > before["test_loss"]
    conc = at["top1_share"] >= TOP_SHARE and at["top1_share"] > before["top1_share"]
    norm_up = at["logit_norm"] > before["logit_norm"]
    nums.update(error_flat=flat, loss_rose=rose, concentrated=conc, logit_norm_rising=norm_up)
    if flat and rose and conc and norm_up:
        status = "supported"
    elif flat and rose and (conc or norm_up):
        status = "inconclusive"
    else:
        status = "not supported"
    return Verdict(name, epoch, status,
                   f"test error {before['test_error']:.3g} → {at['test_error']:.3g}, loss {before['test_loss']:.4g} → "
                   f"{at['test_loss']:.4g}; top-1% of examples carry {before['top1_share']:.1%} → "
                   f"{at['top1_share']:.1%} of the loss; mean logit norm {before['logit_norm']:.3g} → "
                   f"{at['logit_norm']:.3g}", nums)


def _confidence_numbers(path: Path, kwargs: dict) -> Dict[str, float]:
    s = open_session(str(path), **kwargs)
    ev = s.test.evaluate()
    pe = per_example(s.test)
    return {"test_loss": ev.loss, "test_error": 1.0 - ev.acc, "top1_share": top_share(pe["loss"]),
            "logit_norm": float(pe["logit_norm"].mean())}


@hypothesis("ce_overconfidence")
def _ce_overconfidence(ctx: EventContext) -> Verdict:
    at, before = ctx.probes.get("at"), ctx.probes.get("before")
    if at is None or before is None:
        return Verdict("ce_overconfidence", ctx.epoch, "not measured", "needs checkpoints before and at the event", {})
    s_kwargs = dict(ctx.session_kwargs)
    loss_name = open_session(at.path, **s_kwargs, need_data=False).loss
    if loss_name != "ce":
        return overconfidence_verdict(epoch=ctx.epoch, loss_name=loss_name, before={}, at={})
    return overconfidence_verdict(epoch=ctx.epoch, loss_name=loss_name,
                                  before=_confidence_numbers(Path(before.path), s_kwargs),
                                  at=_confidence_numbers(Path(at.path), s_kwargs))


def logging_verdict(*, epoch: float, logged_train: Optional[float], evaluated_train: float,
                    evaluated_before: Optional[float]) -> Verdict:
    """Supported when the train loss re-evaluated at the checkpoint is ≥ ``HIDDEN_RISE`` × the
    logged epoch average and ≥ ``HIDDEN_RISE`` × the re-evaluated loss one checkpoint before."""
    name = "logging_artefact"
    nums = {"logged_train_loss": logged_train, "evaluated_train_loss": evaluated_train,
            "evaluated_train_loss_before": evaluated_before}
    if logged_train is None or not math.isfinite(logged_train) or evaluated_before is None:
        return Verdict(name, epoch, "not measured", "no logged train loss or no checkpoint before the event", nums)
    vs_log = evaluated_train / logged_train if logged_train > 0 else float("inf")
    vs_before = evaluated_train / evaluated_before if evaluated_before > 0 else float("inf")
    nums.update(ratio_to_logged=vs_log, ratio_to_before=vs_before)
    hidden = vs_log >= HIDDEN_RISE and vs_before >= HIDDEN_RISE
    status = "supported" if hidden else ("inconclusive" if vs_before >= HIDDEN_RISE else "not supported")
    return Verdict(name, epoch, status,
                   f"train loss logged (epoch average) {logged_train:.4g}, re-evaluated at the checkpoint "
                   f"{evaluated_train:.4g} (×{vs_log:.3g}; ×{vs_before:.3g} the checkpoint before)", nums)


@hypothesis("logging_artefact")
def _logging(ctx: EventContext) -> Verdict:
    at, before = ctx.probes.get("at"), ctx.probes.get("before")
    if at is None:
        return Verdict("logging_artefact", ctx.epoch, "not measured", "no checkpoint at the event", {})
    row = next((r for r in ctx.log if r.get("epoch") == float(at.epoch)), {})
    logged = row.get("train_loss") if isinstance(row.get("train_loss"), float) else None
    return logging_verdict(epoch=ctx.epoch, logged_train=logged, evaluated_train=at.train_loss,
                           evaluated_before=before.train_loss if before is not None else None)


def oscillation_verdict(*, epoch: float, projections: Sequence[float], norms: Sequence[float]) -> Verdict:
    """Supported when ≥ 2 consecutive steps alternate in sign along v₁ (each |cos| ≥ 0.1)."""
    name = "period2_oscillation"
    nums = {"projections_on_v1": list(projections), "step_norms": list(norms)}
    if len(projections) < 2:
        return Verdict(name, epoch, "not measured", "needs at least three consecutive checkpoints", nums)
    status = "supported" if alternating(projections, norms) else "not supported"
    signs = "".join("+" if p > 0 else "−" for p in projections)
    return Verdict(name, epoch, status,
                   f"signs of the steps between checkpoints along v₁: {signs} (cosines "
                   + ", ".join(_fmt(p / n if n else float('nan')) for p, n in zip(projections, norms)) + ")", nums)


@hypothesis("period2_oscillation")
def _period2(ctx: EventContext) -> Verdict:
    path = _event_path(ctx)
    epochs = sorted(ctx.checkpoints)
    if path is None or int(ctx.epoch) not in epochs:
        return oscillation_verdict(epoch=ctx.epoch, projections=[], norms=[])
    i = epochs.index(int(ctx.epoch))
    window = epochs[max(0, i - 2):i + 3]
    s = open_session(str(path), **ctx.session_kwargs)
    v1 = top_eigenpair(s.train, s.train.theta0, tol=1e-3, seed=0).vector.to(s.train.theta0)
    thetas = [_theta_of(ctx.checkpoints[e], s, ctx.session_kwargs.get("trust", False)) for e in window]
    steps = [b - a for a, b in zip(thetas, thetas[1:])]
    return oscillation_verdict(epoch=ctx.epoch, projections=[float(d @ v1) for d in steps],
                               norms=[float(d.norm()) for d in steps])


def slingshot_verdict(*, epoch: float, norms: Dict[str, float], adaptive: bool) -> Verdict:
    """``norms``: last-layer weight norm by role (before/at/after). Supported when it grows by ≥
    ``NORM_GROWTH`` into the event under an adaptive optimizer; growth under SGD is inconclusive."""
    name = "last_layer_norm"
    nums = {"norms": norms, "adaptive_optimizer": adaptive}
    if "before" not in norms or "at" not in norms:
        return Verdict(name, epoch, "not measured", "needs checkpoints before and at the event", nums)
    growth = norms["at"] / norms["before"] - 1.0 if norms["before"] > 0 else float("inf")
    nums["growth"] = growth
    grows = growth >= NORM_GROWTH
    status = ("supported" if adaptive else "inconclusive") if grows else "not supported"
    return Verdict(name, epoch, status,
                   "last-layer weight norm " + " → ".join(f"{r} {norms[r]:.4g}" for r in ("before", "at", "after")
                                                          if r in norms)
                   + f" ({growth:+.1%} into the event; slingshot needs growth under an adaptive optimizer)", nums)


@hypothesis("last_layer_norm")
def _slingshot(ctx: EventContext) -> Verdict:
    norms: Dict[str, float] = {}
    adaptive = False
    for role, probe in ctx.probes.items():
        ck = load_checkpoint(probe.path, trust=ctx.session_kwargs.get("trust", False))
        name = last_layer_weight(ck.state_dict)
        if name is not None:
            norms[role] = float(ck.state_dict[name].double().norm())
        adaptive = adaptive or (probe.optimizer or "sgd") != "sgd"
    return slingshot_verdict(epoch=ctx.epoch, norms=norms, adaptive=adaptive)


__all__: List[str] = ["recompute_bn_statistics", "per_example", "top_share", "alternating", "last_layer_weight",
                      "bn_statistics_verdict", "overconfidence_verdict", "logging_verdict", "oscillation_verdict",
                      "slingshot_verdict"]
