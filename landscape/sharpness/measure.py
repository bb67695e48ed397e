"""All sharpness measures for a checkpoint, for several checkpoints side by side, and over a run.

:func:`measure_session` computes, on the session's training Objective (one evaluation subset and
seed for every measure, BatchNorm in the session's mode — eval by default):

- ``lambda_max``, ``trace``: top Hessian eigenvalue (Lanczos) and Hutch++ trace (Hessian engine);
- ``eps_sharpness``, ``worst_case_sharpness``, ``adaptive_sharpness``, ``average_sharpness``,
  ``pac_bayes_sigma``, ``pac_bayes_mag_sigma``: the perturbation measures of this package;
- ``stability``: the checkpoint's own optimizer against its stability threshold (the Hessian
  engine's thresholds; Adam-type optimizers use λ_max of the preconditioned P^{-1/2} H P^{-1/2}).

:func:`compare_checkpoints` puts several checkpoints side by side with their generalisation gaps
(test − train loss and accuracy); :func:`measure_run` follows a run folder epoch by epoch,
warm-starting each Lanczos from the previous checkpoint's top eigenvector.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import Field, LandscapeError, OptionError
from ..objective import Evaluation, Objective
from ..optim.families import is_adaptive
from ..progress import progress
from ..results import result
from ..runs import open_run
from ..session import Session, open_session
from .adaptive import ADAPTIVE_ETA_DEFAULT, ADAPTIVE_RHO_DEFAULT, adaptive_sharpness
from .average import average_sharpness
from .common import perturbation_info, perturbation_mask
from .eps import EPS_DEFAULT, eps_sharpness
from .pac_bayes import pac_bayes_sigma
from .worst_case import RHO_DEFAULT, worst_case_sharpness

MEASURES = ("lambda_max", "trace", "eps_sharpness", "worst_case_sharpness", "adaptive_sharpness",
            "average_sharpness", "pac_bayes_sigma", "pac_bayes_mag_sigma", "stability")
_ALIASES = {"eps": "eps_sharpness", "worst_case": "worst_case_sharpness", "worst": "worst_case_sharpness",
            "adaptive": "adaptive_sharpness", "average": "average_sharpness", "pac_bayes": "pac_bayes_sigma",
            "pac_bayes_mag": "pac_bayes_mag_sigma", "lambda": "lambda_max", "hessian": "lambda_max"}


def parse_measures(text: Optional[str]) -> Tuple[str, ...]:
    """``"lambda_max,eps,worst_case"`` -> canonical names in :data:`MEASURES` order (None: all)."""
    if text is None or text.strip() in ("", "all"):
        return MEASURES
    chosen = set()
    for raw in text.split(","):
        name = raw.strip().replace("-", "_")
        if not name:
            continue
        name = _ALIASES.get(name, name)
        if name not in MEASURES:
            raise LandscapeError(f"unknown measure {raw.strip()!r}; choose from {', '.join(MEASURES)}")
        chosen.add(name)
    return tuple(m for m in MEASURES if m in chosen)


@dataclass(frozen=True)
class SharpnessConfig:
    """Every hyper-parameter of every measure (all written to the JSON)."""

    measures: Tuple[str, ...] = MEASURES
    eps: float = EPS_DEFAULT
    rho: float = RHO_DEFAULT
    adaptive_rho: float = ADAPTIVE_RHO_DEFAULT
    adaptive_eta: float = ADAPTIVE_ETA_DEFAULT
    sigma: Optional[float] = None
    samples: int = 16
    steps: int = 20
    restarts: int = 3
    include_bn: bool = False
    pac_target: float = 0.1
    pac_criterion: str = "loss"
    pac_mag_eps: float = 1e-3
    pac_max_samples: int = 64
    pac_rel_tol: float = 0.05
    eig_tol: float = 1e-4
    trace_matvecs: int = 60
    lr: Optional[float] = None
    seed: int = 0
    train_batch_size: Optional[int] = None
    batches: int = 20
    max_hvps: Optional[int] = None
    time_budget: Optional[float] = None

    def __post_init__(self) -> None:
        if self.pac_criterion not in ("loss", "error"):
            raise OptionError("{pac_criterion} must be 'loss' or 'error'")
        checks = {"eps": self.eps, "rho": self.rho, "adaptive_rho": self.adaptive_rho,
                  "pac_target": self.pac_target}
        for name, value in checks.items():
            if not (value > 0 and math.isfinite(value)):
                raise OptionError("{name} must be a positive number, got {value}", name=Field(name), value=value)
        if self.sigma is not None and not self.sigma > 0:
            raise OptionError("{sigma} must be positive, got {value}", value=self.sigma)
        if self.max_hvps is not None and self.max_hvps < 1:
            raise OptionError("{max_hvps} must be at least 1, got {value}", value=self.max_hvps)
        if self.time_budget is not None and not (self.time_budget > 0 and math.isfinite(self.time_budget)):
            raise OptionError("{time_budget} must be a positive number of seconds, got {value}",
                              value=self.time_budget)
        if self.samples < 2 or self.steps < 1 or self.restarts < 1 or self.trace_matvecs < 3:
            raise OptionError("need {samples} >= 2, {steps} >= 1, {restarts} >= 1, {trace_matvecs} >= 3")

    def to_json(self) -> dict:
        d = asdict(self)
        d["measures"] = list(self.measures)
        return d


@dataclass(frozen=True)
class CheckpointSharpness:
    """Every selected measure at one checkpoint, with its train/test evaluation and gap."""

    checkpoint: Optional[str]
    label: str
    epoch: Optional[int]
    step: Optional[int]
    train: Evaluation
    test: Optional[Evaluation]
    measures: Dict[str, Any]
    optimizer: Optional[dict]
    perturbation: dict
    config: SharpnessConfig
    provenance: dict
    seconds: Dict[str, float]
    warm: Dict[str, torch.Tensor] = field(default_factory=dict, repr=False, compare=False)

    @property
    def gap(self) -> Dict[str, Optional[float]]:
        """Generalisation gap: test − train loss and accuracy (on the evaluation subsets)."""
        if self.test is None:
            return {"loss": None, "acc": None}
        return {"loss": self.test.loss - self.train.loss, "acc": self.test.acc - self.train.acc}

    def value(self, name: str) -> Optional[float]:
        """The scalar of a measure (None when not computed)."""
        m = self.measures.get(name)
        if m is None:
            return None
        if name == "stability":
            return _get(m, "ratio")
        return _get(m, "value")

    def to_json(self) -> dict:
        out: Dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "label": self.label,
            "epoch": self.epoch,
            "step": self.step,
            "train": self.train.to_json(),
            "test": self.test.to_json() if self.test else None,
            "gap": self.gap,
            "optimizer": self.optimizer,
            "perturbation": self.perturbation,
        }
        for name, m in self.measures.items():
            out[name] = m.to_json() if hasattr(m, "to_json") else m
        out.update({"config": self.config.to_json(), "provenance": self.provenance, "seconds": self.seconds})
        return out


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    if hasattr(obj, key):
        return getattr(obj, key)
    return obj.to_json().get(key) if hasattr(obj, "to_json") else None


def measure_session(session: Session, config: SharpnessConfig = SharpnessConfig(), *,
                    label: Optional[str] = None, warm: Optional[Dict[str, torch.Tensor]] = None,
                    bar: Any = None) -> CheckpointSharpness:
    """All measures in ``config.measures`` for one loaded checkpoint (see module docstring).

    ``warm``: eigenvectors from a previous checkpoint (keys ``lambda_max``, ``preconditioned``)
    to start Lanczos from.
    """
    obj = session.train
    if obj is None:
        raise OptionError("sharpness needs the training data; pass {data}")
    warm = dict(warm or {})
    cfg = config
    seconds: Dict[str, float] = {}
    t0 = time.perf_counter()
    train_ev = obj.evaluate()
    test_ev = session.test.evaluate() if session.test is not None else None
    seconds["evaluate"] = time.perf_counter() - t0
    base = train_ev.loss
    mask = perturbation_mask(obj, include_bn=cfg.include_bn)
    common = dict(seed=cfg.seed, include_bn=cfg.include_bn)
    runners = {
        "eps_sharpness": lambda: eps_sharpness(obj, eps=cfg.eps, steps=cfg.steps, restarts=cfg.restarts,
                                               base_loss=base, **common),
        "worst_case_sharpness": lambda: worst_case_sharpness(obj, rho=cfg.rho, steps=cfg.steps,
                                                             restarts=cfg.restarts, base_loss=base, **common),
        "adaptive_sharpness": lambda: adaptive_sharpness(obj, rho=cfg.adaptive_rho, eta=cfg.adaptive_eta,
                                                         steps=cfg.steps, restarts=cfg.restarts,
                                                         base_loss=base, **common),
        "average_sharpness": lambda: average_sharpness(obj, sigma=cfg.sigma, rho=cfg.rho, samples=cfg.samples,
                                                       base_loss=base, **common),
        "pac_bayes_sigma": lambda: pac_bayes_sigma(obj, target=cfg.pac_target, criterion=cfg.pac_criterion,
                                                   samples=cfg.samples, max_samples=max(cfg.samples, cfg.pac_max_samples),
                                                   rel_tol=cfg.pac_rel_tol, **common),
        "pac_bayes_mag_sigma": lambda: pac_bayes_sigma(obj, target=cfg.pac_target, criterion=cfg.pac_criterion,
                                                       magnitude=True, mag_eps=cfg.pac_mag_eps, samples=cfg.samples,
                                                       max_samples=max(cfg.samples, cfg.pac_max_samples),
                                                       rel_tol=cfg.pac_rel_tol, **common),
    }
    measures: Dict[str, Any] = {}
    new_warm: Dict[str, torch.Tensor] = {}
    if any(m in cfg.measures for m in ("lambda_max", "stability")):
        t = time.perf_counter()
        measures.update(_hessian_measures(session, cfg, warm, new_warm))
        seconds["lambda_max"] = time.perf_counter() - t
        _tick(bar)
    if "trace" in cfg.measures:
        t = time.perf_counter()
        measures["trace"] = _trace(session, cfg)
        seconds["trace"] = time.perf_counter() - t
        _tick(bar)
    for name in cfg.measures:
        if name in runners:
            t = time.perf_counter()
            measures[name] = runners[name]()
            seconds[name] = time.perf_counter() - t
            _tick(bar)
    if "lambda_max" not in cfg.measures:
        measures.pop("lambda_max", None)
    if "stability" not in cfg.measures:
        measures.pop("stability", None)
        measures.pop("preconditioned_lambda_max", None)
    ordered = {k: measures[k] for k in (*MEASURES, "preconditioned_lambda_max") if k in measures}
    ck = session.checkpoint
    return CheckpointSharpness(
        checkpoint=ck.path if ck else None,
        label=label or _label(session),
        epoch=ck.epoch if ck else None,
        step=ck.step if ck else None,
        train=train_ev, test=test_ev, measures=ordered,
        optimizer=session.optimizer.to_json() if session.optimizer is not None else None,
        perturbation=perturbation_info(obj, mask, cfg.include_bn),
        config=cfg, provenance=session.provenance(), seconds=seconds, warm=new_warm,
    )


def _tick(bar: Any) -> None:
    if bar is not None:
        bar.update(1)


def _label(session: Session) -> str:
    ck = session.checkpoint
    if ck is None:
        return "model"
    p = Path(ck.path)
    opt = session.optimizer.type if session.optimizer is not None else None
    name = f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem
    return f"{name} ({opt})" if opt else name


# ----------------------------------------------------------------------------- Hessian engine
def _hessian_measures(session: Session, cfg: SharpnessConfig, warm: Dict[str, torch.Tensor],
                      new_warm: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """λ_max of the loss, and the stability verdict of the checkpoint's optimizer.

    λ_max is on the evaluated objective; the verdict (:func:`landscape.hessian.verdict.curvature_verdict`)
    on the training objective, with the curvature the optimizer sees: H + wd·I with coupled L2
    weight decay, and for adaptive optimizers λ₁ of P^{-1/2}(H + wd·I)P^{-1/2}.
    ``cfg.max_hvps``/``cfg.time_budget`` are one budget per checkpoint for these Lanczos runs
    together (:class:`~landscape.hessian.lanczos.Budget`).
    """
    from ..hessian.batch_sharpness import train_batch_size
    from ..hessian.lanczos import Budget, eigsh
    from ..hessian.operator import HessianOperator
    from ..hessian.verdict import curvature_verdict, describe_objective

    obj = session.train
    opt = session.optimizer
    base = HessianOperator(obj)
    budget = Budget(max_hvps=cfg.max_hvps, seconds=cfg.time_budget)
    top = eigsh(base, k=1, which="LA", tol=cfg.eig_tol, seed=cfg.seed, v0=warm.get("lambda_max"), budget=budget)
    new_warm["lambda_max"] = top.eigenvectors[0].detach()
    out: Dict[str, Any] = {"lambda_max": _eig_json(top, cfg, "lambda_max" in warm, obj.space)}
    out["lambda_max"]["objective"] = describe_objective(obj)["description"]
    ck = session.checkpoint
    v = curvature_verdict(obj, opt, lr=cfg.lr, tol=cfg.eig_tol, seed=cfg.seed, top=top, base=base,
                          warm={k: t for k, t in (("H", warm.get("stability_lambda_max")),
                                                  ("P", warm.get("preconditioned"))) if t is not None},
                          train_batch_size=train_batch_size(ck.meta if ck else None, cfg.train_batch_size),
                          budget=budget)
    if "H" in v.warm:
        new_warm["stability_lambda_max"] = v.warm["H"][0]
    if is_adaptive(opt):
        if v.preconditioned is not None:
            if "P" in v.warm:
                new_warm["preconditioned"] = v.warm["P"][0]
            pj = _eig_json(v.preconditioned, cfg, "preconditioned" in warm, obj.space)
            pj["definition"] = "top eigenvalue of P^-1/2 (H + wd I) P^-1/2, P the optimizer's preconditioner"
            pj["objective"] = v.objective["description"]
        else:
            reason = next((n for n in v.stability.notes if n.startswith("no preconditioner")), "no preconditioner")
            pj = {"value": None, "note": reason}
        out["preconditioned_lambda_max"] = pj
    sj = v.to_json()
    if cfg.max_hvps is not None or cfg.time_budget is not None:
        sj["budget"] = budget.to_json()
    _batch_sharpness_verdict(session, cfg, sj, v.training or obj)
    out["stability"] = sj
    return out


def _batch_sharpness_verdict(session: Session, cfg: SharpnessConfig, sj: Dict[str, Any],
                             training: Objective) -> None:
    """For non-adaptive (SGD) runs, add the batch sharpness over mini-batches of the training batch
    size and its verdict (:mod:`landscape.hessian.batch_sharpness`) to the stability JSON; on the
    training objective (BatchNorm batch statistics), like the verdict itself."""
    from ..hessian.batch_sharpness import batch_sharpness, batch_stability, train_batch_size

    ck = session.checkpoint
    bsz = train_batch_size(ck.meta if ck else None, cfg.train_batch_size)
    if is_adaptive(session.optimizer) or bsz is None:
        return
    if bsz >= session.train.n:
        sj["notes"] = list(sj.get("notes", [])) + [
            f"training batch size {bsz} >= {session.train.n} evaluation samples: full-batch, no batch sharpness"]
        return
    res = batch_sharpness(training, batch_size=bsz, batches=cfg.batches, seed=cfg.seed)
    st = batch_stability(session.optimizer, res, lr=cfg.lr)
    sj["batch_sharpness"] = res.to_json()
    sj["batch_stability"] = st.to_json() if st is not None else None


def top_blocks(vector: torch.Tensor, space: Any, k: int = 3) -> List[dict]:
    """The parameters holding most of a unit vector's squared norm (where an eigenvector lives)."""
    sq = vector.detach().double() ** 2
    total = float(sq.sum()) or 1.0
    shares = [(name, float(sq[sl].sum()) / total) for name, sl in space.blocks().items()]
    shares.sort(key=lambda t: -t[1])
    return [{"param": n, "share": round(v, 4)} for n, v in shares[:k]]


def _eig_json(res: Any, cfg: SharpnessConfig, warm_started: bool, space: Any) -> dict:
    return {
        "value": float(res.eigenvalues[0]),
        "residual": float(res.residuals[0]),
        "converged": bool(res.converged),
        "error_bound": float(res.error_bounds[0]),
        "stopped": res.stopped,
        "matvecs": int(res.matvecs),
        "method": "Lanczos (largest algebraic)",
        "tol": cfg.eig_tol,
        "seed": cfg.seed,
        "warm_start": warm_started,
        "eigenvector_top_params": top_blocks(res.eigenvectors[0], space),
    }


def _trace(session: Session, cfg: SharpnessConfig) -> dict:
    from ..hessian.operator import HessianOperator
    from ..hessian.trace import hutchpp

    res = hutchpp(HessianOperator(session.train), matvecs=cfg.trace_matvecs, seed=cfg.seed)
    return {"value": float(res.trace), "stderr": float(res.stderr), "matvecs": int(res.matvecs),
            "method": "Hutch++ (Meyer et al. 2021)", "seed": cfg.seed}


# ------------------------------------------------------------------- several checkpoints
@result(kind="sharpness")
@dataclass(frozen=True)
class SharpnessComparison:
    """Several checkpoints side by side (e.g. the Adam and SGD end points of one study)."""

    results: Tuple[CheckpointSharpness, ...]
    config: SharpnessConfig

    def to_json(self) -> dict:
        return {"kind": "sharpness", "config": self.config.to_json(),
                "checkpoints": [r.to_json() for r in self.results]}

    def table(self) -> str:
        return side_by_side(self.results)


def compare_checkpoints(paths: Sequence[str], config: SharpnessConfig = SharpnessConfig(),
                        **session_kwargs: Any) -> SharpnessComparison:
    """Open each checkpoint (same subset, seed and options) and measure it."""
    steps = len(paths) * _n_steps(config)
    results = []
    with progress(steps, desc="sharpness") as bar:
        for path in paths:
            session = open_session(path, **session_kwargs)
            results.append(measure_session(session, config, bar=bar))
    return SharpnessComparison(tuple(results), config)


def _n_steps(config: SharpnessConfig) -> int:
    hess = 1 if any(m in config.measures for m in ("lambda_max", "stability")) else 0
    return hess + sum(1 for m in config.measures if m not in ("lambda_max", "stability"))


# --------------------------------------------------------------------------- run folders
def run_checkpoints(run_dir: str | Path) -> List[Path]:
    """The run's checkpoints in training order (parsed epoch, else step; never by name)."""
    return list(open_run(run_dir).require_checkpoints())


@result(kind="sharpness_run")
@dataclass(frozen=True)
class SharpnessRun:
    """The measures over a training run, with λ_max against the stability threshold by epoch."""

    run_dir: str
    results: Tuple[CheckpointSharpness, ...]
    config: SharpnessConfig

    def series(self) -> Dict[str, List[Any]]:
        """Columns by checkpoint: epoch, losses, λ_max, the sharpness compared with the
        threshold (preconditioned for Adam), threshold, ratio, and every scalar measure."""
        cols: Dict[str, List[Any]] = {k: [] for k in (
            "epoch", "train_loss", "test_loss", "train_acc", "test_acc", "lambda_max",
            "stability_sharpness", "threshold", "ratio", "stable")}
        scalar = [m for m in self.config.measures if m not in ("lambda_max", "stability")]
        for m in scalar:
            cols[m] = []
        for r in self.results:
            st = r.measures.get("stability")
            cols["epoch"].append(r.epoch)
            cols["train_loss"].append(r.train.loss)
            cols["test_loss"].append(r.test.loss if r.test else None)
            cols["train_acc"].append(r.train.acc)
            cols["test_acc"].append(r.test.acc if r.test else None)
            cols["lambda_max"].append(r.value("lambda_max"))
            cols["stability_sharpness"].append(_get(st, "sharpness") if st is not None else None)
            cols["threshold"].append(_get(st, "threshold") if st is not None else None)
            cols["ratio"].append(_get(st, "ratio") if st is not None else None)
            cols["stable"].append(_get(st, "stable") if st is not None else None)
            b = _batch(r, "batch_sharpness")
            if b is not None:
                cols.setdefault("batch_sharpness", [None] * (len(cols["epoch"]) - 1)).append(b["batch_sharpness"])
            elif "batch_sharpness" in cols:
                cols["batch_sharpness"].append(None)
            for m in scalar:
                cols[m].append(r.value(m))
        return cols

    def to_json(self) -> dict:
        return {"kind": "sharpness_run", "run_dir": self.run_dir, "config": self.config.to_json(),
                "series": self.series(), "checkpoints": [r.to_json() for r in self.results]}

    def table(self) -> str:
        return by_epoch(self)


def measure_run(run_dir: str | Path, config: SharpnessConfig = SharpnessConfig(),
                **session_kwargs: Any) -> SharpnessRun:
    """Every checkpoint of a run folder in order, Lanczos warm-started from the previous one."""
    run = open_run(run_dir)
    paths = run.require_checkpoints()
    results: List[CheckpointSharpness] = []
    warm: Dict[str, torch.Tensor] = {}
    with progress(len(paths) * _n_steps(config), desc=f"sharpness {Path(run_dir).name}") as bar:
        for path in paths:
            session = run.session_at(path, **session_kwargs)
            res = measure_session(session, config, warm=warm, bar=bar,
                                  label=f"epoch {session.checkpoint.epoch}" if session.checkpoint else None)
            warm = res.warm
            results.append(replace(res, warm={}))
    return SharpnessRun(str(run_dir), tuple(results), config)


# -------------------------------------------------------------------------------- tables
_ROWS = (
    ("train loss", lambda r: r.train.loss),
    ("test loss", lambda r: r.test.loss if r.test else None),
    ("gap loss (test-train)", lambda r: r.gap["loss"]),
    ("train acc", lambda r: r.train.acc),
    ("test acc", lambda r: r.test.acc if r.test else None),
    ("gap acc (test-train)", lambda r: r.gap["acc"]),
)


def _measure_rows(results: Sequence[CheckpointSharpness]) -> List[Tuple[str, Any]]:
    cfg = results[0].config
    rows: List[Tuple[str, Any]] = []
    m = set().union(*(r.measures for r in results))
    if "lambda_max" in m:
        rows.append(("lambda_max", lambda r: r.value("lambda_max")))
    if "trace" in m:
        rows.append(("trace (Hutch++)", lambda r: _pm(r.measures.get("trace"))))
    if "eps_sharpness" in m:
        rows.append((f"eps-sharpness % (eps={cfg.eps:g})", lambda r: r.value("eps_sharpness")))
    if "worst_case_sharpness" in m:
        rows.append((f"worst-case (rho={cfg.rho:g})", lambda r: r.value("worst_case_sharpness")))
    if "adaptive_sharpness" in m:
        rows.append((f"adaptive (rho={cfg.adaptive_rho:g})", lambda r: r.value("adaptive_sharpness")))
    if "average_sharpness" in m:
        rows.append(("average (sigma=" + ("rho/sqrt(d)" if cfg.sigma is None else f"{cfg.sigma:g}") + ")",
                     lambda r: _pm(r.measures.get("average_sharpness"))))
    if "pac_bayes_sigma" in m:
        rows.append((f"PAC-Bayes sigma ({cfg.pac_criterion} +{cfg.pac_target:g})", lambda r: r.value("pac_bayes_sigma")))
    if "pac_bayes_mag_sigma" in m:
        rows.append(("PAC-Bayes mag. sigma", lambda r: r.value("pac_bayes_mag_sigma")))
    if "stability" in m:
        rows.append(("stability: optimizer", lambda r: _stab(r, "optimizer")))
        rows.append(("stability: sharpness", lambda r: _stab(r, "sharpness")))
        rows.append(("stability: threshold", lambda r: _stab(r, "threshold")))
        rows.append(("stability: ratio", lambda r: _stab(r, "ratio")))
        rows.append(("stability: stable", lambda r: _stab(r, "stable")))
        if any(_batch(r, "batch_sharpness") is not None for r in results):
            rows.append(("batch sharpness (SGD)", lambda r: _pm(_batch_pm(r))))
            rows.append(("batch sharpness: ratio", lambda r: (_batch(r, "batch_stability") or {}).get("ratio")))
    return rows


def _batch(r: CheckpointSharpness, key: str) -> Any:
    st = r.measures.get("stability")
    return st.get(key) if isinstance(st, dict) else None


def _batch_pm(r: CheckpointSharpness) -> Any:
    b = _batch(r, "batch_sharpness")
    return None if b is None else {"value": b["batch_sharpness"], "stderr": b["stderr"]}


def _stab(r: CheckpointSharpness, key: str) -> Any:
    st = r.measures.get("stability")
    return _get(st, key) if st is not None else None


def _pm(m: Any) -> Any:
    if m is None:
        return None
    v, se = _get(m, "value"), _get(m, "stderr")
    return f"{_fmt(v)} ± {_fmt(se)}" if se is not None else v


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def side_by_side(results: Sequence[CheckpointSharpness]) -> str:
    """A text table: one column per checkpoint, one row per quantity."""
    if not results:
        return ""
    rows = list(_ROWS) + _measure_rows(results)
    header = [""] + [r.label for r in results]
    body = [[name] + [_fmt(f(r)) for r in results] for name, f in rows]
    return _render([header] + body)


def by_epoch(run: SharpnessRun) -> str:
    """A text table: one row per checkpoint of the run (λ_max against the threshold first)."""
    s = run.series()
    keys = [k for k in s if any(v is not None for v in s[k])]
    short = {"stability_sharpness": "sharpness", "eps_sharpness": "eps", "worst_case_sharpness": "worst",
             "adaptive_sharpness": "adaptive", "average_sharpness": "average",
             "pac_bayes_sigma": "pac_sigma", "pac_bayes_mag_sigma": "pac_mag_sigma"}
    header = [short.get(k, k) for k in keys]
    body = [[_fmt(s[k][i]) for k in keys] for i in range(len(run.results))]
    return _render([header] + body)


def _render(rows: List[List[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
