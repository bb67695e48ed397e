"""Probe: test-loss spikes and oscillation, and what the landscape looks like around them.

Detection (causal, so the same rule runs inside training, :class:`SpikeSaver`): the test loss at
epoch i is compared with the median of the previous ``window`` values; the robust deviation is
1.4826·MAD of that window (floored at 1% of the median, so a perfectly flat curve does not make
every wiggle infinite). A spike is a rise of more than ``threshold`` robust deviations *and* more
than ``min_rise`` (relative) above the median; a non-finite loss after finite ones is a spike.
Oscillation: runs of consecutive sign flips of the epoch-to-epoch change, each change at least
``min_amplitude`` of the local level, with at least ``min_flips`` flips.

At the checkpoints before, at and after each event it measures, through the Objective and the
Hessian engine: λ_max and the stability ratio for the run's optimizer (SGD: 2/η, heavy ball
(2+2β)/η, Adam: λ₁(P⁻¹H) against (2+2β₁)/((1−β₁)η) with P from the checkpoint's ``exp_avg_sq``;
Cohen et al. 2021, "Gradient Descent on Neural Networks Typically Occurs at the Edge of
Stability"; Cohen et al. 2022 for adaptive methods; Lewkowycz et al. 2020, catapult), the alignment
|gᵀv₁|/‖g‖ of the gradient with the top eigenvector, the directional curvature gᵀHg/gᵀg (GD's
loss rises in one step iff it exceeds 2/η), and train and test 1-D slices along the top eigenvector
and along the step between consecutive checkpoints, with the offset between the train-loss and the
test-loss minima along those lines. Each hypothesis in :data:`HYPOTHESES` turns those numbers into a
:class:`Verdict`; more hypotheses register with :func:`hypothesis`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import LandscapeError, OptionError
from ..hessian.analyze import top_eigen as _top_eigen
from ..hessian.batch_sharpness import train_batch_size
from ..hessian.lanczos import Budget
from ..hessian.verdict import TopEigen, curvature_verdict
from ..monitor import SpikeKeeper, cpu_clone
from ..progress import progress
from ..results import result
from ..runs import Run, open_run, position_from_name, read_run_log
from ..session import Session, open_session
from ..train import TrainState, checkpoint_payload
from .detection import (  # noqa: F401 (re-exported: the detector is part of this probe's API)
    MAD_SCALE,
    DetectorConfig,
    Oscillation,
    Spike,
    detect_oscillation,
    detect_spikes,
    is_spike,
    spike_score,
)
from .hypotheses import HYPOTHESES, EventContext, Verdict, _fmt, _theta_of, hypothesis


# ============================================================ training hook
class SpikeSaver:
    """Epoch hook for :func:`landscape.train.train` taking a :class:`TrainState`: the checkpoints
    around spikes of :class:`landscape.monitor.SpikeKeeper` (the one implementation, also used by
    :class:`landscape.monitor.Monitor` and ``landscape train --save-around-spikes``).
    """

    def __init__(self, out_dir: str | Path, *, keep: int = 2, after: int = 1,
                 cfg: DetectorConfig = DetectorConfig()) -> None:
        self.keeper = SpikeKeeper(out_dir, keep=keep, after=after, cfg=cfg)
        self.spikes, self.saved = self.keeper.spikes, self.keeper.saved

    def __call__(self, state: TrainState) -> None:
        if state.model_spec is None:
            raise LandscapeError("SpikeSaver needs TrainState.model_spec (set by landscape.train.train)")
        payload = cpu_clone(checkpoint_payload(state, state.model_spec))
        self.keeper.observe(state.epoch, payload, [float(r["test_loss"]) for r in state.history])


# ======================================================= checkpoint probing
def find_checkpoints(run_dir: str | Path) -> Dict[int, Path]:
    """``{epoch: path}`` for the checkpoint files of a run folder, in epoch order (the epoch
    parsed from the name, or read from the file; see :func:`landscape.runs.open_run`)."""
    return open_run(run_dir).by_epoch


def _line_minimum(alphas: Sequence[float], losses: Sequence[float]) -> float:
    """α of the smallest loss on the grid, refined by a parabola through its neighbours."""
    finite = [(a, v) for a, v in zip(alphas, losses) if math.isfinite(v)]
    if not finite:
        return float("nan")
    i = min(range(len(losses)), key=lambda k: losses[k] if math.isfinite(losses[k]) else math.inf)
    if 0 < i < len(losses) - 1 and all(math.isfinite(losses[k]) for k in (i - 1, i, i + 1)):
        a0, a1, a2 = alphas[i - 1], alphas[i], alphas[i + 1]
        f0, f1, f2 = losses[i - 1], losses[i], losses[i + 1]
        den = (a0 - a1) * (a0 - a2) * (a1 - a2)
        A = (a2 * (f1 - f0) + a1 * (f0 - f2) + a0 * (f2 - f1)) / den if den else 0.0
        B = (a2 * a2 * (f0 - f1) + a1 * a1 * (f2 - f0) + a0 * a0 * (f1 - f2)) / den if den else 0.0
        if A > 0:
            return float(min(max(-B / (2 * A), a0), a2))
    return float(alphas[i])


def line_slice(session: Session, origin: torch.Tensor, direction: torch.Tensor,
               alphas: Sequence[float]) -> dict:
    """Train and test loss at ``origin + α·direction``, their minima and the offset between them.

    ``test_excess_at_train_min``: test loss at the grid point nearest the train minimum minus the
    smallest test loss on the line (how much worse the test loss is where the train loss is best).
    """
    train = [session.train.loss(origin + a * direction) for a in alphas]
    test = [session.test.loss(origin + a * direction) for a in alphas]
    a_tr, a_te = _line_minimum(alphas, train), _line_minimum(alphas, test)
    near = min(range(len(alphas)), key=lambda k: abs(alphas[k] - a_tr)) if math.isfinite(a_tr) else None
    finite_test = [v for v in test if math.isfinite(v)]
    excess = (test[near] - min(finite_test)) if near is not None and finite_test else float("nan")
    return {"alpha": list(alphas), "train_loss": train, "test_loss": test, "train_min_alpha": a_tr,
            "test_min_alpha": a_te, "offset": a_te - a_tr, "test_excess_at_train_min": excess,
            "direction_norm": float(direction.norm())}


@dataclass(frozen=True)
class CheckpointProbe:
    """Measurements at one checkpoint near an event (``role``: before / at / after)."""

    epoch: int
    role: str
    event_epoch: float
    path: str
    optimizer: Optional[str]
    lr: Optional[float]
    lr_source: str
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    lambda_max: Optional[float]
    lambda_max_info: Optional[dict]
    threshold: Optional[float]
    ratio: Optional[float]
    eta_lambda_max: Optional[float]
    preconditioned_sharpness: Optional[float]
    preconditioned_threshold: Optional[float]
    preconditioned_ratio: Optional[float]
    stability: Optional[dict]
    grad_norm: float
    grad_alignment: Optional[float]
    directional_curvature: float
    eta_directional_curvature: Optional[float]
    step: Optional[dict]
    eigen_slice: Optional[dict]

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@hypothesis("stability_threshold")
def _stability(ctx: EventContext) -> Verdict:
    """Edge of stability / catapult: the run's sharpness (H for SGD, P⁻¹H for Adam) reaches its
    stability threshold at the checkpoint before or at the event."""
    name = "stability_threshold"
    rows = {r: p for r, p in ctx.probes.items() if r in ("before", "at", "after")}
    adaptive = any((p.stability or {}).get("on") == "P^-1 H" for p in rows.values())
    ratios = {r: (p.preconditioned_ratio if adaptive else p.ratio) for r, p in rows.items()}
    rule = next(((p.stability or {}).get("rule") for p in rows.values() if (p.stability or {}).get("rule")), "")
    which = f"λ₁(P⁻¹H)/({rule})" if adaptive else f"λ_max/({rule or 'threshold'})"
    pre = [ratios.get(r) for r in ("before", "at") if ratios.get(r) is not None]
    if not pre:
        return Verdict(name, ctx.epoch, "not measured", "no sharpness at the checkpoints before/at the event "
                       "(no learning rate or optimizer state known)", {"ratio": ratios})
    peak = max(pre)
    status = "supported" if peak >= 1.0 else ("inconclusive" if peak >= 0.5 else "not supported")
    text = ", ".join(f"{r} {_fmt(v)}" for r, v in ratios.items())
    return Verdict(name, ctx.epoch, status, f"{which}: {text} (≥ 1 means past the stability threshold)",
                   {"ratio": ratios, "peak_before_or_at": peak})


@hypothesis("directional_curvature")
def _directional(ctx: EventContext) -> Verdict:
    """GD's loss rises in one step along −g iff η·gᵀHg/gᵀg > 2 (REFERENCES.md)."""
    name = "directional_curvature"
    vals = {r: p.eta_directional_curvature for r, p in ctx.probes.items()}
    pre = [vals.get(r) for r in ("before", "at") if vals.get(r) is not None]
    if not pre:
        return Verdict(name, ctx.epoch, "not measured", "no learning rate known", {"eta_gHg_over_gg": vals})
    peak = max(pre)
    status = "supported" if peak > 2.0 else ("inconclusive" if peak > 1.0 else "not supported")
    align = {r: p.grad_alignment for r, p in ctx.probes.items()}
    text = ", ".join(f"{r} {_fmt(v)}" for r, v in vals.items())
    return Verdict(name, ctx.epoch, status,
                   f"η·gᵀHg/gᵀg: {text} (> 2: a full-batch gradient step raises the loss); gradient alignment "
                   f"with v₁: " + ", ".join(f"{r} {_fmt(v)}" for r, v in align.items()),
                   {"eta_gHg_over_gg": vals, "grad_alignment": align})


@hypothesis("train_test_shift")
def _shift(ctx: EventContext) -> Verdict:
    """Train and test landscapes shifted against each other: along the step into the event the
    train loss barely changes (or falls) while the test loss rises, and the two minima along that
    line (or along v₁) sit apart."""
    name = "train_test_shift"
    at = ctx.probes.get("at")
    if at is None or at.step is None:
        return Verdict(name, ctx.epoch, "not measured", "no checkpoint at the event with one before it", {})
    s = at.step
    alphas = s["alpha"]
    i0 = min(range(len(alphas)), key=lambda k: abs(alphas[k]))
    i1 = min(range(len(alphas)), key=lambda k: abs(alphas[k] - 1))
    tr0, tr1, te0, te1 = s["train_loss"][i0], s["train_loss"][i1], s["test_loss"][i0], s["test_loss"][i1]
    d_tr = (tr1 - tr0) / max(abs(tr0), 1e-12)
    d_te = (te1 - te0) / max(abs(te0), 1e-12)
    eig = at.eigen_slice or {}
    numbers = {"train_change": d_tr, "test_change": d_te, "step_offset": s["offset"],
               "step_test_excess_at_train_min": s["test_excess_at_train_min"],
               "eigen_offset": eig.get("offset"), "eigen_test_excess_at_train_min": eig.get("test_excess_at_train_min")}
    rises = d_te > 0.1 and d_te > 2 * max(d_tr, 0.0)
    apart = abs(s["offset"]) >= 0.25 if math.isfinite(s["offset"]) else False
    status = "supported" if rises and apart else ("inconclusive" if rises or apart else "not supported")
    return Verdict(name, ctx.epoch, status,
                   f"along the step into the event train loss {d_tr:+.1%}, test loss {d_te:+.1%}; "
                   f"minima along the step: train α={_fmt(s['train_min_alpha'])}, test α={_fmt(s['test_min_alpha'])} "
                   f"(offset {_fmt(s['offset'])} steps); along v₁ offset {_fmt(eig.get('offset'))}",
                   numbers)


@dataclass(frozen=True)
class SpikeProbeConfig:
    detector: DetectorConfig = DetectorConfig()
    lr: Optional[float] = None
    at: Tuple[int, ...] = ()
    max_events: int = 3
    points: int = 21
    tol: float = 1e-3
    seed: int = 0
    hessian: bool = True
    max_hvps: Optional[int] = None       # per checkpoint, for its Lanczos runs together
    time_budget: Optional[float] = None  # per checkpoint, seconds

    def to_json(self) -> dict:
        return {"detector": self.detector.to_json(), "lr": self.lr, "at": list(self.at),
                "max_events": self.max_events, "points": self.points, "tol": self.tol, "seed": self.seed,
                "hessian": self.hessian, "max_hvps": self.max_hvps, "time_budget": self.time_budget}


@result(kind="spikes")
@dataclass(frozen=True)
class SpikeReport:
    run_dir: str
    log_path: str
    n_epochs: int
    spikes: Tuple[Spike, ...]
    oscillation: Oscillation
    log: dict
    events: Tuple[dict, ...]
    checkpoints: Tuple[CheckpointProbe, ...]
    verdicts: Tuple[Verdict, ...]
    config: SpikeProbeConfig
    notes: Tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["spikes"] = [s.to_json() for s in self.spikes]
        return out

    def summary(self) -> str:
        lines = [f"spikes: {len(self.spikes)} test-loss spike(s) in {self.n_epochs} logged epochs"
                 + (f" at epoch(s) {', '.join(_fmt(s.epoch) for s in self.spikes)}" if self.spikes else "")]
        for s in self.spikes:
            lines.append(f"  epoch {_fmt(s.epoch)}: test loss {s.test_loss:.4g} vs median {s.baseline:.4g} "
                         f"({_fmt(s.score)} robust deviations)")
        segs = self.oscillation.segments
        lines.append(f"oscillation: {len(segs)} segment(s)" + "".join(
            f"; epochs {_fmt(g['start_epoch'])}–{_fmt(g['end_epoch'])} ({g['flips']} flips, "
            f"±{g['relative_amplitude']:.0%})" for g in segs))
        for c in self.checkpoints:
            pre = (f", λ₁(P⁻¹H) {_fmt(c.preconditioned_sharpness)} ratio {_fmt(c.preconditioned_ratio)}"
                   if c.preconditioned_sharpness is not None else "")
            lines.append(f"  epoch {c.epoch} ({c.role} {_fmt(c.event_epoch)}): train {c.train_loss:.4g}, test "
                         f"{c.test_loss:.4g}, λ_max {_fmt(c.lambda_max)} ratio {_fmt(c.ratio)}{pre}, "
                         f"align {_fmt(c.grad_alignment)}, gᵀHg/gᵀg {_fmt(c.directional_curvature)}")
        for v in self.verdicts:
            lines.append(f"[{v.status}] {v.hypothesis} @ epoch {_fmt(v.event_epoch)}: {v.summary}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _lr_for(epoch: int, session: Session, log: Sequence[dict], override: Optional[float]) -> Tuple[Optional[float], str]:
    if override is not None:
        return override, "--lr"
    if session.optimizer is not None and session.optimizer.lr is not None:
        return session.optimizer.lr, "checkpoint"
    for row in log:
        if row.get("epoch") == epoch and isinstance(row.get("lr"), float) and math.isfinite(row["lr"]):
            return row["lr"], "log"
    return None, "unknown"


def probe_checkpoint(path: Path, epoch: int, role: str, event_epoch: float, *, prev: Optional[Path],
                     log: Sequence[dict], cfg: SpikeProbeConfig, session_kwargs: dict,
                     warm: Optional[Dict[str, torch.Tensor]] = None) -> CheckpointProbe:
    """Every measurement of :class:`CheckpointProbe` at one checkpoint.

    ``warm``: eigenvectors of the previously probed checkpoint (Lanczos starts from them, which
    saves products between neighbouring checkpoints); updated in place with this one's.
    ``cfg.max_hvps``/``cfg.time_budget``: one budget for this checkpoint's Lanczos runs together."""
    s = open_session(str(path), **session_kwargs)
    if s.train is None or s.test is None:
        raise OptionError("the spike probe needs train and test data ({data})")
    obj, theta = s.train, s.train.theta0
    ev_tr, ev_te = obj.evaluate(), s.test.evaluate()
    lr, lr_source = _lr_for(epoch, s, log, cfg.lr)
    opt_type = s.optimizer.type if s.optimizer is not None else None
    g = obj.grad(theta)
    gg = float(g @ g)
    dirc = float(g @ obj.hvp(g, theta)) / gg if gg > 0 else float("nan")
    warm = warm if warm is not None else {}
    budget = Budget(max_hvps=cfg.max_hvps, seconds=cfg.time_budget)
    top = (_top_eigen(obj, k=1, tol=cfg.tol, seed=cfg.seed, theta=theta, v0=warm.get("top"), converge="vectors",
                      budget=budget) if cfg.hessian else None)   # the vector is used (alignment): converge on its residual
    if top is not None:
        warm["top"] = top.eigenvectors[:1].detach()
    lam = TopEigen.of(top) if top is not None else None
    thr = ratio = pre_val = pre_thr = pre_ratio = st_json = None
    if lam is not None and lr is not None:
        ck = s.checkpoint
        verdict = curvature_verdict(obj, s.optimizer, lr=lr, tol=cfg.tol, seed=cfg.seed, theta=theta, top=top,
                                    train_batch_size=train_batch_size(ck.meta if ck else None),
                                    warm=warm.get("verdict"), budget=budget)
        warm["verdict"] = dict(verdict.warm)
        st, pre_val = verdict.stability, verdict.preconditioned_lambda_max
        st_json = verdict.to_json()
        if st.on == "H":
            thr, ratio = st.threshold, st.ratio
        else:
            thr, ratio = 2.0 / lr, lam.value * lr / 2.0  # GD's threshold on H, for reference
            pre_thr, pre_ratio = st.threshold, (st.ratio if pre_val is not None else None)
    align = abs(float(g @ lam.vector.to(g))) / math.sqrt(gg) if lam is not None and gg > 0 else None
    alphas_step = [(-0.5 + 2.0 * k / (cfg.points - 1)) for k in range(cfg.points)]
    alphas_eig = [(-1.0 + 2.0 * k / (cfg.points - 1)) for k in range(cfg.points)]
    step = None
    scale = 0.05 * float(theta.norm())
    if prev is not None:
        theta_prev = _theta_of(prev, s, session_kwargs.get("trust", False))
        d = theta - theta_prev
        if float(d.norm()) > 0:
            step = line_slice(s, theta_prev, d, alphas_step)
            dd = float(d @ d)
            step.update({"from_epoch": _epoch_of(prev), "norm": math.sqrt(dd),
                         "directional_curvature": float(d @ obj.hvp(d, theta)) / dd})
            scale = math.sqrt(dd)
    eig = line_slice(s, theta, scale * lam.vector.to(theta), alphas_eig) if lam is not None else None
    if eig is not None:
        eig["unit"] = "step norm" if step is not None else "0.05·‖θ‖"
    return CheckpointProbe(
        epoch=epoch, role=role, event_epoch=event_epoch, path=str(path), optimizer=opt_type, lr=lr,
        lr_source=lr_source, train_loss=ev_tr.loss, train_acc=ev_tr.acc, test_loss=ev_te.loss,
        test_acc=ev_te.acc, lambda_max=lam.value if lam is not None else None,
        lambda_max_info=lam.to_json() if lam is not None else None, threshold=thr, ratio=ratio,
        eta_lambda_max=lam.value * lr if lam is not None and lr is not None else None,
        preconditioned_sharpness=pre_val, preconditioned_threshold=pre_thr, preconditioned_ratio=pre_ratio,
        stability=st_json,
        grad_norm=math.sqrt(gg), grad_alignment=align, directional_curvature=dirc,
        eta_directional_curvature=dirc * lr if lr is not None else None, step=step, eigen_slice=eig)


def _epoch_of(path: Path) -> Optional[int]:
    return position_from_name(path.name)[0]


def _events(spikes: Sequence[Spike], osc: Oscillation, at: Sequence[int], max_events: int) -> List[dict]:
    events = [{"epoch": float(e), "kind": "requested"} for e in at]
    events += [{"epoch": s.epoch, "kind": "spike", "score": s.score} for s in
               sorted(spikes, key=lambda s: -s.score if math.isfinite(s.score) else -1e300)]
    events += [{"epoch": g["peak_epoch"], "kind": "oscillation"} for g in osc.segments]
    seen, out = set(), []
    for e in events:
        if e["epoch"] not in seen:
            seen.add(e["epoch"])
            out.append(e)
    return out[:max(max_events, len(at))]


def _roles(epoch: float, available: Sequence[int]) -> Dict[str, int]:
    roles: Dict[str, int] = {}
    before = [e for e in available if e < epoch]
    after = [e for e in available if e > epoch]
    if before:
        roles["before"] = before[-1]
    if int(epoch) == epoch and int(epoch) in available:
        roles["at"] = int(epoch)
    if after:
        roles["after"] = after[0]
    return roles


def _near_radius(available: Sequence[int]) -> float:
    """How far (in epochs) a checkpoint may sit from an event and still describe it: twice the
    usual spacing of the run's checkpoints, at least 2 epochs."""
    gaps = sorted(b - a for a, b in zip(available, available[1:]))
    return max(2.0, 2.0 * gaps[len(gaps) // 2]) if gaps else 2.0


def _missing_around(epoch: float, ckpts: Dict[int, Path]) -> List[int]:
    """The checkpoints a probe of the event at ``epoch`` would use: just before, at, just after."""
    e = int(math.floor(epoch))
    return [k for k in (e - 1, e, e + 1) if k >= 0 and k not in ckpts]


def _far_note(ev: dict, available: Sequence[int], radius: float, run: Run) -> str:
    """What is missing for an event far from every kept checkpoint, and how to keep it next time."""
    kept = (f"{available[0]}–{available[-1]}" if len(available) > 3 and available[-1] - available[0] == len(available) - 1
            else ", ".join(str(e) for e in available))
    keep = run.config.values.get("max_checkpoints") if run.config else None
    why = f" (the run keeps only the last {keep}: max_checkpoints: {keep})" if keep else ""
    return (f"{ev['kind']} at epoch {_fmt(ev['epoch'])}: no checkpoint within {radius:g} epochs; the run has "
            f"epochs {kept}{why}; missing: epochs {', '.join(str(e) for e in ev['missing'])}. Detected from the log "
            "only; to probe it next time keep checkpoints around spikes (landscape train --save-around-spikes, "
            "a landscape Monitor in your own loop, or a larger max_checkpoints)")


def probe_spikes(run_dir: str | Path, *, log_path: Optional[str | Path] = None,
                 cfg: SpikeProbeConfig = SpikeProbeConfig(), session_kwargs: Optional[dict] = None) -> SpikeReport:
    """Detect spikes and oscillation in the run's log, probe the checkpoints around them, and
    judge every registered hypothesis at every event (see the module docstring)."""
    root = Path(run_dir)
    run = open_run(root)
    run_log = read_run_log(log_path) if log_path else run.log
    if run_log is None:
        raise OptionError("no log in {root}: expected log.csv, a metrics.csv (epoch,split,loss rows) or a "
                          "CSV with epoch and test_loss columns (or pass {log_path})", root=root)
    log_file = run_log.path
    log = run_log.rows
    if not log:
        raise LandscapeError(f"{log_file} has no rows yet: nothing to detect (it holds only a header or is empty)")
    if "test_loss" not in run_log.columns:
        raise LandscapeError(f"{log_file} has no test loss (columns: {', '.join(run_log.columns)})")
    epochs = [float(r.get("epoch", i)) for i, r in enumerate(log)]
    values = [float(r["test_loss"]) if isinstance(r["test_loss"], float) else float("nan") for r in log]
    spikes = detect_spikes(epochs, values, cfg=cfg.detector)
    osc = detect_oscillation(epochs, values, cfg=cfg.detector)
    ckpts = run.by_epoch
    kwargs = dict(session_kwargs or {})
    kwargs.setdefault("data_cache", run.data_cache)  # every probe and hypothesis shares the run's data
    events = _events(spikes, osc, cfg.at, cfg.max_events)
    notes: List[str] = []
    if not ckpts and events:
        notes.append(f"no checkpoints with an epoch in {root}; only the log was analysed")
    radius = _near_radius(list(ckpts))
    plan: List[Tuple[dict, str, int]] = []
    for ev in events:
        roles = {r: e for r, e in _roles(ev["epoch"], list(ckpts)).items() if abs(e - ev["epoch"]) <= radius}
        ev["checkpoints"] = roles
        if ckpts and not roles:
            ev["missing"] = _missing_around(ev["epoch"], ckpts)
            notes.append(_far_note(ev, list(ckpts), radius, run))
        elif "at" not in roles and ckpts:
            notes.append(f"no checkpoint at epoch {_fmt(ev['epoch'])} (train with --save-around-spikes to keep one)")
        plan.extend((ev, r, e) for r, e in roles.items())
    bar = progress(len(plan), desc="spikes")
    probes: List[CheckpointProbe] = []
    cache: Dict[int, CheckpointProbe] = {}
    warm: Dict[str, Any] = {}          # eigenvectors of the last probed checkpoint (warm starts)
    by_event: Dict[float, Dict[str, CheckpointProbe]] = {}
    for ev, role, epoch in plan:
        prev = max((e for e in ckpts if e < epoch), default=None)
        if epoch not in cache:
            cache[epoch] = probe_checkpoint(ckpts[epoch], epoch, role, ev["epoch"],
                                            prev=ckpts[prev] if prev is not None else None,
                                            log=log, cfg=cfg, session_kwargs=kwargs, warm=warm)
        p = cache[epoch]
        if p.role != role or p.event_epoch != ev["epoch"]:
            p = CheckpointProbe(**{**p.__dict__, "role": role, "event_epoch": ev["epoch"]})
        probes.append(p)
        by_event.setdefault(ev["epoch"], {})[role] = p
        bar.update(1)
    bar.close()
    verdicts: List[Verdict] = []
    for ev in events:
        ctx = EventContext(ev["epoch"], ev["kind"], by_event.get(ev["epoch"], {}), log, root, ckpts, kwargs)
        for fn in HYPOTHESES.values():
            verdicts.append(fn(ctx))
    prov = {"run_dir": str(root), "log": str(log_file), "checkpoints": {str(k): str(v) for k, v in ckpts.items()},
            **{k: v for k, v in kwargs.items() if k not in ("trust", "data_cache")}}
    log_json = {"epoch": epochs, "test_loss": values,
                "train_loss": [r.get("train_loss") if isinstance(r.get("train_loss"), float) else float("nan") for r in log]}
    return SpikeReport(run_dir=str(root), log_path=str(log_file), n_epochs=len(log), spikes=spikes,
                       oscillation=osc, log=log_json, events=tuple(events), checkpoints=tuple(probes),
                       verdicts=tuple(verdicts), config=cfg, notes=tuple(notes), provenance=prov)


# Non-landscape causes (BN statistics, CE overconfidence, logging, period-2, slingshot) register
# themselves as further hypotheses.
from . import spike_causes  # noqa: E402,F401
