"""The registry of spike hypotheses: each is a function ``fn(EventContext) -> Verdict`` registered
under a name with :func:`hypothesis`; ``probe spikes`` judges every registered one at every event.

The geometric hypotheses are defined in :mod:`landscape.probes.spikes`, the non-landscape causes
(BatchNorm statistics, overconfidence, logging artefacts, period-2, slingshot) in
:mod:`landscape.probes.spike_causes`; both import this module, which imports neither (so the
registry adds no import cycle).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

import torch

from ..checkpoint import load_checkpoint, load_into
from ..session import Session

if TYPE_CHECKING:  # pragma: no cover - types only
    from .spikes import CheckpointProbe

__all__ = ["HYPOTHESES", "EventContext", "Hypothesis", "Verdict", "hypothesis"]


@dataclass(frozen=True)
class Verdict:
    """One hypothesis at one event: ``status`` is supported / not supported / inconclusive /
    not measured; ``numbers`` are the measurements behind it."""

    hypothesis: str
    event_epoch: float
    status: str
    summary: str
    numbers: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"hypothesis": self.hypothesis, "event_epoch": self.event_epoch, "status": self.status,
                "summary": self.summary, "verdict": f"{self.status} — {self.summary}", "numbers": self.numbers}


@dataclass(frozen=True)
class EventContext:
    """What a hypothesis sees: the event, the probes by role, the log, the run folder and the
    session options (so a hypothesis can load checkpoints and measure more, e.g. recompute BN)."""

    epoch: float
    kind: str
    probes: Dict[str, CheckpointProbe]
    log: Tuple[dict, ...]
    run_dir: Path
    checkpoints: Dict[int, Path]
    session_kwargs: dict


Hypothesis = Callable[[EventContext], Verdict]
HYPOTHESES: Dict[str, Hypothesis] = {}


def hypothesis(name: str) -> Callable[[Hypothesis], Hypothesis]:
    """Register a hypothesis test (``fn(EventContext) -> Verdict``) under ``name``."""
    def deco(fn: Hypothesis) -> Hypothesis:
        HYPOTHESES[name] = fn
        return fn
    return deco


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def _theta_of(path: Path, session: Session, trust: bool) -> torch.Tensor:
    ck = load_checkpoint(path, trust=trust)
    model = copy.deepcopy(ck.module) if ck.module is not None else copy.deepcopy(session.model)
    if ck.module is None:
        load_into(model, ck.state_dict, where=str(path))
    named = dict(model.named_parameters())
    obj = session.train
    return obj.space.flatten({n: named[n].detach() for n in obj.space.names}).to(obj.theta0)
