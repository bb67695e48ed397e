"""The Objective: a model, its buffers, an evaluation set and a loss, as a function of the weights.

Every instrument (Hessian, slices, sharpness, probes) evaluates the loss through this one object.
It owns a private copy of the model (so the caller's model is never changed: not its mode, weights,
gradients or BatchNorm buffers) and evaluates it with :func:`torch.func.functional_call` at any
flat parameter vector ``theta``:

    L(θ) = (1/N) Σ_i ℓ(f(x_i; θ), y_i)

over the whole evaluation set, batch by batch, with the exact 1/N weighting even when the last
batch is shorter. Gradients use :func:`torch.func.grad`; Hessian-vector products use
forward-over-reverse differentiation (``jvp`` of ``grad``), or double backward as a fallback.

BatchNorm: ``bn_mode="eval"`` (default) uses the stored running statistics. ``bn_mode="train"``
uses each batch's own statistics with the fixed batch split (the objective that training
minimised, as in the edge-of-stability literature); running statistics are never updated.

Data: tensors ``x, y`` (moved to the device once), or any re-iterable of ``(x, y)`` batches such
as a DataLoader without shuffling, which is streamed to the device batch by batch on every pass
(never held there all at once; its batches define the batch split). Each streamed batch is
fingerprinted on the first pass and checked on every later one, so a loader that shuffles or
augments is refused with a clear error instead of giving a different function at every call.

Loss: a name (:mod:`landscape.losses`), an ``nn.Module`` criterion or a callable
``loss(output, y)`` with mean reduction; ``output_fn`` picks the logits from models returning
tuples, dicts or Hugging Face-style outputs (default: the tensor itself, a mapping's or an
object's ``logits``, or the first tensor of a tuple).

Under ``torch.distributed`` (torchrun) the fixed batches are dealt out to the ranks and every sum
is all-reduced, so each rank returns the single-process result (``shard=False`` keeps the whole
set on every rank, for callers that split other work, such as grid points, across ranks).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, jvp

from . import distributed as dist
from .errors import LandscapeError, SpecError
from .losses import LossFn, LossSpec, check_mean_reduction, check_targets, resolve_loss
from .params import ParamSpace

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)
Batch = Tuple[torch.Tensor, torch.Tensor]
OutputFn = Callable[[Any], torch.Tensor]
_PROBE = 8  # samples of the first batch run once at construction to check outputs and labels


@dataclass(frozen=True)
class Evaluation:
    """Mean loss and accuracy over an evaluation set of ``n`` samples (accuracy NaN where the
    labels are not classes)."""

    loss: float
    acc: float
    n: int

    def to_json(self) -> dict:
        return {"loss": self.loss, "acc": self.acc, "n": self.n}


def default_output(out: Any) -> torch.Tensor:
    """The logits in a model's output: the tensor itself, ``out["logits"]`` / ``out.logits``
    (dicts, Hugging Face ``ModelOutput``), or the first tensor of a tuple or list."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        if "logits" in out:
            return out["logits"]
        raise LandscapeError(f"the model returned a mapping with keys {list(out)[:6]} and no 'logits'; "
                             "pass output_fn=... to pick the output the loss is computed on")
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, (tuple, list)):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    raise LandscapeError(f"the model returned {type(out).__name__}, not a tensor; pass output_fn=... "
                         "to pick the output the loss is computed on")


def _as_batch(item: Any) -> Batch:
    if isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], torch.Tensor) \
            and isinstance(item[1], torch.Tensor):
        return item[0], item[1]
    raise SpecError(f"each batch of the data must be a pair (x, y) of tensors; got {type(item).__name__}")


def _first_nonfinite(x: torch.Tensor) -> Optional[int]:
    """Index of the first sample of ``x`` holding a NaN/Inf (None if all finite)."""
    if not x.is_floating_point() and not x.is_complex():
        return None
    chunk = 4096  # bounded temporary memory on large sets; one host sync per chunk
    for a in range(0, len(x), chunk):
        bad = ~torch.isfinite(x[a:a + chunk].reshape(min(chunk, len(x) - a), -1)).all(dim=1)
        if bool(bad.any()):
            return a + int(bad.nonzero()[0, 0])
    return None


def _fingerprint(x: torch.Tensor, y: torch.Tensor) -> Tuple[int, float, float]:
    """A cheap summary of a batch as the data yields it, compared across passes."""
    xs = 0.0 if x.is_complex() else float(x.detach().double().sum())
    return int(len(y)), xs, float(y.detach().double().sum())


class _Stream:
    """A re-iterable of ``(x, y)`` batches, checked to yield the same batches on every pass."""

    def __init__(self, data: Iterable, check: Callable[[int, torch.Tensor, torch.Tensor], None]) -> None:
        if iter(data) is data:
            raise SpecError("the data is a one-shot iterator; pass something re-iterable (a DataLoader, "
                            "a list of (x, y) batches) so every evaluation sees the same batches")
        self.data = data
        prints: List[Tuple[int, float, float]] = []
        for i, item in enumerate(data):
            xb, yb = _as_batch(item)
            if len(xb) != len(yb):
                raise SpecError(f"batch {i} of the data has {len(xb)} inputs but {len(yb)} labels")
            check(i, xb, yb)
            prints.append(_fingerprint(xb, yb))
        self.prints = prints
        self.n = sum(p[0] for p in prints)
        self.batch_size = max((p[0] for p in prints), default=0)
        if prints:  # a shuffling loader differs already in its first batch
            xb, yb = _as_batch(next(iter(data)))
            self._compare(0, _fingerprint(xb, yb))
        self._host: Optional[Batch] = None

    def _compare(self, i: int, got: Tuple[int, float, float]) -> None:
        want = self.prints[i] if i < len(self.prints) else None
        same = want is not None and got[0] == want[0] and all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (a != a and b != b) for a, b in zip(got[1:], want[1:]))
        if not same:
            raise LandscapeError(f"the data gave a different batch {i} on a second pass: it is not deterministic "
                                 "(shuffling or random augmentation); pass a loader with shuffle=False and "
                                 "deterministic transforms, or tensors")

    def __iter__(self) -> Iterator[Batch]:
        count = 0
        for i, item in enumerate(self.data):
            xb, yb = _as_batch(item)
            self._compare(i, _fingerprint(xb, yb))
            count += 1
            yield xb, yb
        if count != len(self.prints):
            raise LandscapeError(f"the data gave {count} batches on this pass but {len(self.prints)} on the "
                                 "first: it is not deterministic")

    def host_tensors(self, dtype: torch.dtype) -> Batch:
        """All samples concatenated in host memory (floating inputs in ``dtype``), for
        instruments that index single samples."""
        if self._host is None:
            xs, ys = zip(*((xb.detach().cpu(), yb.detach().cpu()) for xb, yb in self))
            x = torch.cat(xs)
            self._host = (x.to(dtype) if x.is_floating_point() else x, torch.cat(ys))
        return self._host


class Objective:
    """Loss, accuracy, gradient and Hessian-vector products of a model over a fixed data set.

    Args:
        model: the network; copied, never modified.
        x, y: the evaluation set as tensors (moved to ``device``; floating ``x`` cast to ``dtype``),
            or ``x`` a re-iterable of ``(x, y)`` batches (a DataLoader without shuffling) and ``y``
            omitted: streamed to the device batch by batch, its order checked on every pass.
        loss: ``ce``, ``mse``, ``mse-sum`` or ``mse-softmax`` (see :mod:`landscape.losses`), an
            ``nn.Module`` criterion (``reduction="mean"``) or a callable ``loss(output, y)``
            returning the batch mean.
        output_fn: maps the model's output to the tensor the loss takes (default
            :func:`default_output`: the tensor, ``logits`` of a dict/HF output, or a tuple's first).
        batch_size: samples per forward pass for tensor data (affects speed only, except with
            ``bn_mode="train"``); a loader's own batches are used as they come.
        bn_mode: ``"eval"`` (running statistics) or ``"train"`` (per-batch statistics).
        device, dtype: where and in which precision to compute (default: the model's).
        shard: under torch.distributed, split the batches across ranks and all-reduce.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from landscape import Objective
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        >>> x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
        >>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=6)
        >>> obj = Objective(model, loader, loss=nn.CrossEntropyLoss(label_smoothing=0.1))
        >>> obj.n, obj.dim
        (20, 67)
        >>> same = Objective(model, x, y, loss=nn.CrossEntropyLoss(label_smoothing=0.1), batch_size=6)
        >>> abs(obj.evaluate().loss - same.evaluate().loss) < 1e-6
        True
    """

    def __init__(self, model: nn.Module, x: Any, y: Optional[torch.Tensor] = None, *, loss: LossSpec = "ce",
                 output_fn: Optional[OutputFn] = None, batch_size: int = 1024, bn_mode: str = "eval",
                 device: Optional[torch.device | str] = None,
                 dtype: Optional[torch.dtype] = None, shard: bool = True) -> None:
        if bn_mode not in ("eval", "train"):
            raise ValueError("bn_mode must be 'eval' or 'train'")
        if not isinstance(model, nn.Module):
            raise SpecError(f"model must be an nn.Module; got {type(model).__name__}")
        if int(batch_size) < 1:
            raise SpecError(f"batch size must be at least 1; got {batch_size}")
        ref = next(iter(model.parameters()), None)
        self.device = torch.device(device) if device is not None else (ref.device if ref is not None else torch.device("cpu"))
        self.dtype = dtype or (ref.dtype if ref is not None and ref.is_floating_point() else torch.float32)
        self.model = _private_copy(model, bn_mode).to(device=self.device, dtype=self.dtype)
        self.space = ParamSpace.from_model(self.model)
        if self.space.size == 0:
            raise SpecError(f"the model ({type(model).__name__}) has no trainable parameters "
                            "(none with requires_grad=True): there is no landscape to measure")
        trainable = dict(self.model.named_parameters())
        self.theta0 = self.space.flatten({n: trainable[n].detach() for n in self.space.names}).clone()
        # Constants passed to functional_call: buffers and any frozen parameters.
        self._consts: Dict[str, torch.Tensor] = {n: b for n, b in self.model.named_buffers()}
        self._consts.update({n: p.detach() for n, p in trainable.items() if n not in self.space.names})
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.loss_fn: LossFn = resolve_loss(loss)
        self.loss_name = self.loss_fn.name
        self._sum_loss = self.loss_fn.sum
        self.output_fn: OutputFn = output_fn or default_output
        self.bn_mode = bn_mode
        self.batch_size = int(batch_size)
        self.shard = bool(shard)
        self.hvp_count = 0
        self._finite_ok: Optional[torch.Tensor] = None
        self._probe_done = False
        self._set_data(x, y)

    # ------------------------------------------------------------------ data
    def _set_data(self, x: Any, y: Optional[torch.Tensor]) -> None:
        if y is None and isinstance(x, (tuple, list)) and len(x) == 2 and all(isinstance(t, torch.Tensor) for t in x):
            x, y = x
        self._stream: Optional[_Stream] = None
        if y is None:
            if isinstance(x, torch.Tensor):
                raise SpecError("pass labels y with the inputs x, or a re-iterable of (x, y) batches")
            self._x = self._y = None
            self._stream = _Stream(x, self._check_batch)
            self.n = self._stream.n
            if self.n == 0:
                raise SpecError("the evaluation data is empty (no samples)")
            count = len(self._stream.prints)
            bounds = [(i, i + 1) for i in range(count)]
        else:
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise SpecError("x and y must be tensors (or pass a re-iterable of (x, y) batches as x)")
            if len(x) != len(y):
                raise SpecError(f"x has {len(x)} samples but y has {len(y)}")
            if len(y) == 0:
                raise SpecError("the evaluation data is empty (no samples)")
            self._x = x.to(device=self.device, dtype=self.dtype if x.is_floating_point() else None)
            self._y = y.to(device=self.device)
            self.n = int(len(y))
            self._check_batch(0, self._x, self._y)
            bounds = [(a, min(a + self.batch_size, self.n)) for a in range(0, self.n, self.batch_size)]
        self.sharded = self.shard and dist.world_size() > 1
        # Whole batches go to ranks, so per-batch BatchNorm statistics match one process.
        self.bounds = bounds[dist.rank()::dist.world_size()] if self.sharded else bounds

    def _check_batch(self, index: int, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """Refuse what would give silent nonsense, before any work: non-finite inputs, labels the
        loss misreads; on the very first batch also run the model once on a few samples (it must
        run, give a tensor through ``output_fn``, and a custom loss must be a batch mean)."""
        bad = _first_nonfinite(xb)
        if bad is not None:
            where = f"sample {bad}" + (f" of batch {index}" if self._x is None else "")
            raise SpecError(f"the inputs hold non-finite values (NaN/Inf), first at {where}")
        what = "labels" if self._x is not None else f"labels of batch {index}"
        if not self._probe_done or index == 0:
            xp = xb[:_PROBE].to(device=self.device, dtype=self.dtype if xb.is_floating_point() else None)
            yp = yb[:_PROBE].to(device=self.device)
            try:
                with torch.no_grad():
                    out = self.forward(self.params(), xp)
            except LandscapeError:
                raise
            except Exception as exc:
                raise SpecError(f"the model cannot run on this data (input shape {tuple(xb.shape[1:])}): "
                                f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
            if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != len(xp):
                raise SpecError(f"output_fn gave {type(out).__name__} {tuple(getattr(out, 'shape', ()))} for "
                                f"{len(xp)} samples; it must return one row per sample")
            self._out_probe = out
            if not self._probe_done:
                check_targets(self.loss_fn, out, yp, what=what)
                with torch.no_grad():
                    check_mean_reduction(self.loss_fn, out, yp)
                self._probe_done = True
        check_targets(self.loss_fn, self._out_probe, yb, what=what)

    @property
    def streamed(self) -> bool:
        """True when the data is a loader streamed batch by batch (not tensors on the device)."""
        return self._stream is not None

    @property
    def x(self) -> torch.Tensor:
        """All inputs (on the device for tensor data; gathered in host memory for a loader)."""
        return self._x if self._stream is None else self._stream.host_tensors(self.dtype)[0]

    @property
    def y(self) -> torch.Tensor:
        """All labels (on the device for tensor data; gathered in host memory for a loader)."""
        return self._y if self._stream is None else self._stream.host_tensors(self.dtype)[1]

    def with_data(self, x: Any, y: Optional[torch.Tensor] = None, *, batch_size: Optional[int] = None,
                  shard: Optional[bool] = None) -> Objective:
        """The same model copy and loss over another data set (e.g. the test split)."""
        other = copy.copy(self)
        other.batch_size = int(batch_size or self.batch_size)
        other.shard = self.shard if shard is None else bool(shard)
        other.hvp_count = 0
        other._set_data(x, y)
        return other

    def with_buffers(self, buffers: Dict[str, torch.Tensor]) -> Objective:
        """The same objective with some buffers (e.g. BatchNorm running statistics) replaced by the
        given tensors, which are used as they are (so the caller may update them in place)."""
        unknown = [n for n in buffers if n not in self._consts]
        if unknown:
            raise KeyError(f"not a buffer of the model: {unknown[0]}")
        other = copy.copy(self)
        other._consts = {**self._consts, **buffers}
        return other

    def batches(self) -> Iterator[Batch]:
        """The fixed batches ``(x_b, y_b)`` on the device, in order (this rank's share when sharded)."""
        if self._stream is None:
            for a, b in self.bounds:
                yield self._x[a:b], self._y[a:b]
            return
        mine = {a for a, _ in self.bounds}
        for i, (xb, yb) in enumerate(self._stream):
            if i in mine:
                yield (xb.to(device=self.device, dtype=self.dtype if xb.is_floating_point() else None,
                             non_blocking=True), yb.to(device=self.device, non_blocking=True))

    def require_finite(self, theta: Optional[torch.Tensor] = None) -> None:
        """Refuse a parameter point holding NaN/Inf, naming the tensor (gradients and curvature
        are undefined there; evaluating the loss is still allowed and gives NaN)."""
        t = self.theta0 if theta is None else theta
        if t is self._finite_ok:
            return
        if not bool(torch.isfinite(t).all()):
            for name, piece in self.space.unflatten(t).items():
                bad = int((~torch.isfinite(piece)).sum())
                if bad:
                    raise LandscapeError(f"parameter {name!r} holds {bad} non-finite value(s) (NaN/Inf): "
                                         "gradients and curvature are undefined there")
        self._finite_ok = t

    # --------------------------------------------------------------- helpers
    @property
    def dim(self) -> int:
        return self.space.size

    def params(self, theta: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Named views of ``theta`` (default: the checkpoint's weights)."""
        return self.space.unflatten(self.theta0 if theta is None else theta)

    def forward(self, params: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Model outputs (through ``output_fn``) at the given named parameters."""
        return self.output_fn(functional_call(self.model, (params, self._consts), (x,)))

    def batch_loss(self, params: Dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """This batch's contribution Σ_{i∈b} ℓ_i / N to the mean loss (differentiable in params)."""
        return self._sum_loss(self.forward(params, x), y) / self.n

    # ----------------------------------------------------------- evaluation
    @torch.no_grad()
    def evaluate(self, theta: Optional[torch.Tensor] = None) -> Evaluation:
        """Mean loss and accuracy over the whole set (one ``.item()`` sync at the end)."""
        params = self.params(theta)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.device)
        for xb, yb in self.batches():
            out = self.forward(params, xb)
            loss_sum += self._sum_loss(out, yb).double()
            correct += _correct(out, yb)
        sums = self._reduce(torch.stack([loss_sum, correct]))
        values = (sums / self.n).tolist()
        return Evaluation(float(values[0]), float(values[1]), self.n)

    def loss(self, theta: Optional[torch.Tensor] = None) -> float:
        return self.evaluate(theta).loss

    def value_and_grad(self, theta: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(L(θ), ∇L(θ))`` as a 0-d tensor and a flat vector (no host sync)."""
        self.require_finite(theta)
        params = self.params(theta)
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        value = torch.zeros((), dtype=self.dtype, device=self.device)
        g_fn = grad_and_value(self.batch_loss)
        for xb, yb in self.batches():
            g, v = g_fn(params, xb, yb)
            total += self.space.flatten(g)
            value += v.detach()
        if self.sharded:
            both = self._reduce(torch.cat([value.reshape(1), total]))
            value, total = both[0], both[1:]
        return value, total

    def grad(self, theta: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.value_and_grad(theta)[1]

    def hvp(self, v: torch.Tensor, theta: Optional[torch.Tensor] = None, *, method: str = "fwd") -> torch.Tensor:
        """Hessian-vector product H(θ)·v over the whole set, for a flat ``v``.

        ``method="fwd"``: forward-over-reverse (``jvp`` of ``grad``), the default;
        ``method="rev"``: double backward (for models torch.func cannot differentiate forward).
        """
        self.require_finite(theta)
        params = self.params(theta)
        tangent = self.space.unflatten(v.to(device=self.device, dtype=self.dtype))
        out = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for xb, yb in self.batches():
            out += self._batch_hvp(params, tangent, xb, yb, method)
        self.hvp_count += 1
        return self._reduce(out)

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks when sharded (identity on one process)."""
        return dist.all_reduce_sum(t) if self.sharded else t

    def _batch_hvp(self, params: Dict[str, torch.Tensor], tangent: Dict[str, torch.Tensor],
                   xb: torch.Tensor, yb: torch.Tensor, method: str) -> torch.Tensor:
        if method == "fwd":
            def g(p: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
                return grad(self.batch_loss)(p, xb, yb)

            _, hv = jvp(g, (params,), (tangent,))
            return self.space.flatten(hv)
        if method == "rev":
            with torch.enable_grad():
                leaves = {k: t.detach().requires_grad_(True) for k, t in params.items()}
                loss = self.batch_loss(leaves, xb, yb)
                gs = torch.autograd.grad(loss, list(leaves.values()), create_graph=True)
                dot = sum((gi * tangent[k]).sum() for gi, k in zip(gs, leaves))
                hv = torch.autograd.grad(dot, list(leaves.values()))
            return torch.cat([h.reshape(-1) for h in hv])
        raise ValueError("method must be 'fwd' or 'rev'")

    def check_determinism(self, theta: Optional[torch.Tensor] = None, *, rtol: float = 1e-6) -> bool:
        """Two evaluations must agree; catches dropout or augmentation left on in the model."""
        a, b = self.evaluate(theta), self.evaluate(theta)
        same = abs(a.loss - b.loss) <= rtol * max(1.0, abs(a.loss)) or (a.loss != a.loss and b.loss != b.loss)
        return bool(same)


def _correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of correct argmax predictions in a batch (class or one-hot/probability labels; NaN
    for labels that are not classes, e.g. regression targets)."""
    if out.dim() < 2:
        return torch.full((), float("nan"), dtype=torch.float64, device=out.device)
    if y.is_floating_point():
        if y.shape != out.shape:
            return torch.full((), float("nan"), dtype=torch.float64, device=out.device)
        y = y.argmax(dim=1)
    return (out.argmax(dim=1) == y).sum().double()


def _private_copy(model: nn.Module, bn_mode: str) -> nn.Module:
    """A deep copy in eval mode; with ``bn_mode="train"`` its BatchNorms use batch statistics only."""
    clone = copy.deepcopy(model)
    clone.eval()
    if bn_mode == "train":
        for m in clone.modules():
            if isinstance(m, _BN_TYPES):
                m.train()
                m.track_running_stats = False
                m.running_mean = None
                m.running_var = None
                m.num_batches_tracked = None
    return clone
