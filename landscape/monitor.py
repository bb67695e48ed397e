"""Monitor: sharpness tracking, a log and checkpoints around test-loss spikes, in any training loop.

Three lines in a plain PyTorch loop::

    mon = Monitor(model, optimizer, train=loader, loss=criterion, out="runs/r1", every=100)
    ...; optimizer.step(); mon.step(loss=loss.item())      # after every optimizer step
    mon.epoch(epoch, test_loss=tl, test_acc=ta)              # after every epoch
    mon.close()

writes, into ``out``, the files every landscape command reads:

- ``sharpness.csv`` (the columns of ``landscape train --track-sharpness``): after the first step
  and every ``every`` steps, λ_max on a fixed subset of ``subset`` training samples, λ₁(P⁻¹H) for
  adaptive optimizers (P read from the live optimizer state), the batch sharpness for mini-batch
  SGD, and the stability threshold of the optimizer in use (measured by
  :class:`landscape.hessian.tracking.SharpnessTracker`);
- ``log.csv``: one row per epoch (``epoch, step, train_loss, train_acc, test_loss, test_acc, lr``);
- ``epoch_XXX.pt`` around test-loss spikes: the last ``keep`` epochs' weights and optimizer state
  are held in CPU memory; when an epoch's test loss is a spike (the rule of
  ``landscape probe spikes``) they are written with the spike epoch and the next ``after`` epochs,
  and the spike is appended to ``spikes.json``. Each checkpoint records the model (registry spec
  when given, else the class path), data spec and loss, so ``landscape probe spikes out/``,
  ``report out/`` and ``sharpness out/`` need as few flags as possible.

It never changes the training: measurements run on a private copy of the model at the live
weights, read the optimizer state without touching it, leave every ``.grad`` as it was, and
restore the random-number state of torch (CPU and CUDA), ``random`` and NumPy afterwards, so the
training loop draws exactly the numbers it would have drawn without the Monitor.

Costs: a measurement is a handful of Hessian-vector products on the subset (warm-started Lanczos;
the ``seconds`` and ``hvps`` columns of ``sharpness.csv`` say how many); memory held is
``keep + 1`` CPU copies of the weights and optimizer state (none with ``spikes=False``) plus the
subset of training samples.
"""

from __future__ import annotations

import copy
import csv
import math
import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .distributed import is_main
from .errors import LandscapeError, SpecError
from .losses import LossSpec, resolve_loss
from .objective import Objective, OutputFn

LOG_COLUMNS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "lr")
Data = Union[Tuple[torch.Tensor, torch.Tensor], Iterable]


@dataclass
class LiveState:
    """What a measurement reads: the live model and optimizer and the position in training."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: int = 0
    epoch: int = 0


# ------------------------------------------------------------------ checkpoints
def checkpoint_payload(model: nn.Module, optimizer: torch.optim.Optimizer, *, epoch: int, step: int,
                       meta: Dict[str, Any]) -> dict:
    """What a checkpoint holds (the live tensors: clone before keeping it)."""
    from .optim import optimizer_type

    return {
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "epoch": epoch,
        "step": step,
        "landscape": {**meta, "optimizer_type": optimizer_type(optimizer)},
    }


def write_payload(path: Path, payload: dict) -> None:
    """Write atomically (temporary file, then rename); a failed write (a full disk shows up as
    torch's ``[enforce fail at inline_container.cc]``) leaves no temporary file behind and is a
    one-line error naming the checkpoint."""
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(payload, tmp)
        tmp.replace(path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise LandscapeError(f"cannot write checkpoint {path} (is the disk full?): {first}") from None


def cpu_clone(obj: Any) -> Any:
    """A deep copy with every tensor detached and moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_clone(v) for v in obj)
    return copy.deepcopy(obj)


def loss_record(loss: LossSpec) -> str:
    """The loss as later commands read it: a registry name where it is one (a default
    ``nn.CrossEntropyLoss()`` is ``ce``), else a description that `--loss` must replace."""
    if isinstance(loss, str):
        return loss
    if type(loss) is nn.CrossEntropyLoss and loss.weight is None and loss.label_smoothing == 0 \
            and loss.reduction == "mean" and loss.ignore_index == -100:
        return "ce"
    return resolve_loss(loss).name


def model_record(model: nn.Module) -> str:
    """``package.module:Class`` of a model whose class can be imported, else its class name."""
    cls = type(model)
    if cls.__module__ not in ("__main__", "builtins") and "<locals>" not in cls.__qualname__:
        return f"{cls.__module__}:{cls.__qualname__}"
    return cls.__qualname__


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel/DataParallel and ``torch.compile`` wrappers (the
    same parameters, state-dict keys without ``module.``/``_orig_mod.``)."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


# ------------------------------------------------------------------ randomness
@contextmanager
def untouched_rng(device: torch.device) -> Iterator[None]:
    """Run a block without consuming random numbers from torch (CPU and this CUDA device),
    ``random`` or NumPy: their states are saved and restored."""
    py_state = random.getstate()
    try:
        import numpy as np

        np_state = np.random.get_state()
    except ImportError:  # pragma: no cover - numpy is a dependency
        np, np_state = None, None
    devices = [device.index or 0] if device.type == "cuda" and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py_state)
            if np is not None:
                np.random.set_state(np_state)


def subset_tensors(data: Data, *, subset: Optional[int], seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A fixed sample of at most ``subset`` training samples as tensors on the host.

    ``(x, y)`` tensors: a seeded random subset. A DataLoader over an indexable dataset: the same
    seeded indices, read from ``loader.dataset`` and collated with the loader's ``collate_fn``
    (the loader itself is never iterated, so its sampler draws nothing). Any other iterable of
    ``(x, y)`` batches: its first batches up to ``subset`` samples."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
        if subset is not None and subset < len(y):
            idx = torch.randperm(len(y), generator=gen)[:subset]
            return x[idx.to(x.device)].cpu(), y[idx.to(y.device)].cpu()
        return x.cpu(), y.cpu()
    dataset = getattr(data, "dataset", None)
    if isinstance(data, torch.utils.data.DataLoader) and dataset is not None and hasattr(dataset, "__getitem__") \
            and hasattr(dataset, "__len__"):
        n = len(dataset)
        idx = torch.randperm(n, generator=gen)[:subset] if subset is not None and subset < n else torch.arange(n)
        collate = data.collate_fn or torch.utils.data.default_collate
        batch = collate([dataset[int(i)] for i in idx])
        return _pair(batch)
    xs, ys, count = [], [], 0
    for item in data:
        xb, yb = _pair(item)
        xs.append(xb.detach().cpu())
        ys.append(yb.detach().cpu())
        count += len(yb)
        if subset is not None and count >= subset:
            break
    if not xs:
        raise SpecError("the training data is empty")
    x, y = torch.cat(xs), torch.cat(ys)
    return (x[:subset], y[:subset]) if subset is not None else (x, y)


def _pair(item: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    if isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], torch.Tensor):
        return item[0], torch.as_tensor(item[1])
    raise SpecError(f"training batches must be pairs (x, y) of tensors; got {type(item).__name__}")


# ------------------------------------------------------------------ the Monitor
class Monitor:
    """Sharpness, log and spike checkpoints for any training loop (see the module docstring).

    Args:
        model, optimizer: the live ones; read, never changed.
        train: the training data, ``(x, y)`` tensors or a DataLoader / iterable of batches; a fixed
            subset of ``subset`` samples is measured (None: all). Needed when ``every > 0``.
        loss: the loss being trained: a name, an ``nn.Module`` criterion or a callable (batch mean).
        out: the run folder.
        every: measure sharpness after the first step and every ``every`` steps (0: never).
        spikes: keep the last ``keep`` epochs in memory and write them, the spike epoch and the next
            ``after`` epochs when the test loss spikes (rule and ``spike_threshold`` of
            ``landscape probe spikes``).
        test: test data, evaluated at each :meth:`epoch` when no ``test_loss`` is passed (model
            in eval mode, on a private copy).
        tensorboard: a folder for TensorBoard scalars (needs the ``tensorboard`` package).
        batch_size: the training batch size (BatchNorm statistics and batch sharpness); default
            the loader's, or the whole set for tensors (full-batch).
        model_spec: a :class:`~landscape.models.ModelSpec` (or registry spec string) recorded in
            checkpoints so later commands rebuild the model without ``--model`` (default: the spec
            of a model made by :func:`landscape.build_model`, else only its class path).
        data: a data spec (e.g. ``"digits"``, ``"cifar10:DIR"``) recorded likewise.
        output_fn: picks the logits from the model's output (see :class:`~landscape.objective.Objective`).
        meta: extra entries for the checkpoints' ``landscape`` record.
        existing: when ``out`` already holds a run (``log.csv``, ``sharpness.csv``, ``spikes.json``,
            checkpoints): ``"refuse"`` (a one-line error, the default: two runs in one folder read as
            one), ``"overwrite"`` (those files are removed first, nothing else) or ``"append"`` (the
            caller manages the folder, e.g. ``landscape train --resume``).

    Example:
        >>> import tempfile, torch
        >>> from torch import nn
        >>> from landscape import Monitor
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> out = tempfile.mkdtemp()
        >>> with Monitor(model, opt, train=(x, y), loss=nn.CrossEntropyLoss(), out=out, every=5,
        ...              batch_size=16) as mon:
        ...     for epoch in range(2):
        ...         for a in range(0, 64, 16):
        ...             opt.zero_grad()
        ...             loss = nn.functional.cross_entropy(model(x[a:a + 16]), y[a:a + 16])
        ...             loss.backward()
        ...             opt.step()
        ...             _ = mon.step(loss=loss.item())    # returns the sharpness.csv row when measured
        ...         _ = mon.epoch(epoch, test_loss=1.0)   # returns the log.csv row
        >>> [(r["step"], r["threshold"], r["on"]) for r in mon.sharpness_rows]
        [(1, 20.0, 'batch sharpness'), (5, 20.0, 'batch sharpness')]
        >>> sorted(p.name for p in __import__("pathlib").Path(out).iterdir())
        ['log.csv', 'sharpness.csv']
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *, train: Optional[Data] = None,
                 loss: LossSpec = "ce", out: Union[str, Path], every: int = 100, subset: Optional[int] = 2048,
                 spikes: bool = True, test: Optional[Data] = None, keep: int = 2, after: int = 1,
                 tensorboard: Optional[Union[str, Path]] = None, batch_size: Optional[int] = None,
                 spike_threshold: float = 5.0, model_spec: Any = None, data: Optional[str] = None,
                 output_fn: Optional[OutputFn] = None, meta: Optional[Dict[str, Any]] = None,
                 seed: int = 0, tol: float = 1e-3, batches: int = 10, eval_batch_size: int = 1024,
                 existing: str = "refuse") -> None:
        if not isinstance(model, nn.Module):
            raise SpecError(f"model must be an nn.Module; got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise SpecError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
        for name, value, low in (("every", every, 0), ("keep", keep, 0), ("after", after, 0)):
            if not isinstance(value, int) or value < low:
                raise SpecError(f"Monitor {name} must be an integer >= {low}; got {value!r}")
        if subset is not None and (not isinstance(subset, int) or subset < 1):
            raise SpecError(f"Monitor subset must be a positive integer or None; got {subset!r}")
        if every > 0 and train is None:
            raise SpecError("Monitor needs train=... (the training data) to measure sharpness; or every=0")
        _claim(Path(out), existing)
        model = unwrap(model)
        self.model, self.optimizer = model, optimizer
        self.loss_fn = resolve_loss(loss)
        self.loss, self.output_fn = loss, output_fn
        self.out = Path(out)
        self.every, self.keep, self.after = every, keep, after
        self.spikes_on, self.test = bool(spikes), test
        self.seed, self.eval_batch_size = int(seed), int(eval_batch_size)
        self.live = LiveState(model, optimizer)
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.batch_size = int(batch_size) if batch_size else getattr(train, "batch_size", None)
        self.spike_cfg = _detector(spike_threshold)
        self.meta = self._meta(model, loss, model_spec, data, meta or {})
        self.history: List[Dict[str, float]] = []
        self.keeper = SpikeKeeper(self.out, keep=keep, after=after, cfg=self.spike_cfg)
        self._eval_objectives: Dict[int, Objective] = {}
        self._loss_sum, self._loss_n = 0.0, 0
        self._closed = False
        self.writer = _summary_writer(tensorboard) if tensorboard is not None else None
        if is_main():
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "log.csv", "w", newline="") as f:
                csv.DictWriter(f, fieldnames=LOG_COLUMNS).writeheader()
        self.tracker = None
        self.subset: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        if every > 0:
            with untouched_rng(self.device):
                self.subset = subset_tensors(train, subset=subset, seed=self.seed)
            self.tracker = self._tracker(tol=tol, batches=batches)

    # ------------------------------------------------------------------ setup helpers
    def _meta(self, model: nn.Module, loss: LossSpec, model_spec: Any, data: Optional[str],
              extra: Dict[str, Any]) -> Dict[str, Any]:
        from .models import ModelSpec

        if model_spec is None:  # built by landscape.build_model: it knows its registry spec
            model_spec = getattr(model, "landscape_spec", None)
        if isinstance(model_spec, str):
            model_spec = ModelSpec(model_spec)
        record: Dict[str, Any] = {
            "model": model_spec.to_json() if isinstance(model_spec, ModelSpec) else model_spec,
            "model_class": model_record(model),
            "data": data,
            "loss": loss_record(loss),
            "batch_size": self.batch_size,
            "writer": "landscape.Monitor",
        }
        record.update(extra)
        return record

    def _tracker(self, *, tol: float, batches: int) -> Any:
        from .hessian.tracking import SharpnessTracker

        x, y = self.subset
        bs = self.batch_size or len(y)
        tracker = SharpnessTracker(self.out, x=x, y=y, loss=self.loss_fn, every=self.every, train_batch_size=bs, subset=None,
                                   batches=batches, seed=self.seed, tol=tol, eval_batch_size=self.eval_batch_size)
        # The tracker's objective: the loss and output_fn being trained, BatchNorm with batch statistics.
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
        eval_bs = min(bs, self.eval_batch_size) if has_bn else self.eval_batch_size
        with untouched_rng(self.device):
            tracker.objective = Objective(self.model, x, y, loss=self.loss_fn, output_fn=self.output_fn,
                                          batch_size=eval_bs, bn_mode="train" if has_bn else "eval",
                                          device=self.device)
        return tracker

    # ------------------------------------------------------------------ training-loop calls
    def step(self, loss: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """Call after every optimizer step (``loss``: that step's mini-batch loss, for the epoch's
        mean train loss). Returns the ``sharpness.csv`` row when this step was measured."""
        self._open()
        self.live.step += 1
        if loss is not None:
            self._loss_sum += float(loss)
            self._loss_n += 1
        if self.tracker is None or not (self.live.step == 1 or self.live.step % self.every == 0):
            return None
        before = [p.grad for p in self.model.parameters()]
        with untouched_rng(self.device), torch.no_grad():
            self.tracker(self.live)
        for p, g in zip(self.model.parameters(), before):
            p.grad = g
        row = self.tracker.rows[-1]
        if self.writer is not None:
            for key in ("lambda_max", "preconditioned_lambda_max", "batch_sharpness", "threshold", "ratio"):
                value = row.get(key)
                if isinstance(value, float) and math.isfinite(value):
                    self.writer.add_scalar(f"sharpness/{key}", value, self.live.step)
        return row

    def epoch(self, epoch: int, *, test_loss: Optional[float] = None, test_acc: Optional[float] = None,
              train_loss: Optional[float] = None, train_acc: Optional[float] = None) -> Dict[str, float]:
        """Call after every epoch: writes the ``log.csv`` row and handles spikes; returns the row.

        ``train_loss`` defaults to the mean of the losses passed to :meth:`step` this epoch;
        ``test_loss``/``test_acc`` are evaluated on ``test`` when not given."""
        self._open()
        self.live.epoch = int(epoch)
        if test_loss is None and self.test is not None:
            ev = self.evaluate(self.test)
            test_loss, test_acc = ev.loss, ev.acc if test_acc is None else test_acc
        if train_loss is None and self._loss_n:
            train_loss = self._loss_sum / self._loss_n
        self._loss_sum, self._loss_n = 0.0, 0
        nan = float("nan")
        row = {"epoch": int(epoch), "step": self.live.step,
               "train_loss": _num(train_loss), "train_acc": _num(train_acc),
               "test_loss": _num(test_loss), "test_acc": _num(test_acc),
               "lr": float(self.optimizer.param_groups[0].get("lr", nan))}
        self.history.append(row)
        if is_main():
            with open(self.out / "log.csv", "a", newline="") as f:
                csv.DictWriter(f, fieldnames=LOG_COLUMNS).writerow(row)
        if self.writer is not None:
            for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
                if math.isfinite(row[key]):
                    self.writer.add_scalar(f"epoch/{key}", row[key], int(epoch))
        if self.spikes_on:
            self._spikes(int(epoch))
        return row

    def evaluate(self, data: Data) -> Any:
        """Loss and accuracy at the live weights and buffers on ``data`` (model in eval mode).

        The Objective over ``data`` (a private model copy; a loader's batches checked once) is
        built on the first call and then evaluated at the live parameters and BatchNorm buffers."""
        obj = self._eval_objectives.get(id(data))
        if obj is None:
            x, y = (data if isinstance(data, (tuple, list)) and len(data) == 2 else (data, None))
            with untouched_rng(self.device):
                obj = Objective(self.model, x, y, loss=self.loss_fn, output_fn=self.output_fn,
                                batch_size=self.eval_batch_size, device=self.device)
            self._eval_objectives[id(data)] = obj
        live = dict(self.model.named_parameters())
        theta = obj.space.flatten({n: live[n].detach() for n in obj.space.names}).to(obj.dtype)
        buffers = {n: b.detach() for n, b in self.model.named_buffers() if n in obj._consts}
        with untouched_rng(self.device):
            return obj.with_buffers(buffers).evaluate(theta)

    def save(self, name: Optional[str] = None) -> Path:
        """Write the live weights and optimizer state now (``epoch_XXX.pt`` of the last epoch)."""
        path = self.out / (name or f"epoch_{self.live.epoch:03d}.pt")
        if is_main():
            write_payload(path, self.payload())
        return path

    def payload(self) -> dict:
        """The checkpoint of the live state (live tensors; see :func:`checkpoint_payload`)."""
        return checkpoint_payload(self.model, self.optimizer, epoch=self.live.epoch, step=self.live.step,
                                  meta=self.meta)

    def restore(self, rows: Sequence[Dict[str, float]], sharpness_rows: Sequence[Dict[str, Any]], *,
                epoch: int, step: int) -> None:
        """Continue a run written before (``landscape train --resume``): its ``log.csv`` rows and
        ``sharpness.csv`` rows up to the resume point are kept, and counting goes on from
        ``epoch``/``step``. Spike detection sees the old rows; the in-memory window starts empty."""
        self._open()
        self.live.epoch, self.live.step = int(epoch), int(step)
        self.history = [dict(r) for r in rows]
        if not is_main():
            return
        with open(self.out / "log.csv", "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS, extrasaction="ignore")
            for r in rows:
                writer.writerow({k: (int(r[k]) if k in ("epoch", "step") else r.get(k)) for k in LOG_COLUMNS})
        if self.tracker is not None and sharpness_rows:
            self.tracker.restore(sharpness_rows)

    def use_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Follow a new optimizer from now on (e.g. after switching from Adam to SGD)."""
        self.optimizer = self.live.optimizer = optimizer

    def close(self) -> None:
        """Flush and close (TensorBoard); further calls to :meth:`step`/:meth:`epoch` are refused."""
        if self.writer is not None:
            self.writer.close()
        self._closed = True

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def spikes(self) -> List[dict]:
        """The test-loss spikes seen so far (also in ``spikes.json``)."""
        return self.keeper.spikes

    @property
    def saved(self) -> List[int]:
        """Epochs whose checkpoints were written because of a spike."""
        return self.keeper.saved

    @property
    def sharpness_rows(self) -> List[Dict[str, Any]]:
        """The rows written to ``sharpness.csv`` so far."""
        return list(self.tracker.rows) if self.tracker is not None else []

    # ------------------------------------------------------------------ internals
    def _open(self) -> None:
        if self._closed:
            raise LandscapeError("this Monitor is closed")

    def _spikes(self, epoch: int) -> None:
        """Keep this epoch in memory; on a spike write the kept ones, this one and the next ``after``."""
        self.keeper.observe(epoch, cpu_clone(self.payload()), [float(r["test_loss"]) for r in self.history])


class SpikeKeeper:
    """Checkpoints around test-loss spikes, the one implementation (Monitor, ``landscape train
    --save-around-spikes``, :class:`landscape.probes.spikes.SpikeSaver`).

    :meth:`observe` is called once per epoch with that epoch's checkpoint (already copied) and
    the test losses so far. The last ``keep`` epochs are held in memory; when the newest test loss
    is a spike by :func:`landscape.probes.detection.is_spike`, they are written with the current one
    as ``epoch_XXX.pt`` (files already there are kept), then the next ``after`` epochs too, and the
    spike is appended to ``spikes.json``. Memory: ``keep + 1`` checkpoints.
    """

    def __init__(self, out_dir: Union[str, Path], *, keep: int = 2, after: int = 1, cfg: Any = None) -> None:
        self.out = Path(out_dir)
        self.keep, self.after = int(keep), int(after)
        self.cfg = cfg if cfg is not None else _detector(5.0)
        self.window: List[Tuple[int, dict]] = []
        self.pending = 0
        self.spikes: List[dict] = []
        self.saved: List[int] = []

    def observe(self, epoch: int, payload: dict, test_losses: List[float]) -> Optional[dict]:
        """Handle one finished epoch; returns the spike record when this epoch is one."""
        from .probes.detection import is_spike

        self.window.append((epoch, payload))
        if self.pending > 0:
            self._write(epoch, payload)
            self.pending -= 1
        hit = is_spike(test_losses, len(test_losses) - 1, cfg=self.cfg) if test_losses else None
        spike = None
        if hit is not None:
            base, _, score = hit
            spike = {"epoch": epoch, "test_loss": test_losses[-1], "baseline": base, "score": score}
            self.spikes.append(spike)
            for e, p in self.window:
                self._write(e, p)
            self.pending = self.after
            if is_main():
                import json

                (self.out / "spikes.json").write_text(json.dumps(
                    [{k: (v if math.isfinite(v) else str(v)) if isinstance(v, float) else v for k, v in s.items()}
                     for s in self.spikes], indent=2) + "\n")
        self.window = self.window[-self.keep:] if self.keep > 0 else []
        return spike

    def _write(self, epoch: int, payload: dict) -> None:
        path = self.out / f"epoch_{epoch:03d}.pt"
        if not path.exists() and is_main():
            write_payload(path, payload)
            self.saved.append(epoch)


RUN_FILE_PATTERNS = ("log.csv", "sharpness.csv", "spikes.json", "epoch_*.pt", "step_*.pt", "*.tmp")


def run_files(folder: Path) -> List[Path]:
    """The files of a landscape run in ``folder`` (what ``--overwrite`` removes)."""
    if not folder.is_dir():
        return []
    found = {p for pattern in RUN_FILE_PATTERNS for p in folder.glob(pattern) if p.is_file()}
    return sorted(found)


def _claim(out: Path, existing: str) -> None:
    """Refuse, clear or keep a folder that already holds a run (see ``Monitor(existing=...)``)."""
    if existing not in ("refuse", "overwrite", "append"):
        raise SpecError(f"existing must be refuse, overwrite or append; got {existing!r}")
    if existing == "append" or not is_main():
        return
    files = run_files(out)
    if files and existing == "refuse":
        raise LandscapeError(f"{out} already holds a run ({', '.join(sorted(p.name for p in files)[:4])}"
                             f"{', ...' if len(files) > 4 else ''}); pass existing='overwrite' to replace it, "
                             "or choose another out")
    for p in files:
        p.unlink()


def _num(value: Optional[float]) -> float:
    return float("nan") if value is None else float(value)


def _detector(threshold: float) -> Any:
    from .probes.detection import DetectorConfig

    return DetectorConfig(threshold=float(threshold))


def _summary_writer(folder: Union[str, Path]) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as exc:  # tensorboard is optional
        raise SpecError(f"tensorboard={str(folder)!r} needs the tensorboard package ({type(exc).__name__}); "
                        "pip install tensorboard, or leave tensorboard=None") from None
    return SummaryWriter(str(folder))


__all__ = ["LOG_COLUMNS", "LiveState", "Monitor", "SpikeKeeper", "checkpoint_payload", "cpu_clone", "loss_record",
           "model_record", "subset_tensors", "untouched_rng", "unwrap", "write_payload"]
