"""A training run folder, read once: its checkpoints in training order, its log, its metadata.

Every command that is given a folder reads it through :func:`open_run`, so all of them agree on
which checkpoints a run has and in which order:

- **Checkpoints** are the files with a checkpoint suffix in the folder or in a ``checkpoints/``
  (``checkpoint/``, ``ckpt/``, ``ckpts/``) subfolder. Their position in training is parsed from
  the name (``epoch_012.pt``, ``ep5.pt``, ``model-ep20.pth``, ``step_000500.pt``,
  ``epoch=3-step=900.ckpt``) or, where the name holds no number, read from the file's ``epoch`` /
  ``step`` entries. They are ordered by that number, never by name: ``ep5, ep10, ep20`` is
  5, 10, 20. Files whose position is unknown are listed in :attr:`Run.unordered` and left out.
- **The log**: landscape's ``log.csv`` (one row per epoch), a long-format ``metrics.csv``
  (``epoch,split,loss,accuracy`` rows, split ∈ train/val/test), or any wide CSV with an ``epoch``
  column and ``test_loss``/``val_loss``. All are read into the same wide rows
  (``epoch, train_loss, train_acc, val_loss, val_acc, test_loss, test_acc, ...``).
- **Metadata**: the first of ``config.yaml``, ``config.yml``, ``config.json``, ``args.json``,
  ``hparams.yaml``, ``hparams.yml`` in the folder (or, for a checkpoint in a ``checkpoints/``
  subfolder, in its parent). How its names map to landscape's model/loss/optimizer/data split is
  :func:`run_settings`'s job.
- **Sessions**: :meth:`Run.session_at` opens a checkpoint of the run with its data loaded once
  for the whole run (not once per checkpoint, role or hypothesis).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import LandscapeError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".tar", ".safetensors", ".bin", ".th")
CHECKPOINT_SUBFOLDERS = ("checkpoints", "checkpoint", "ckpt", "ckpts")
CONFIG_FILES = ("config.yaml", "config.yml", "config.json", "args.json", "hparams.yaml", "hparams.yml")
LOG_FILES = ("log.csv", "metrics.csv")
# A number after "epoch"/"ep" (not inside a word: the "ep" of "step_5" is no epoch).
_EPOCH_IN_NAME = re.compile(r"(?<![a-z])(?:epoch|ep)[_\-=]?(\d+)", re.IGNORECASE)
_STEP_IN_NAME = re.compile(r"(?<![a-z])(?:global_step|step|iteration|iter|it)[_\-=]?(\d+)", re.IGNORECASE)
_SPLIT_ALIASES = {"valid": "val", "validation": "val", "eval": "val", "training": "train", "testing": "test"}


@dataclass(frozen=True)
class RunCheckpoint:
    """One checkpoint file of a run and its position in training (``None`` where unknown)."""

    path: Path
    epoch: Optional[int]
    step: Optional[int]

    @property
    def label(self) -> str:
        """``epoch 12``, ``step 500`` or the file name."""
        if self.epoch is not None:
            return f"epoch {self.epoch}"
        return f"step {self.step}" if self.step is not None else self.path.name


@dataclass(frozen=True)
class RunLog:
    """A run's log as wide rows keyed by column name (numbers as floats; ``epoch`` always present)."""

    path: Path
    format: str  # "landscape" (log.csv), "long" (metrics.csv: epoch,split,loss,accuracy), "wide"
    rows: Tuple[Dict[str, Any], ...]

    @property
    def columns(self) -> Tuple[str, ...]:
        seen: Dict[str, None] = {}
        for r in self.rows:
            seen.update(dict.fromkeys(r))
        return tuple(seen)

    def column(self, name: str) -> List[float]:
        """Values of ``name`` by row (NaN where a row lacks it)."""
        return [_as_float(r.get(name)) for r in self.rows]

    def at_epoch(self, epoch: float) -> Optional[Dict[str, Any]]:
        """The (last) row logged for ``epoch``, if any."""
        hits = [r for r in self.rows if _as_float(r.get("epoch")) == float(epoch)]
        return hits[-1] if hits else None


@dataclass(frozen=True)
class RunConfig:
    """A run's configuration file, parsed (YAML or JSON) but not yet interpreted."""

    path: Path
    values: Dict[str, Any]


@dataclass(frozen=True)
class Run:
    """A run folder, scanned once (see the module docstring)."""

    root: Path
    checkpoints: Tuple[RunCheckpoint, ...]
    unordered: Tuple[Path, ...] = ()
    log: Optional[RunLog] = None
    config: Optional[RunConfig] = None
    _data_cache: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def by_epoch(self) -> Dict[int, Path]:
        """``{epoch: path}`` in epoch order (the first file of an epoch wins)."""
        out: Dict[int, Path] = {}
        for c in sorted((c for c in self.checkpoints if c.epoch is not None), key=_position):
            out.setdefault(int(c.epoch), c.path)  # type: ignore[arg-type]
        return out

    @property
    def ordered(self) -> Tuple[Path, ...]:
        """The run's trajectory: checkpoints with an epoch in epoch order, else those with a step
        in step order (landscape's extra ``step_XXXXXX.pt`` files sit beside its epoch files and
        are not part of the epoch trajectory)."""
        with_epoch = [c for c in self.checkpoints if c.epoch is not None]
        chosen = with_epoch or [c for c in self.checkpoints if c.step is not None]
        return tuple(c.path for c in sorted(chosen, key=_position))

    @property
    def last(self) -> Path:
        """The latest checkpoint of :attr:`ordered` (an error if the run has none)."""
        if not self.ordered:
            raise LandscapeError(f"no checkpoints in {self.root}" + self._unordered_note())
        return self.ordered[-1]

    def require_checkpoints(self) -> Tuple[Path, ...]:
        """:attr:`ordered`, or a one-line error saying what the folder holds instead."""
        if not self.ordered:
            raise LandscapeError(
                f"no checkpoints with an epoch or step in {self.root} "
                f"(looked for *{', *'.join(CHECKPOINT_SUFFIXES)} here and in "
                f"{'/, '.join(CHECKPOINT_SUBFOLDERS)}/)" + self._unordered_note())
        return self.ordered

    def position_of(self, path: str | Path) -> Optional[RunCheckpoint]:
        """The run's record of the checkpoint at ``path`` (``None`` if it is not one of them)."""
        target = Path(path).resolve()
        return next((c for c in self.checkpoints if c.path.resolve() == target), None)

    def session_at(self, checkpoint: str | Path, **session_kwargs: Any) -> Any:
        """:func:`landscape.session.open_session` on one of the run's checkpoints, with the data
        set loaded once for the whole run (later calls reuse it)."""
        from .session import open_session  # session reads run metadata through this module

        return open_session(str(checkpoint), data_cache=self._data_cache, **session_kwargs)

    def _unordered_note(self) -> str:
        if not self.unordered:
            return ""
        names = ", ".join(p.name for p in self.unordered[:3])
        return f"; files without an epoch or step in their name or content: {names}"


def _position(c: RunCheckpoint) -> Tuple[float, float]:
    return (c.epoch if c.epoch is not None else -math.inf, c.step if c.step is not None else -math.inf)


# ------------------------------------------------------------------------------------ scanning
def open_run(path: str | Path, *, read_content: bool = True) -> Run:
    """Scan the run folder ``path`` (a one-line error if it is not a folder).

    ``read_content``: for files whose name holds no epoch or step, read the position from the
    file (cheap: memory-mapped); off, such files are listed as unordered."""
    root = Path(path)
    if not root.is_dir():
        raise LandscapeError(f"run folder not found: {root}" if not root.exists()
                             else f"{root} is a file, not a run folder")
    ordered: List[RunCheckpoint] = []
    unordered: List[Path] = []
    for file in checkpoint_files(root):
        epoch, step = position_from_name(file.name)
        if epoch is None and step is None and read_content:
            epoch, step = _position_from_content(file)
        if epoch is None and step is None:
            unordered.append(file)
        else:
            ordered.append(RunCheckpoint(file, epoch, step))
    ordered.sort(key=_position)
    return Run(root, tuple(ordered), tuple(unordered), find_log(root), find_config(root))


def checkpoint_files(root: Path) -> List[Path]:
    """Checkpoint-suffixed files in ``root`` and its checkpoint subfolders (unordered)."""
    folders = [root] + [root / name for name in CHECKPOINT_SUBFOLDERS if (root / name).is_dir()]
    return [p for folder in folders for p in folder.iterdir()
            if p.is_file() and p.name.lower().endswith(CHECKPOINT_SUFFIXES) and not p.name.startswith(".")]


def position_from_name(name: str) -> Tuple[Optional[int], Optional[int]]:
    """``(epoch, step)`` parsed from a checkpoint's file name (``None`` where absent)."""
    stem = name
    for suffix in CHECKPOINT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    m_epoch, m_step = _EPOCH_IN_NAME.search(stem), _STEP_IN_NAME.search(stem)
    return (int(m_epoch.group(1)) if m_epoch else None, int(m_step.group(1)) if m_step else None)


def _position_from_content(path: Path) -> Tuple[Optional[int], Optional[int]]:
    from .checkpoint import read_position

    try:
        return read_position(path)
    except Exception:  # not a checkpoint after all (or unreadable): it has no position
        return None, None


def is_run_dir(path: str | Path) -> bool:
    """A folder holding a log, a config file or at least one checkpoint with a position."""
    root = Path(path)
    if not root.is_dir():
        return False
    if find_log(root) is not None or find_config(root) is not None:
        return True
    return any(position_from_name(p.name) != (None, None) for p in checkpoint_files(root))


def run_root_of(checkpoint: str | Path) -> Optional[Path]:
    """The run folder a checkpoint file belongs to: its own folder, or the parent of a
    ``checkpoints/`` subfolder, whichever holds a config file or a log (``None`` if neither)."""
    folder = Path(checkpoint).resolve().parent
    for cand in (folder, folder.parent):
        if find_config(cand) is not None or find_log(cand) is not None:
            return cand
        if folder.name.lower() not in CHECKPOINT_SUBFOLDERS:
            break
    return None


# ------------------------------------------------------------------------------------ metadata
def find_config(root: Path) -> Optional[RunConfig]:
    """The run's configuration file (see module docstring), parsed; ``None`` if there is none."""
    for name in CONFIG_FILES:
        p = root / name
        if p.is_file():
            return RunConfig(p, read_config_file(p))
    return None


def read_config_file(path: Path) -> Dict[str, Any]:
    """A YAML or JSON mapping (YAML read with ``safe_load``: plain data only)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except Exception as exc:
        raise LandscapeError(f"cannot read run config {path}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise LandscapeError(f"run config {path} is not a mapping of settings")
    return dict(values)


# ------------------------------------------------------------------------------------ logs
def find_log(root: Path) -> Optional[RunLog]:
    """The run's log: ``log.csv``, ``metrics.csv``, else any CSV that reads as a log."""
    named = [root / n for n in LOG_FILES if (root / n).is_file()]
    others = sorted(p for p in root.glob("*.csv") if p.name not in LOG_FILES and p.name != "sharpness.csv")
    for p in named + others:
        log = read_run_log(p, strict=False)
        if log is not None:
            return log
    return None


def read_run_log(path: str | Path, *, strict: bool = True) -> Optional[RunLog]:
    """Read a log in any known format (module docstring) into wide rows.

    ``strict``: a file that is not a log is a one-line error (else ``None``)."""
    p = Path(path)
    if not p.is_file():
        if strict:
            raise LandscapeError(f"log not found: {p}")
        return None
    with open(p, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or []) if h is not None]
        raw = [{(k or "").strip(): v for k, v in r.items()} for r in reader]
    lower = {h.lower(): h for h in header}
    if {"epoch", "split", "loss"} <= set(lower):
        return RunLog(p, "long", _pivot_long(raw, lower))
    rows = [_wide_row(r) for r in raw]
    cols = {_column_name(h) for h in header}
    if "epoch" in cols and ({"test_loss", "val_loss", "train_loss"} & cols):
        fmt = "landscape" if p.name == "log.csv" and "test_loss" in cols else "wide"
        return RunLog(p, fmt, tuple(rows))
    if strict:
        raise LandscapeError(f"{p} is not a run log: expected an epoch column with train_loss/val_loss/"
                             f"test_loss, or epoch,split,loss rows (found: {', '.join(header[:8])})")
    return None


def _pivot_long(raw: Sequence[Mapping[str, str]], lower: Mapping[str, str]) -> Tuple[Dict[str, Any], ...]:
    by_epoch: Dict[float, Dict[str, Any]] = {}
    acc_key = lower.get("accuracy", lower.get("acc"))
    for r in raw:
        epoch = _as_float(r.get(lower["epoch"]))
        if not math.isfinite(epoch):
            continue
        split = str(r.get(lower["split"], "")).strip().lower()
        split = _SPLIT_ALIASES.get(split, split)
        row = by_epoch.setdefault(epoch, {"epoch": epoch})
        row[f"{split}_loss"] = _as_float(r.get(lower["loss"]))
        if acc_key:
            row[f"{split}_acc"] = _as_float(r.get(acc_key))
    return tuple(by_epoch[e] for e in sorted(by_epoch))


def _column_name(header: str) -> str:
    name = header.strip().lower()
    for long, short in (("validation_", "val_"), ("valid_", "val_"), ("_accuracy", "_acc")):
        name = name.replace(long, short)
    return name


def _wide_row(r: Mapping[str, str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in r.items():
        if not k:
            continue
        try:
            out[_column_name(k)] = float(v)
        except (TypeError, ValueError):
            out[_column_name(k)] = v
    return out


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")
