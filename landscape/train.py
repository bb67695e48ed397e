"""A minimal, reproducible trainer that writes checkpoints landscape can analyse.

``landscape train`` makes runs like those of the studies we serve (Adam vs SGD, CE vs MSE, fixed
learning rates) on any supported data set: it writes ``RUN_DIR/epoch_XXX.pt`` (weights, optimizer
state, and the model/data/loss spec so analyses need no flags), optional ``step_XXXXXX.pt``
checkpoints inside the first steps, and ``RUN_DIR/log.csv`` with one row per epoch.

Training is ordinary PyTorch: model in train mode (BatchNorm uses and updates batch statistics),
mean-reduced loss, shuffled mini-batches from a seeded generator. The log, the tracked sharpness
(``--track-sharpness``) and the checkpoints around spikes (``--save-around-spikes``) are written by
a :class:`landscape.monitor.Monitor`, the same one a user's own training loop uses.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from .data import Dataset, load_data
from .errors import LandscapeError, OptionError, SpecError, SpecOptionError
from .losses import get_loss, mean_loss
from .models import ModelSpec, model_from_spec
from .monitor import LOG_COLUMNS, RUN_FILE_PATTERNS, Monitor, run_files, write_payload  # noqa: F401 (re-exported)
from .monitor import checkpoint_payload as _payload
from .objective import Objective
from .optim import EpochScheduler, OptimizerConfig, ScheduleConfig, switch_to_sgd
from .optim import make_optimizer as _make_optimizer
from .progress import progress

__all__ = ["LOG_COLUMNS", "MonitorConfig", "TrainConfig", "TrainState", "checkpoint_payload", "read_log",
           "save_checkpoint", "train", "write_payload"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run (recorded in every checkpoint it writes)."""

    model: str
    data: str = "digits"
    loss: str = "ce"
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    betas: Sequence[float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    dampening: float = 0.0
    alpha: float = 0.99                   # rmsprop
    centered: bool = False                # rmsprop
    rho: float = 0.9                      # adadelta
    lr_decay: float = 0.0                 # adagrad
    initial_accumulator_value: float = 0.0  # adagrad
    final_lr: float = 0.1                 # adabound/amsbound
    gamma: float = 1e-3                   # adabound/amsbound
    scheduler: str = "none"               # none | plateau | step | cosine (landscape.optim.schedules)
    plateau_metric: str = "test_acc"
    plateau_mode: str = "max"
    plateau_factor: float = 0.9
    plateau_patience: int = 10
    step_size: int = 30
    step_gamma: float = 0.1
    switch_to_sgd: Optional[int] = None   # after this epoch, continue with SGD (switch_lr, switch_momentum)
    switch_lr: Optional[float] = None
    switch_momentum: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    save_every: int = 1
    save_steps: Sequence[int] = ()
    seed: int = 0
    width: float = 1.0
    eval_batch_size: int = 1024
    device: str = "cpu"

    def to_json(self) -> dict:
        d = asdict(self)
        d["betas"], d["save_steps"] = list(self.betas), list(self.save_steps)
        return d


@dataclass
class TrainState:
    """What hooks see after every optimizer step / epoch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    epoch: int = 0
    step: int = 0
    last_loss: float = float("nan")
    history: List[Dict[str, float]] = field(default_factory=list)
    model_spec: Optional[ModelSpec] = None


Hook = Callable[[TrainState], None]


@dataclass(frozen=True)
class MonitorConfig:
    """What the run's :class:`~landscape.monitor.Monitor` tracks (``--track-sharpness``,
    ``--save-around-spikes``)."""

    track_every: int = 0                  # sharpness every K steps (0: not tracked)
    track_subset: Optional[int] = None    # fixed subset of training samples (None: all)
    track_batches: int = 10               # mini-batches for the batch sharpness
    save_around_spikes: bool = False
    spike_threshold: float = 5.0
    keep: int = 2
    after: int = 1


def optimizer_config(cfg: TrainConfig) -> OptimizerConfig:
    """The optimizer part of a run's configuration (see :mod:`landscape.optim.factory`)."""
    return OptimizerConfig(
        name=cfg.optimizer.lower(), lr=cfg.lr, momentum=cfg.momentum, dampening=cfg.dampening,
        nesterov=cfg.nesterov, betas=(float(cfg.betas[0]), float(cfg.betas[1])), eps=cfg.eps,
        weight_decay=cfg.weight_decay, alpha=cfg.alpha, centered=cfg.centered, rho=cfg.rho,
        lr_decay=cfg.lr_decay, initial_accumulator_value=cfg.initial_accumulator_value,
        final_lr=cfg.final_lr, gamma=cfg.gamma)


def make_optimizer(cfg: TrainConfig, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` with the configured hyper-parameters."""
    return _make_optimizer(params, optimizer_config(cfg))


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> EpochScheduler:
    """The epoch-level learning-rate schedule named by ``cfg.scheduler``."""
    return EpochScheduler(opt, ScheduleConfig(
        name=cfg.scheduler, metric=cfg.plateau_metric, mode=cfg.plateau_mode, factor=cfg.plateau_factor,
        patience=cfg.plateau_patience, step_size=cfg.step_size, step_gamma=cfg.step_gamma,
        epochs=cfg.epochs))


def save_checkpoint(path: Path, state: TrainState, model_spec: ModelSpec) -> None:
    """Write weights, optimizer state and the spec landscape needs to reload without flags."""
    write_payload(path, checkpoint_payload(state, model_spec))


def run_meta(cfg: TrainConfig, model_spec: ModelSpec) -> dict:
    """The ``landscape`` record of this run's checkpoints (model, data, loss, configuration)."""
    return {"model": model_spec.to_json(), "data": cfg.data, "loss": cfg.loss,
            "batch_size": cfg.batch_size, "train": cfg.to_json()}


def checkpoint_payload(state: TrainState, model_spec: ModelSpec) -> dict:
    """What a checkpoint holds (tensors are the live ones: clone before keeping it)."""
    return _payload(state.model, state.optimizer, epoch=state.epoch, step=state.step,
                    meta=run_meta(state.config, model_spec))


def train(cfg: TrainConfig, out_dir: str | Path, *, hooks: Sequence[Hook] = (),
          epoch_hooks: Sequence[Hook] = (), dataset: Optional[Dataset] = None,
          monitor: MonitorConfig = MonitorConfig(),
          on_monitor: Optional[Callable[[Monitor], None]] = None,
          existing: str = "refuse") -> List[Dict[str, float]]:
    """Train as configured, writing checkpoints and ``log.csv`` into ``out_dir``; returns the log.

    A :class:`~landscape.monitor.Monitor` configured by ``monitor`` writes ``log.csv``,
    ``sharpness.csv`` and the checkpoints around spikes (``on_monitor`` receives it, e.g. to read
    its spikes afterwards). ``hooks`` run after every optimizer step; ``epoch_hooks`` after each
    epoch's log row and checkpoint are written.

    ``existing`` says what to do when ``out_dir`` already holds a run (see :func:`claim_run_folder`):
    ``"refuse"`` (an error), ``"overwrite"`` (its run files are removed first) or ``"resume"``
    (continue it from its last epoch checkpoint up to ``cfg.epochs``; the configuration must match,
    and the result is the same as an uninterrupted run). The returned log then holds only the new
    epochs."""
    out = Path(out_dir)
    mode = claim_run_folder(out, existing=existing)
    resume = _resume_point(out, cfg) if mode == "resume" else None
    out.mkdir(parents=True, exist_ok=True)
    ds = dataset or load_data(cfg.data)
    get_loss(cfg.loss)
    torch.manual_seed(cfg.seed)
    mspec = ModelSpec(cfg.model, ds.num_classes, tuple(ds.input_shape), cfg.width)
    device = torch.device(cfg.device)
    model = model_from_spec(mspec).to(device)
    if cfg.switch_to_sgd is not None and cfg.switch_lr is None:
        raise SpecOptionError("{switch_to_sgd} needs {switch_lr} (the SGD learning rate after the switch)")
    opt = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    scheduler = make_scheduler(cfg, opt)
    state = TrainState(model, opt, cfg, model_spec=mspec)
    x_tr, y_tr = ds.x_train.to(device), ds.y_train.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    save_steps = set(int(s) for s in cfg.save_steps)
    if monitor.track_every < 0:
        raise SpecOptionError("{track_every} K needs K >= 1")
    if monitor.track_subset is not None and monitor.track_subset < 1:
        raise SpecOptionError("{track_subset} must be positive")
    mon = Monitor(model, opt, train=(ds.x_train, ds.y_train) if monitor.track_every else None, loss=cfg.loss,
                  out=out, every=monitor.track_every, subset=monitor.track_subset,
                  spikes=monitor.save_around_spikes, keep=monitor.keep, after=monitor.after,
                  batch_size=cfg.batch_size, spike_threshold=monitor.spike_threshold, model_spec=mspec,
                  data=cfg.data, meta=run_meta(cfg, mspec), seed=cfg.seed, batches=monitor.track_batches,
                  eval_batch_size=cfg.eval_batch_size, existing="append")
    if on_monitor is not None:
        on_monitor(mon)

    if resume is None:
        row = _log_row(state, ds, float("nan"), float("nan"))
        mon.epoch(0, **_results(row))
        mon.save()
        if 0 in save_steps:
            mon.save(f"step_{0:06d}.pt")
        first = 1
    else:
        scheduler = _continue(resume, state, scheduler, gen, len(y_tr), mon)
        first = state.epoch + 1
    steps_per_epoch = math.ceil(len(y_tr) / cfg.batch_size)
    bar = progress((cfg.epochs - first + 1) * steps_per_epoch,
                   desc=f"train {cfg.model} {cfg.optimizer} lr={cfg.lr}")
    for epoch in range(first, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(len(y_tr), generator=gen).to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for a in range(0, len(y_tr), cfg.batch_size):
            idx = perm[a:a + cfg.batch_size]
            xb, yb = x_tr[idx], y_tr[idx]
            state.optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = mean_loss(cfg.loss, logits, yb)
            loss.backward()
            state.optimizer.step()
            state.step += 1
            mon.step()
            loss_sum += loss.detach().double() * len(yb)
            correct += (logits.detach().argmax(-1) == yb).sum()
            if state.step in save_steps:
                mon.save(f"step_{state.step:06d}.pt")
            for hook in hooks:
                hook(state)
            bar.update(1)
        state.epoch = epoch
        train_loss, train_acc = (loss_sum / len(y_tr)).item(), (correct.double() / len(y_tr)).item()
        row = _log_row(state, ds, train_loss, train_acc)
        state.history.append(row)
        state.last_loss = train_loss
        bar.set_postfix(loss=f"{train_loss:.4g}", test=f"{row['test_loss']:.4g}")
        mon.epoch(epoch, **_results(row))
        if epoch % max(1, cfg.save_every) == 0 or epoch == cfg.epochs:
            mon.save()
        for hook in epoch_hooks:
            hook(state)
        scheduler = _end_epoch(state, scheduler, row, mon)
        if not math.isfinite(train_loss):
            bar.write(f"epoch {epoch}: training loss is {train_loss}; stopping")
            break
    bar.close()
    mon.close()
    return state.history


def _end_epoch(state: TrainState, scheduler: EpochScheduler, row: Dict[str, float],
               mon: Optional[Monitor]) -> EpochScheduler:
    """What follows an epoch's log row: the schedule's step and the switch to SGD; returns the
    schedule in force. Shared by training and by the replay that resumes a run."""
    cfg = state.config
    scheduler.epoch_end(row)
    if cfg.switch_to_sgd is not None and int(row["epoch"]) == cfg.switch_to_sgd:
        state.optimizer = switch_to_sgd(state.optimizer, lr=float(cfg.switch_lr), momentum=cfg.switch_momentum)
        if mon is not None:
            mon.use_optimizer(state.optimizer)
        scheduler = make_scheduler(cfg, state.optimizer)
    return scheduler


# ---------------------------------------------------------------------------- run folders
def claim_run_folder(folder: Path, *, existing: str = "refuse") -> str:
    """Decide how a run may write into ``folder``: ``"new"``, ``"overwrite"`` or ``"resume"``.

    A folder that holds another run's files is refused unless ``existing`` is ``"overwrite"``
    (those files are removed, nothing else) or ``"resume"``: writing a new run over an old one
    used to leave a mix of both that later analyses read as one run."""
    if existing not in ("refuse", "overwrite", "resume"):
        raise SpecError(f"existing must be refuse, overwrite or resume; got {existing!r}")
    if folder.exists() and not folder.is_dir():
        raise LandscapeError(f"{folder} is a file, not a run folder")
    files = run_files(folder)
    if existing == "resume":
        if not any(p.name.startswith("epoch_") for p in files):
            raise LandscapeError(f"nothing to resume in {folder}: no epoch_XXX.pt checkpoint")
        return "resume"
    if not files:
        return "new"
    if existing == "overwrite":
        for p in files:
            p.unlink()
        return "overwrite"
    n_ckpt = sum(p.suffix == ".pt" for p in files)
    raise OptionError("{folder} already holds a run ({n_ckpt} checkpoints{log}); pass {overwrite} to replace "
                      "it or {resume} to continue it, or choose another {out_dir}", folder=folder, n_ckpt=n_ckpt,
                      log=", log.csv" if (folder / "log.csv").exists() else "")


@dataclass(frozen=True)
class ResumePoint:
    """The last epoch checkpoint of a run being resumed, with the log rows up to it."""

    path: Path
    payload: dict
    rows: List[Dict[str, float]]
    sharpness_rows: List[Dict[str, str]]


# Settings that may change when a run is resumed: they do not change the trajectory.
RESUMABLE_CHANGES = ("epochs", "device")


def _resume_point(folder: Path, cfg: TrainConfig) -> ResumePoint:
    """The checkpoint to continue from, after checking that it belongs to the same configuration."""
    from .checkpoint import load_checkpoint
    from .runs import open_run

    last = max(open_run(folder).by_epoch.items())[1]
    load_checkpoint(str(last))  # a one-line error for a missing or corrupt file
    payload = torch.load(last, map_location="cpu", weights_only=True)
    recorded = ((payload.get("landscape") or {}).get("train") if isinstance(payload, dict) else None)
    if not isinstance(recorded, dict) or "model_state_dict" not in payload:
        raise LandscapeError(f"{last} was not written by landscape train; cannot resume it")
    wanted = cfg.to_json()
    diff = [k for k in sorted(set(wanted) | set(recorded))
            if k not in RESUMABLE_CHANGES and _norm(wanted.get(k)) != _norm(recorded.get(k))]
    if diff:
        shown = ", ".join(f"{k}: run {recorded.get(k)!r} vs now {wanted.get(k)!r}" for k in diff[:4])
        raise OptionError("{resume} needs the run's own configuration; {folder} differs in {shown}",
                          folder=folder, shown=shown)
    epoch = int(payload.get("epoch", 0))
    if epoch >= cfg.epochs:
        raise OptionError("{folder} is already trained to epoch {epoch}; pass {epochs} above {epoch} to continue",
                          folder=folder, epoch=epoch)
    step = int(payload.get("step", 0))
    rows = [r for r in read_log(folder / "log.csv") if r.get("epoch", -1) <= epoch] \
        if (folder / "log.csv").exists() else []
    missing = sorted(set(range(epoch + 1)) - {int(r["epoch"]) for r in rows if isinstance(r.get("epoch"), float)})
    if missing:
        raise LandscapeError(f"cannot resume {folder}: its log.csv lacks the rows of epochs "
                             f"{', '.join(map(str, missing[:5]))} (the schedule is replayed from them)")
    sharp = _read_rows(folder / "sharpness.csv", lambda r: float(r.get("step", "inf")) <= step)
    return ResumePoint(last, payload, rows, sharp)


def _norm(value: object) -> object:
    return [_norm(v) for v in value] if isinstance(value, (list, tuple)) else value


def _read_rows(path: Path, keep: Callable[[Dict[str, str]], bool]) -> List[Dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if keep(r)]


def _continue(rp: ResumePoint, state: TrainState, scheduler: EpochScheduler, gen: torch.Generator,
              n_train: int, mon: Monitor) -> EpochScheduler:
    """Bring a fresh training state to the resume point, exactly as the run left it.

    The model and optimizer come from the checkpoint; the schedule (and a switch to SGD) is
    replayed from the logged rows; the shuffling generator is advanced by one permutation per
    finished epoch; the Monitor gets the rows written before, so its files continue the old ones."""
    epoch = int(rp.payload.get("epoch", 0))
    rows = {int(r["epoch"]): r for r in rp.rows if isinstance(r.get("epoch"), float)}
    for _ in range(1, epoch + 1):  # one permutation per finished epoch
        torch.randperm(n_train, generator=gen)
    with warnings.catch_warnings():  # replaying the schedule steps it before any optimizer step
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for e in range(1, epoch):  # the schedule's state (and a switch to SGD) before the last epoch
            scheduler = _end_epoch(state, scheduler, rows[e], None)
        # the checkpoint of epoch K was written before epoch K's schedule step, as in the loop
        state.model.load_state_dict(rp.payload["model_state_dict"])
        state.optimizer.load_state_dict(rp.payload["optimizer_state_dict"])
        mon.use_optimizer(state.optimizer)
        state.epoch, state.step = epoch, int(rp.payload.get("step", 0))
        mon.restore(rp.rows, rp.sharpness_rows, epoch=state.epoch, step=state.step)
        if epoch >= 1:
            scheduler = _end_epoch(state, scheduler, rows[epoch], mon)
    return scheduler


def _results(row: Dict[str, float]) -> Dict[str, float]:
    return {k: row[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}


def _log_row(state: TrainState, ds: Dataset, train_loss: float, train_acc: float) -> Dict[str, float]:
    cfg = state.config
    test = Objective(state.model, ds.x_test, ds.y_test, loss=cfg.loss, batch_size=cfg.eval_batch_size).evaluate()
    if state.epoch == 0:
        init = Objective(state.model, ds.x_train, ds.y_train, loss=cfg.loss,
                         batch_size=cfg.eval_batch_size).evaluate()
        train_loss, train_acc = init.loss, init.acc
    lr = state.optimizer.param_groups[0]["lr"]
    return {"epoch": state.epoch, "step": state.step, "train_loss": train_loss, "train_acc": train_acc,
            "test_loss": test.loss, "test_acc": test.acc, "lr": float(lr)}


def read_log(path: str | Path) -> List[Dict[str, float]]:
    """Read a ``log.csv`` (any columns; numbers parsed as floats)."""
    p = Path(path)
    if not p.is_file():
        raise LandscapeError(f"log not found: {p}")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        parsed = {}
        for k, v in r.items():
            try:
                parsed[k] = float(v)
            except (TypeError, ValueError):
                parsed[k] = v
        out.append(parsed)
    return out
