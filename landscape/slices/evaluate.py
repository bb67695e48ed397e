"""Evaluating a slice's points: the weights of a point, the loss through the shared Objective, the
loop over points (split across ranks), and how points are evaluated (layout and batch size).

Speed: the data and the directions stay on the device, the weights of a point are written into
one preallocated flat vector that the Objective reads through views (no model copy, no reading
directions back from disk), and 4-D inputs are evaluated in ``channels_last`` memory format when the
model accepts it (about 2× faster for convolutions on CPU).

Determinism: the evaluation batch size changes the order of the floating-point sums, so it is
chosen by a fixed rule (:func:`choose_eval_config`), never by timing unless asked for, and stored in
the file; a resumed run evaluates exactly as the first one did.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import distributed as dist
from ..directions import DirectionSet
from ..errors import Field, OptionError
from ..objective import Objective
from ..progress import progress

DEFAULT_EVAL_BATCH = 256
"""Batch size of the point evaluations when none is given (BatchNorm in eval mode). A fixed number,
so the same command gives the same bits on any load; small batches were as fast as or faster than
1,024 for convolutions on CPU (see shared measurements), and it bounds the activation memory."""


class PointEvaluator:
    """Loss and accuracy of each objective at ``θ_c + Σ_j c_j·d_j`` (buffers likewise, if moving).

    Holds one preallocated flat weight vector (and buffer tensors) that every point overwrites in
    place; the objectives read them through views, so nothing is copied per point. Running
    variances are clamped at 0 when extrapolated buffers would make them negative.
    """

    def __init__(self, objectives: Sequence[Objective], centre: torch.Tensor, directions: DirectionSet,
                 *, centre_buffers: Optional[Mapping[str, torch.Tensor]] = None) -> None:
        self.centre = centre
        self.vectors = directions.vectors.to(device=centre.device, dtype=centre.dtype)
        self.theta = centre.clone()
        self.buffer_vectors = dict(directions.buffer_vectors)
        self.centre_buffers = {n: centre_buffers[n] for n in self.buffer_vectors} if self.buffer_vectors else {}
        self.buffers = {n: b.clone() for n, b in self.centre_buffers.items()}
        self.objectives = [o.with_buffers(self.buffers) if self.buffers else o for o in objectives]

    @torch.no_grad()
    def set_point(self, c: Sequence[float]) -> torch.Tensor:
        """Write ``θ_c + Σ_j c_j·d_j`` (and the moved buffers) into the preallocated tensors."""
        torch.add(self.centre, self.vectors[0], alpha=float(c[0]), out=self.theta)
        for j in range(1, len(c)):
            self.theta.add_(self.vectors[j], alpha=float(c[j]))
        for n, b in self.buffers.items():
            torch.add(self.centre_buffers[n], self.buffer_vectors[n][0], alpha=float(c[0]), out=b)
            for j in range(1, len(c)):
                b.add_(self.buffer_vectors[n][j], alpha=float(c[j]))
            if n.endswith("running_var"):
                b.clamp_min_(0.0)
        return self.theta

    def point(self, c: Sequence[float]) -> np.ndarray:
        """``[loss, acc]`` per objective at coordinates ``c`` (float64)."""
        theta = self.set_point(c)
        out = []
        for o in self.objectives:
            ev = o.evaluate(theta)
            out += [ev.loss, ev.acc]
        return np.asarray(out, dtype=np.float64)


def compute_points(evaluator: PointEvaluator, coords: np.ndarray,
                   indices: Sequence[int]) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(index, values)`` for the given flat point indices, one point at a time."""
    for i in indices:
        yield int(i), evaluator.point(coords[int(i)])


def run_points(evaluator: PointEvaluator, coords: np.ndarray, todo: Sequence[int],
               sink: Callable[[int, np.ndarray], None], *, desc: str = "slice") -> None:
    """Compute the points ``todo``, split across ranks; rank 0 hands each result to ``sink``.

    Rank ``r`` computes ``todo[r::W]``; every round each rank computes one point and the results
    are gathered to rank 0 (which writes), so a killed run loses at most one round.
    """
    world = dist.world_size()
    mine = dist.shard(list(todo))
    rounds = math.ceil(len(todo) / world) if todo else 0
    bar = progress(total=len(todo), desc=desc)
    try:
        gen = compute_points(evaluator, coords, mine)
        for _ in range(rounds):
            res = next(gen, None)
            parts = dist.gather_objects(res) if world > 1 else [res]
            if dist.is_main():
                done = [p for p in parts if p is not None]
                for i, vals in done:
                    sink(i, vals)
                bar.update(len(done))
                if done:
                    bar.set_postfix(loss=f"{done[-1][1][0]:.4g}", refresh=False)
    finally:
        bar.close()


# ------------------------------------------------------------------ how points are evaluated
@dataclass(frozen=True)
class EvalConfig:
    """How points are evaluated: input memory layout and batch size (speed only in BN eval mode,
    but the batch size changes the last bits of the sums, so it is fixed per file).

    Chosen once when a file is created and stored in it, so a resumed run evaluates exactly as
    the first one did. ``rule``: how the batch size was chosen; ``timings``: seconds per pass over
    up to 1,024 samples per batch size tried (only for the opt-in ``"auto"``).
    """

    channels_last: bool
    batch_size: int
    timings: Dict[int, float] = field(default_factory=dict)
    rule: str = ""

    def to_json(self) -> dict:
        out = {"channels_last": self.channels_last, "eval_batch_size": self.batch_size,
               "batch_timings": {str(k): v for k, v in self.timings.items()}}
        if self.rule:
            out["eval_batch_rule"] = self.rule
        return out


def check_batch_size(value: object, *, name: str = Field("eval_batch_size")) -> int:
    """A positive integer batch size, else a one-line error (0 and negatives give empty sums)."""
    try:
        ok = float(value) == int(value) and int(value) >= 1  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or isinstance(value, bool):
        raise OptionError("{name} must be a positive integer (got {value!r})", name=name, value=value)
    return int(value)  # type: ignore[arg-type]


def choose_eval_config(obj: Objective, *, channels_last: Optional[bool] = None,
                       batch_size: Optional[int | str] = None) -> EvalConfig:
    """``channels_last`` for 4-D inputs when the model gives the same outputs with it (``None``)
    or as told; ``batch_size``: an int (as given), ``None`` (the fixed rule: the objective's batch
    size with BatchNorm in train mode, where the batch split is part of the objective, else
    ``min(n, DEFAULT_EVAL_BATCH)``) or ``"auto"`` (opt-in: the fastest of 128, 256, 512, 1,024 over
    the first 1,024 samples by timing, so the bits of the result may depend on the load)."""
    cl = obj.x.dim() == 4 and channels_last is not False and _channels_last_ok(obj)
    if channels_last and not cl:
        warnings.warn("the model does not run on channels_last inputs; using the default layout", stacklevel=2)
    if obj.bn_mode == "train":
        return EvalConfig(cl, obj.batch_size, rule="objective batch size (BatchNorm train mode)")
    if batch_size is None:
        return EvalConfig(cl, max(1, min(obj.n, DEFAULT_EVAL_BATCH)), rule=f"fixed: min(n, {DEFAULT_EVAL_BATCH})")
    if batch_size != "auto":
        return EvalConfig(cl, check_batch_size(batch_size), rule="given")
    m = min(obj.n, 1024)
    x = obj.x[:m].contiguous(memory_format=torch.channels_last) if cl else obj.x[:m]
    sizes = sorted({b for b in (128, 256, 512) if b < m} | {m})
    timings = {}
    for i, b in enumerate(sizes):
        probe = obj.with_data(x, obj.y[:m], batch_size=b, shard=False)
        if i == 0:
            probe.evaluate()  # warm-up
        t = time.perf_counter()
        probe.evaluate()
        timings[b] = time.perf_counter() - t
    best = min(timings, key=timings.get)
    return EvalConfig(cl, best if best < m else max(best, obj.batch_size), timings, rule="auto: fastest by timing")


def prepare_objectives(objectives: Sequence[Objective], config: EvalConfig) -> List[Objective]:
    """Copies of the objectives for point evaluation with ``config``; the whole data set on every
    rank (points, not data, are split across ranks)."""
    out = []
    for o in objectives:
        x = o.x.contiguous(memory_format=torch.channels_last) if config.channels_last and o.x.dim() == 4 else o.x
        out.append(o.with_data(x, o.y, batch_size=config.batch_size, shard=False))
    return out


def _channels_last_ok(o: Objective) -> bool:
    try:
        with torch.no_grad():
            p = o.params()
            xb = o.x[:4]
            a = o.forward(p, xb)
            b = o.forward(p, xb.contiguous(memory_format=torch.channels_last))
        return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
    except Exception:
        return False


# ------------------------------------------------------------------ allocator
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_STEADY: List[bool] = []


def steady_allocator(*, trim: int = 256 << 20, mmap: int = 32 << 20) -> bool:
    """Keep freed heap memory in the process (glibc ``mallopt``), so every point reuses the
    activation memory of the previous one instead of returning it to the OS and faulting it in
    again (page faults were most of a resumed run's extra time: glibc's thresholds adapt to the
    first large blocks freed, which differed between a fresh run and a resumed one).

    Process-wide and idempotent; a no-op (False) where the C library has no ``mallopt`` or with
    ``LANDSCAPE_STEADY_ALLOCATOR=0`` in the environment (used by ``benchmarks/slice_resume.py``).
    """
    if _STEADY:
        return _STEADY[0]
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("LANDSCAPE_STEADY_ALLOCATOR", "1") != "0":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            fn = libc.mallopt
            fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = bool(fn(_M_MMAP_THRESHOLD, int(mmap))) and bool(fn(_M_TRIM_THRESHOLD, int(trim)))
        except (OSError, AttributeError):
            ok = False
    _STEADY.append(ok)
    return ok
