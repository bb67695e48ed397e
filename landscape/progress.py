"""Progress bars with ETA on stderr (only on rank 0; off with ``LANDSCAPE_PROGRESS=0``).

Two kinds of work are shown:

- loops of known length (checkpoints of a run, grid points): a plain tqdm bar, whose ETA is
  tqdm's own (items left × observed time per item);
- iterative solvers (Lanczos) whose length is not known in advance: :func:`remaining_steps`
  extrapolates the observed convergence — the logarithm of the worst error measure falls
  roughly linearly in the number of products — to the products still needed to reach the
  target, and :class:`ConvergenceBar` shows the worst measure against the target and an ETA
  from that estimate and the observed seconds per product.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Optional, Sequence, Tuple

from tqdm import tqdm


def is_main_process() -> bool:
    try:
        import torch.distributed as dist

        return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
    except Exception:
        return True


def progress(total: Optional[int] = None, desc: str = "", **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr; silent on non-zero ranks or when disabled by the environment."""
    disable = os.environ.get("LANDSCAPE_PROGRESS", "1") == "0" or not is_main_process()
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=disable, dynamic_ncols=True,
                leave=False, **kwargs)


def remaining_steps(history: Sequence[Tuple[int, float]], target: float, *,
                    window: int = 6) -> Optional[float]:
    """Products still needed for the error measure to reach ``target``, or None if unknown.

    ``history`` holds ``(products so far, worst error measure)`` pairs in order. The slope of
    log(measure) against products is fitted by least squares over the last ``window`` finite,
    positive points; a measure that is not falling (slope ≥ 0) gives None rather than a guess.
    """
    if history and 0 < history[-1][1] <= target:
        return 0.0
    pts = [(float(n), math.log(w)) for n, w in history if w > 0 and math.isfinite(w)][-window:]
    if len(pts) < 2 or target <= 0:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    slope = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    if slope >= 0:
        return None
    return max(0.0, (math.log(target) - pts[-1][1]) / slope)


def format_seconds(s: Optional[float]) -> str:
    """``h:mm:ss`` / ``m:ss`` for an ETA, ``?`` when unknown."""
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class ConvergenceBar:
    """A progress bar for iterative solvers: products done, the worst error measure against
    its target and an ETA (``phase: 37hvp, worst bound 3.1e-04 → 1e-04, ETA 0:42``).

    Call :meth:`update` with each solver report (products so far in this phase, the worst
    relative measure, the target); :meth:`tick` counts products of phases that report nothing.
    """

    def __init__(self, desc: str = "Hessian-vector products", unit: str = "hvp") -> None:
        self.bar = progress(None, desc=desc, unit=unit)
        self.phase = desc
        self.offset = 0         # products of earlier phases
        self.done = 0
        self.history: list = []
        self.t_phase = time.perf_counter()

    def __enter__(self) -> ConvergenceBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()

    def _set_phase(self, phase: str) -> None:
        if phase != self.phase:
            self.phase = phase
            self.offset = self.done
            self.history = []
            self.t_phase = time.perf_counter()
            self.bar.set_description(phase, refresh=False)
            self.bar.set_postfix_str("", refresh=False)

    def tick(self, phase: str, n: int) -> None:
        """``n`` more products in ``phase``."""
        self._set_phase(phase)
        self.done += n
        self.bar.update(n)

    def update(self, phase: str, products: int, worst: float, target: float, what: str = "bound") -> None:
        """A solver report: ``products`` so far in ``phase``, its worst relative ``what``."""
        self._set_phase(phase)
        self.history.append((products, worst))
        left = remaining_steps(self.history, target)
        elapsed = time.perf_counter() - self.t_phase
        per = elapsed / products if products else None
        eta = left * per if (left is not None and per is not None) else None
        self.bar.set_postfix_str(f"worst {what} {worst:.2g} → {target:.2g}, ETA {format_seconds(eta)}",
                                 refresh=True)
