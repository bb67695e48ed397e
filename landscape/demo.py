"""The embedded default: train small Adam and SGD runs on the bundled digits, analyse them with every
instrument of the package, write one HTML report, and summarise what the numbers say.

Everything goes through the Python API the CLI commands use (:func:`landscape.train.train`,
:func:`landscape.inspection.inspect_checkpoint`, :func:`landscape.hessian.analyze.analyze_hessian`,
:func:`landscape.sharpness.measure.compare_checkpoints`, :func:`landscape.slices.slice_checkpoint`,
:func:`landscape.slices.interpolate_checkpoints`, :func:`landscape.probes.adam_first_step.adam_first_step`,
:func:`landscape.probes.spikes.probe_spikes`, :func:`landscape.report.write_html`). The study it
reproduces in miniature: Adam and SGD (with heavy-ball momentum) × cross-entropy and
softmax-MSE (``nn.MSELoss()`` on softmax outputs, the study's "MSE") at lr 0.1, and Adam at 0.001,
on a CNN wide enough (width 1) that Adam at lr 0.1 under softmax-MSE never trains while the other
three do (REFERENCES.md, "Adam's death at lr 0.1"); the first-step probe then measures why, under
both losses, and the summary states the mechanism from the probe's causes.

Every sentence of :func:`summarise` is computed from the results (thresholds and rules are stated
in the text); nothing is canned. The edge-of-stability check and the sharpness measures use
BatchNorm in train mode (batch statistics, as during training; in eval mode the running statistics
give curvature in directions training never moves, see landscape.hessian.verdict),
on the full-batch loss; slices and interpolation use the stored running statistics (the model as
it is evaluated).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import LandscapeError, OptionError
from .results import write_json

MARKER = "demo.json"
EDGE_LOW = 0.8  # stability ratio (sharpness / threshold) from which a run counts as at the edge


@dataclass(frozen=True)
class RunSpec:
    """One training run of the demo."""

    name: str
    optimizer: str
    lr: float
    loss: str = "ce"
    momentum: float = 0.0

    def label(self) -> str:
        mom = f", momentum {self.momentum:g}" if self.momentum else ""
        return f"{self.optimizer.upper() if self.optimizer == 'sgd' else self.optimizer.capitalize()} lr {self.lr:g}{mom}, {loss_label(self.loss)}"


LOSS_LABELS = {"ce": "CE", "mse": "MSE", "mse-sum": "½-sum MSE", "mse-softmax": "softmax-MSE"}


def loss_label(loss: str) -> str:
    """How the summary names a loss convention (softmax-MSE is the study's "MSE")."""
    return LOSS_LABELS.get(loss, loss)


def default_runs() -> Tuple[RunSpec, ...]:
    """Adam and SGD-momentum × CE and softmax-MSE at lr 0.1, and Adam at lr 0.001 with each loss."""
    return (
        RunSpec("adam_ce_lr0.1", "adam", 0.1),
        RunSpec("sgd_ce_lr0.1", "sgd", 0.1, momentum=0.9),
        RunSpec("adam_smse_lr0.1", "adam", 0.1, loss="mse-softmax"),
        RunSpec("sgd_smse_lr0.1", "sgd", 0.1, loss="mse-softmax", momentum=0.9),
        RunSpec("adam_ce_lr0.001", "adam", 0.001),
        RunSpec("adam_smse_lr0.001", "adam", 0.001, loss="mse-softmax"),
    )


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; :meth:`quick` is the smoke version used by the tests (``--quick``)."""

    model: str = "cnn"
    width: float = 1.0                  # the narrower 0.5 survives Adam at lr 0.1 under softmax-MSE
    data: str = "digits"
    epochs: int = 8
    batch_size: int = 128
    seed: int = 0
    runs: Tuple[RunSpec, ...] = field(default_factory=default_runs)
    adam_end: str = "adam_ce_lr0.001"   # the Adam and SGD end points compared side by side
    sgd_end: str = "sgd_ce_lr0.1"
    high_lr_adam: str = "adam_smse_lr0.1"  # the run whose death the first-step probe explains
    subset: int = 384                   # evaluation subset for slices, interpolation and the spike probe
    sharp_subset: int = 192             # ... for the perturbation sharpness measures
    grid: int = 11                      # 2-D slice: grid × grid points
    interp_points: int = 21
    top_k: int = 3
    eig_tol: float = 1e-3
    sharp_measures: str = "all"          # comma-separated names (landscape.sharpness.measure.MEASURES)
    sharp_steps: int = 10
    sharp_restarts: int = 2
    sharp_samples: int = 8
    trace_matvecs: int = 24
    probe_steps: int = 10
    probe_losses: Tuple[str, ...] = ("ce", "mse-softmax")  # the first-step probe's loss conventions
    probe_subset: Optional[int] = None   # the probe's training samples (None: all, so it follows the run exactly)
    probe_alphas: Tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)  # loss along each first step
    hessian_batch: int = 1024            # BatchNorm batch statistics for the Hessian and sharpness
    hessian_subset: Optional[int] = 256  # training samples for the stability check (None: all)
    probe_hessian: bool = True           # eigenvalues inside the spike probe
    first_step_hessian: bool = False     # ... and inside the first-step probe (its causes do not need them)
    spike_points: int = 11

    @classmethod
    def quick(cls) -> DemoConfig:
        runs = (RunSpec("adam_ce_lr0.001", "adam", 0.001), RunSpec("sgd_ce_lr0.1", "sgd", 0.1, momentum=0.9),
                RunSpec("adam_smse_lr0.1", "adam", 0.1, loss="mse-softmax"))
        return cls(width=1.0, epochs=3, runs=runs, subset=128, sharp_subset=128, grid=5, interp_points=5,
                   top_k=1, hessian_subset=256, sharp_steps=3, sharp_restarts=1, sharp_samples=2, trace_matvecs=9, probe_steps=3,
                   spike_points=5)

    def to_json(self) -> dict:
        d = asdict(self)
        d["runs"] = [asdict(r) for r in self.runs]
        return d

    def run(self, name: str) -> RunSpec:
        for r in self.runs:
            if r.name == name:
                return r
        raise LandscapeError(f"demo configuration has no run named {name!r}")


@dataclass
class DemoResult:
    """Paths and result objects of one demo (``results`` keyed by step name)."""

    out: Path
    config: DemoConfig
    report: Path
    summary: str
    results: Dict[str, Any]
    seconds: Dict[str, float]
    cpu_seconds: Dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"out": str(self.out), "report": str(self.report), "summary": self.summary,
                "seconds": self.seconds, "cpu_seconds": self.cpu_seconds, "config": self.config.to_json()}


# ------------------------------------------------------------------------------- output folder
def _prepare(out: Path, config: DemoConfig) -> None:
    """Start from a clean folder: a new one, an empty one, or one a previous demo wrote (it holds
    the marker file); anything else is refused so a user's folder is never deleted."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise OptionError("{path} exists and was not written by `landscape demo`; choose another {out}", path=out)
        for name in ("runs", "results"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("report.html", "summary.txt", MARKER):
            (out / name).unlink(missing_ok=True)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"config": config.to_json()}, indent=1), encoding="utf-8")


def _last_checkpoint(run_dir: Path) -> Path:
    from .runs import open_run

    return open_run(run_dir).last


# ------------------------------------------------------------------------------- the steps
def train_runs(config: DemoConfig, runs_dir: Path, say: Callable[[str], None]) -> Dict[str, List[dict]]:
    """Step 1: every run of ``config`` with the trainer; returns each run's log."""
    from .train import TrainConfig, train

    logs = {}
    for r in config.runs:
        say(f"training {r.name} ({r.label()}, {config.epochs} epochs)")
        cfg = TrainConfig(model=config.model, data=config.data, loss=r.loss, optimizer=r.optimizer, lr=r.lr,
                          momentum=r.momentum, epochs=config.epochs, batch_size=config.batch_size,
                          seed=config.seed, width=config.width)
        logs[r.name] = train(cfg, runs_dir / r.name)
    return logs


def hessian_end_points(config: DemoConfig, runs_dir: Path, results_dir: Path) -> Dict[str, Any]:
    """Step 2a: top eigenvalues and the stability verdict at every run's last checkpoint, on the
    full-batch training loss of ``hessian_subset`` training samples with BatchNorm batch statistics
    (one batch of up to ``hessian_batch`` samples: the full-batch objective on which Cohen et al.
    measure the edge of stability)."""
    from .hessian.analyze import HessianConfig, analyze_hessian
    from .session import open_session

    out = {}
    for r in config.runs:
        ckpt = _last_checkpoint(runs_dir / r.name)
        s = open_session(str(ckpt), bn_mode="train", batch_size=config.hessian_batch, seed=config.seed,
                         subset=config.hessian_subset)
        rep = analyze_hessian(s.train, s.optimizer, HessianConfig(top_k=config.top_k, tol=config.eig_tol,
                                                                  seed=config.seed),
                              provenance={**s.provenance(), "bn_mode": "train"})
        write_json(rep, results_dir / f"hessian_{r.name}.json")
        out[r.name] = rep
    return out


def run_demo(out: str | Path, config: Optional[DemoConfig] = None, *,
             say: Callable[[str], None] = lambda m: None) -> DemoResult:
    """Run the whole demo into ``out`` (see the module docstring); ``say`` receives progress lines."""
    from .inspection import inspect_checkpoint
    from .probes.adam_first_step import FirstStepConfig, adam_first_step
    from .probes.spikes import DetectorConfig, SpikeProbeConfig, detect_spikes, probe_spikes
    from .report import write_html
    from .session import open_session
    from .sharpness.measure import SharpnessConfig, compare_checkpoints, parse_measures
    from .slices import interpolate_checkpoints, slice_checkpoint
    from .train import read_log

    config = config or DemoConfig()
    names = {r.name for r in config.runs}
    for need in (config.adam_end, config.sgd_end, config.high_lr_adam):
        if need not in names:
            raise LandscapeError(f"demo configuration has no run named {need!r}")
    out = Path(out)
    _prepare(out, config)
    runs_dir, res_dir = out / "runs", out / "results"
    seconds: Dict[str, float] = {}       # wall clock per step
    cpu_seconds: Dict[str, float] = {}   # CPU time of this process per step (all threads)
    results: Dict[str, Any] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t, c = time.perf_counter(), time.process_time()
        value = fn()
        seconds[name] = round(time.perf_counter() - t, 2)
        cpu_seconds[name] = round(time.process_time() - c, 2)
        return value

    t_all, c_all = time.perf_counter(), time.process_time()
    results["logs"] = timed("train", lambda: train_runs(config, runs_dir, say))
    ends = {r.name: str(_last_checkpoint(runs_dir / r.name)) for r in config.runs}

    say("inspect: every run's last checkpoint")
    results["inspect"] = timed("inspect", lambda: {n: inspect_checkpoint(p) for n, p in ends.items()})
    for n, rep in results["inspect"].items():
        write_json(rep, res_dir / f"inspect_{n}.json")

    say("hessian: top eigenvalues and the stability check at every end point")
    results["hessian"] = timed("hessian", lambda: hessian_end_points(config, runs_dir, res_dir))

    a_end, s_end = ends[config.adam_end], ends[config.sgd_end]
    say(f"sharpness: {config.adam_end} and {config.sgd_end} side by side")
    sharp_cfg = SharpnessConfig(measures=parse_measures(config.sharp_measures), steps=config.sharp_steps, restarts=config.sharp_restarts,
                                samples=config.sharp_samples, pac_max_samples=2 * config.sharp_samples,
                                trace_matvecs=config.trace_matvecs, eig_tol=config.eig_tol, seed=config.seed)
    results["sharpness"] = timed("sharpness", lambda: compare_checkpoints(
        [a_end, s_end], sharp_cfg, subset=config.sharp_subset, seed=config.seed, bn_mode="train",
        batch_size=config.hessian_batch))
    write_json(results["sharpness"], res_dir / "sharpness.json")

    g = config.grid
    slices = {}
    for name in (config.adam_end, config.sgd_end):
        say(f"slice: {g}×{g} filter-normalised random plane around {name}")
        path = res_dir / f"slice_{name}.h5"
        slices[name] = timed(f"slice_{name}", lambda p=path, n=name: slice_checkpoint(
            ends[n], dirs=2, xrange=(-1.0, 1.0, g), yrange=(-1.0, 1.0, g), out=str(p), subset=config.subset,
            seed=config.seed, flush_seconds=1e9))
    results["slices"] = slices

    say(f"interpolate: {config.adam_end} → {config.sgd_end}")
    interp_path = res_dir / "interpolation.h5"
    results["interpolation"] = timed("interpolate", lambda: interpolate_checkpoints(
        a_end, s_end, alphas=(-0.5, 1.5, config.interp_points), out=str(interp_path), subset=config.subset,
        seed=config.seed))

    hi = config.run(config.high_lr_adam)
    low_lr = min(r.lr for r in config.runs if r.optimizer == "adam")
    lrs = tuple(sorted({hi.lr, low_lr}, reverse=True))
    probe_losses = tuple(dict.fromkeys((*config.probe_losses, hi.loss)))
    sgd_momentum = next((r.momentum for r in config.runs if r.optimizer == "sgd"), 0.0)  # the grid's SGD
    say(f"probe adam-first-step: {', '.join(loss_label(x) for x in probe_losses)} from {config.high_lr_adam}'s "
        "initialisation at lr " + ", ".join(f"{x:g}" for x in lrs))
    init = str(runs_dir / config.high_lr_adam / "epoch_000.pt")
    session = open_session(init, subset=config.probe_subset, seed=config.seed, bn_mode="train", init_seed=config.seed)
    results["first_step"] = timed("first_step", lambda: adam_first_step(session, FirstStepConfig(
        lrs=lrs, batch_size=config.batch_size, steps=config.probe_steps, seed=config.seed, momentum=sgd_momentum,
        hessian=config.first_step_hessian, losses=probe_losses, alphas=tuple(config.probe_alphas))))
    write_json(results["first_step"], res_dir / "adam_first_step.json")

    logs_csv = {r.name: read_log(runs_dir / r.name / "log.csv") for r in config.runs}  # with epoch 0
    spike_run, spike_at, n_found = _spike_target(config, logs_csv, detect_spikes, DetectorConfig())
    say(f"probe spikes: {spike_run}" + (f" (largest test-loss rise at epoch {spike_at})" if spike_at is not None else ""))
    results["spike_run"] = {"run": spike_run, "at": spike_at, "spikes_in_logs": n_found}
    results["spikes"] = timed("spikes", lambda: probe_spikes(runs_dir / spike_run, cfg=SpikeProbeConfig(
        at=(spike_at,) if spike_at is not None else (), max_events=1, points=config.spike_points,
        tol=config.eig_tol, seed=config.seed, hessian=config.probe_hessian),
        session_kwargs={"subset": config.subset, "seed": config.seed, "bn_mode": "train",
                        "batch_size": config.hessian_batch}))
    write_json(results["spikes"], res_dir / "spikes.json")

    say("report")
    report_items: List[Any] = [res_dir / "sharpness.json", *[res_dir / f"hessian_{r.name}.json" for r in config.runs],
                               *[Path(s.path) for s in slices.values()], interp_path,
                               res_dir / "adam_first_step.json", res_dir / "spikes.json",
                               *[runs_dir / r.name for r in config.runs]]
    report = timed("report", lambda: write_html([str(p) for p in report_items], out / "report.html",
                                                title="landscape demo: Adam vs SGD on the bundled digits"))
    seconds["total"] = round(time.perf_counter() - t_all, 2)
    cpu_seconds["total"] = round(time.process_time() - c_all, 2)
    text = summarise(config, results, report_path=report)
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    write_json({"config": config.to_json(), "seconds": seconds, "cpu_seconds": cpu_seconds, "report": str(report)},
               out / MARKER)
    return DemoResult(out=out, config=config, report=report, summary=text, results=results, seconds=seconds,
                      cpu_seconds=cpu_seconds)


def _spike_target(config: DemoConfig, logs: Dict[str, List[dict]], detect: Callable, det_cfg: Any
                  ) -> Tuple[str, Optional[int], int]:
    """The run with the most detected test-loss spikes; without any, the run with the largest
    epoch-to-epoch test-loss rise (probed at that epoch). Returns (run, epoch or None, spikes)."""
    best: Tuple[int, float, str, Optional[int]] = (-1, -math.inf, config.runs[0].name, None)
    for name, log in logs.items():
        loss = [float(r["test_loss"]) for r in log]
        ep = [int(r["epoch"]) for r in log]
        n = len(detect(ep, loss, cfg=det_cfg))
        rises = [(loss[i] - loss[i - 1], ep[i]) for i in range(1, len(loss)) if math.isfinite(loss[i] - loss[i - 1])]
        rise, at = max(rises, default=(-math.inf, None))
        if (n, rise) > best[:2]:
            best = (n, rise, name, at)
    n, rise, name, at = best
    if n == 0 and not rise > 0:  # no rise anywhere: probe the last epoch of the first run
        name = config.runs[0].name
        at = int(logs[name][-1]["epoch"])
    return name, (None if n > 0 else at), n


# ------------------------------------------------------------------------------- summary
def _f(x: Optional[float], nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.{nd}g}"


def _majority(labels_count: Sequence[int]) -> float:
    return max(labels_count) / max(1, sum(labels_count))


def _trained_rule(test_acc: float, majority: float) -> bool:
    """Trained: test accuracy at least halfway from the majority-class rate to 1."""
    return test_acc >= majority + 0.5 * (1 - majority)


def summarise(config: DemoConfig, results: Dict[str, Any], *, report_path: Any = None) -> str:
    """The text summary; every statement is computed from ``results``."""
    from .data import load_data

    ds = load_data(config.data)
    counts = [int((ds.y_test == c).sum()) for c in range(int(ds.y_test.max()) + 1)]
    majority = _majority(counts)
    lines: List[str] = []
    n_runs = len(config.runs)
    lines.append(f"landscape demo: {n_runs} runs of `{config.model}` (width {config.width:g}) on the bundled "
                 f"{config.data}, {config.epochs} epochs, batch {config.batch_size}, seed {config.seed}")
    lines.append("")
    lines.append("Runs (last epoch; 'trained' = test accuracy at least halfway from the majority-class rate "
                 f"{majority:.3f} to 1):")
    trained = {}
    for r in config.runs:
        last = results["logs"][r.name][-1]
        trained[r.name] = _trained_rule(last["test_acc"], majority)
        lines.append(f"  {r.name:<17} {r.label():<38} train loss {_f(last['train_loss'], 4):>8}  "
                     f"test acc {last['test_acc']:.3f}  {'trained' if trained[r.name] else 'DID NOT TRAIN'}")

    lines.append("")
    n_h = f"{config.hessian_subset} training samples" if config.hessian_subset else "all training samples"
    lines.append(f"Edge of stability (full-batch loss on {n_h}, BatchNorm batch statistics; sharpness = λ_max(H) for "
                 "SGD, λ₁(P⁻¹H) for Adam; ratio = sharpness / the optimizer's threshold; "
                 f"at the edge: ratio ≥ {EDGE_LOW:g}):")
    at_edge, above = [], []
    for r in config.runs:
        st = results["hessian"][r.name].stability
        if st.ratio is None or not math.isfinite(st.ratio):
            where = "no verdict"
        elif st.ratio > 1:
            where = "past the threshold"
            above.append(r.name)
        elif st.ratio >= EDGE_LOW:
            where = "at the edge"
            at_edge.append(r.name)
        else:
            where = "below the edge"
        lam = results["hessian"][r.name].eigenvalues[0]
        lines.append(f"  {r.name:<17} λ_max {_f(lam, 4):>8}  sharpness {_f(st.sharpness, 4):>8} vs "
                     f"{st.rule} = {_f(st.threshold, 4):>7}  ratio {_f(st.ratio, 3):>6}  {where}")
    edge_runs = at_edge + above
    lines.append("  → " + (f"at or past the edge of stability: {', '.join(edge_runs)}" if edge_runs
                           else "no run is at the edge of stability"))

    lines += [""] + _sharpness_lines(config, results["sharpness"])
    lines += [""] + _adam_lines(config, results, trained, majority)
    lines += [""] + _spike_lines(results)
    lines.append("")
    sl = results["slices"]
    for name, s in sl.items():
        c = s.centre()
        loss = s.values["train_loss"]
        ok = s.computed & np.isfinite(loss)
        lines.append(f"Slice around {name}: centre train loss {_f(c.get('train_loss'), 4)}, highest on the "
                     f"{len(s.xcoordinates)}×{len(s.ycoordinates)} grid {_f(float(loss[ok].max()) if ok.any() else None, 4)}")
    it = results["interpolation"].surface
    loss = it.values["train_loss"]
    inside = (it.xcoordinates > 0) & (it.xcoordinates < 1) & np.isfinite(loss)
    ends = [float(loss[np.argmin(abs(it.xcoordinates - a))]) for a in (0.0, 1.0)]
    if inside.any():
        j = int(np.argmax(np.where(inside, loss, -np.inf)))
        barrier = float(loss[j]) - max(ends)
        lines.append(f"Interpolation {config.adam_end} → {config.sgd_end}: train loss {_f(ends[0], 4)} at α=0, "
                     f"{_f(ends[1], 4)} at α=1, highest in between {_f(float(loss[j]), 4)} at α={float(it.xcoordinates[j]):.2f} "
                     + (f"(a barrier of {_f(barrier, 3)} above the higher end point)" if barrier > 0
                        else "(no barrier: the loss between them stays below the end points)"))
    if report_path is not None:
        lines += ["", f"Report: {report_path}"]
    return "\n".join(lines)


def _sharpness_lines(config: DemoConfig, comp: Any) -> List[str]:
    a, s = comp.results
    names = (config.adam_end, config.sgd_end)
    lines = [f"Which minimum is sharper ({names[0]} vs {names[1]}; same {config.sharp_subset} training "
             "samples, BatchNorm batch statistics):"]
    # measure -> (larger means sharper?)
    order = [("lambda_max", True), ("trace", True), ("eps_sharpness", True), ("worst_case_sharpness", True),
             ("adaptive_sharpness", True), ("average_sharpness", True), ("pac_bayes_sigma", False),
             ("pac_bayes_mag_sigma", False)]
    sharper: Dict[str, List[str]] = {names[0]: [], names[1]: []}
    ties: List[str] = []
    for key, larger_sharper in order:
        va, vs = a.value(key), s.value(key)
        if va is None or vs is None:
            continue
        se = _stderr(a.measures.get(key)), _stderr(s.measures.get(key))
        if None not in se and abs(va - vs) <= 2 * math.hypot(*se):
            ties.append(f"{key} ({_f(va)} vs {_f(vs)}, within 2 standard errors)")
            lines.append(f"  {key:<22} {_f(va, 4):>9} vs {_f(vs, 4):>9}  tie within 2 standard errors")
            continue
        a_sharper = (va > vs) if larger_sharper else (va < vs)
        who = names[0] if a_sharper else names[1]
        sharper[who].append(key)
        note = "" if larger_sharper else "  (a smaller σ is sharper)"
        lines.append(f"  {key:<22} {_f(va, 4):>9} vs {_f(vs, 4):>9}  sharper: {who}{note}")
    gap = [r.gap["loss"] for r in (a, s)]
    lines.append(f"  generalisation gap (test − train loss): {_f(gap[0], 3)} vs {_f(gap[1], 3)}")
    na, ns = len(sharper[names[0]]), len(sharper[names[1]])
    if na == ns:
        lines.append(f"  → the measures split evenly ({na} each)")
    else:
        win = names[0] if na > ns else names[1]
        lines.append(f"  → {win} is the sharper minimum by {max(na, ns)} of {na + ns} measures "
                     f"({', '.join(sharper[win])}); the other is sharper by "
                     f"{', '.join(sharper[names[1] if win == names[0] else names[0]]) or 'none'}")
    return lines


def _stderr(m: Any) -> Optional[float]:
    if isinstance(m, dict):
        v = m.get("stderr")
    else:
        v = getattr(m, "stderr", None)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _adam_lines(config: DemoConfig, results: Dict[str, Any], trained: Dict[str, bool], majority: float) -> List[str]:
    """The high-learning-rate Adam run against its neighbours in the grid, then the first-step
    probe's runs and the mechanism its supported causes name (landscape.probes.first_step_causes)."""
    from .probes.first_step_causes import cause_phrase

    hi = config.run(config.high_lr_adam)
    last = results["logs"][hi.name][-1]
    lines = [f"Adam at a high learning rate ({hi.name}, {hi.label()}): "
             + ("it trained" if trained[hi.name] else
                f"it did not train (test accuracy {last['test_acc']:.3f} after {config.epochs} epochs, "
                f"majority-class rate {majority:.3f})")]
    # same learning rate with one of optimizer / loss changed, and the same optimizer and loss at another rate
    others = [r for r in config.runs if r.name != hi.name and (
        (r.lr == hi.lr and (r.optimizer == hi.optimizer) != (r.loss == hi.loss))
        or (r.optimizer == hi.optimizer and r.loss == hi.loss))]
    for r in others:
        acc = results["logs"][r.name][-1]["test_acc"]
        lines.append(f"  compare {r.name} ({r.label()}): test accuracy {acc:.3f}, "
                     + ("trained" if trained[r.name] else "did not train"))
    fs = results["first_step"]
    batches = ("the run's own first mini-batches" if config.probe_subset is None
               else f"mini-batches of a {config.probe_subset}-sample subset")
    lines.append(f"  first-step probe from {hi.name}'s initialisation, Adam and SGD (momentum {fs.config.momentum:g}) "
                 "from the same start, "
                 f"{batches} of {fs.config.batch_size}, {fs.config.steps} steps ({fs.n_params:,} parameters):")
    for run in fs.runs:
        ad, sg = run.adam, run.sgd
        lines.append(f"  lr {run.lr:g}, {loss_label(run.loss)}: Adam's first step ‖Δ‖ {_f(ad.update_norm)} = "
                     f"{_f(run.norm_ratio)}× SGD's, loss {_f(ad.loss_before, 4)} → {_f(ad.loss_after, 4)} after it "
                     f"(SGD → {_f(sg.loss_after, 4)}); {run.mechanism}")
    key = next((r for r in fs.runs if r.loss == hi.loss and r.lr == hi.lr), None)
    if key is None:
        lines.append(f"  → the probe did not run at {hi.name}'s loss and learning rate")
        return lines
    named = [cause_phrase(c, key.adam) for c in key.causes if c["supported"] and c["name"] != "no_recovery"]
    causes = "; ".join(named) if named else "none of the measured causes"
    if key.adam.recovered:
        lines.append(f"  → mechanism: not reached in the probe's {fs.config.steps} steps (Adam trains again within "
                     f"them); supported so far: {causes}")
    else:
        verb = "did not train" if not trained[hi.name] else "trained later, though"
        lines.append(f"  → mechanism ({hi.name} {verb}; the probe's supported causes at lr {key.lr:g} under "
                     f"{loss_label(key.loss)}): {causes}; Adam does not train again within {fs.config.steps} steps")
    for r in fs.runs:
        if r.lr != key.lr or r.loss == key.loss:
            continue
        sup = [cause_phrase(c, r.adam) for c in r.causes if c["supported"] and c["name"] != "no_recovery"]
        lines.append(f"  → under {loss_label(r.loss)} at the same lr Adam "
                     + ("trains again" if r.adam.recovered else "does not train again")
                     + f" within {fs.config.steps} steps; supported: " + ("; ".join(sup) if sup else "none"))
    return lines


def _spike_lines(results: Dict[str, Any]) -> List[str]:
    sp = results["spikes"]
    target = results["spike_run"]
    rises = [(b - a, int(e)) for a, b, e in zip(sp.log["test_loss"], sp.log["test_loss"][1:], sp.log["epoch"][1:])]
    rise = max(rises, default=(float("nan"), None))
    why = ""
    if target["spikes_in_logs"] == 0 and target["at"] is not None:
        why = (f" (no spike in any run's log; probed the largest epoch-to-epoch test-loss rise of all runs, "
               f"+{_f(rise[0])} at epoch {target['at']})" if rise[1] == target["at"] and rise[0] > 0
               else f" (no spike and no test-loss rise in any run's log; probed epoch {target['at']})")
    head = f"Spike probe on {target['run']}: {len(sp.spikes)} test-loss spike(s) detected{why}"
    lines = [head, f"  oscillation: {len(sp.oscillation.segments)} segment(s)"]
    for c in sp.checkpoints:
        ratio = c.preconditioned_ratio if c.preconditioned_ratio is not None else c.ratio
        lines.append(f"  epoch {c.epoch} ({c.role}): test loss {_f(c.test_loss, 4)}, stability ratio {_f(ratio)}, "
                     f"η·gᵀHg/gᵀg {_f(c.eta_directional_curvature)}")
    for v in sp.verdicts:
        lines.append(f"  {v.hypothesis}: {v.status} — {v.summary}")
    return lines
