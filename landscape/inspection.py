"""``inspect``: what a checkpoint holds and how well it does (the first thing users run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from .logcheck import fmt_rel
from .session import open_session


@dataclass(frozen=True)
class InspectReport:
    checkpoint: str
    format: str
    architecture: str
    n_params: int
    optimizer: Optional[Dict[str, Any]]
    epoch: Optional[int]
    step: Optional[int]
    train_loss: Optional[float]
    train_acc: Optional[float]
    test_loss: Optional[float]
    test_acc: Optional[float]
    provenance: Dict[str, Any]
    recognised: Optional[Dict[str, Any]] = None
    log_check: Optional[Dict[str, Any]] = None
    sources: Dict[str, str] = field(default_factory=dict)
    notes: Tuple[str, ...] = ()

    def to_json(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["notes"] = list(self.notes)
        return out

    def summary(self) -> str:
        opt = self.optimizer
        if opt:
            bits = [f"lr={opt['lr']:g}" if opt.get("lr") is not None else "lr=?"]
            if opt["type"] == "sgd":
                bits.append(f"momentum={opt['momentum']:g}" + (" nesterov" if opt["nesterov"] else ""))
            elif opt.get("betas"):
                bits.append(f"betas=({opt['betas'][0]:g}, {opt['betas'][1]:g}) eps={opt['eps']:g}")
            bits.append(f"weight_decay={opt['weight_decay']:g}")
            if opt.get("step") is not None:
                bits.append(f"step={opt['step']}")
            opt_line = f"{opt['type']} ({', '.join(bits)})"
        else:
            opt_line = "none stored"
        lines = [
            f"checkpoint   {self.checkpoint} ({self.format})",
            f"model        {self.architecture}, {self.n_params:,} parameters",
        ]
        if self.recognised:
            lines.append(f"recognised   {self.recognised['description']}")
        lines += [
            f"optimizer    {opt_line}",
            f"epoch        {self.epoch if self.epoch is not None else '?'}"
            + (f" (step {self.step})" if self.step is not None else ""),
        ]
        if self.train_loss is not None:
            lines.append(f"train        loss {self.train_loss:.6g}  acc {self.train_acc:.4f}  (n={self.provenance['n_train']})")
            lines.append(f"test         loss {self.test_loss:.6g}  acc {self.test_acc:.4f}  (n={self.provenance['n_test']})")
        else:
            lines.append("data         none given (pass --data to evaluate losses)")
        if any(v not in ("flag", "checkpoint", "default", "default for the data") for v in self.sources.values()):
            lines.append("from         " + ", ".join(f"{k}: {v}" for k, v in self.sources.items()))
        if self.log_check:
            c = self.log_check
            diff = fmt_rel(c["rel_diff"])
            lines.append(f"log check    {c['split']} loss at epoch {c['epoch']:g}: logged {c['logged']:.6g}, "
                         f"recomputed {c['recomputed']:.6g} (rel. diff {diff}, "
                         f"{'consistent' if c['consistent'] else 'INCONSISTENT'})")
        lines += [f"note         {n}" for n in self.notes]
        return "\n".join(lines)


def inspect_checkpoint(checkpoint: str, **session_kwargs: Any) -> InspectReport:
    """Load ``checkpoint`` and report its contents and, where data is known, its losses."""
    s = open_session(checkpoint, need_data=False, **session_kwargs)
    train = s.train.evaluate() if s.train else None
    test = s.test.evaluate() if s.test else None
    ck = s.checkpoint
    arch = s.model_spec.spec if s.model_spec else type(s.model).__name__
    return InspectReport(
        checkpoint=ck.path, format=ck.format, architecture=arch, n_params=s.n_params,
        optimizer=s.optimizer.to_json() if s.optimizer else None, epoch=ck.epoch, step=ck.step,
        train_loss=train.loss if train else None, train_acc=train.acc if train else None,
        test_loss=test.loss if test else None, test_acc=test.acc if test else None,
        provenance=s.provenance(),
        recognised=s.recognition.to_json() if s.recognition else None,
        log_check=s.log_check.to_json() if s.log_check else None,
        sources=dict(s.sources), notes=tuple(s.notes),
    )
