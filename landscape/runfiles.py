"""Reading a run folder's files: checkpoint names, logs in any known format, config files.

The lower half of :mod:`landscape.runs` (which builds a :class:`~landscape.runs.Run` from these and
opens sessions on it): this module imports nothing of landscape's but its errors, so that
:mod:`landscape.session` can read a checkpoint's run metadata without importing the Run.

- Checkpoint names: the epoch or step in ``epoch_012.pt``, ``ep5.pt``, ``model-ep20.pth``,
  ``step_000500.pt``, ``epoch=3-step=900.ckpt`` (:func:`position_from_name`).
- Logs: landscape's ``log.csv``, a long-format ``metrics.csv`` (``epoch,split,loss,accuracy``
  rows, split ∈ train/val/test) or any wide CSV with an ``epoch`` column and
  ``test_loss``/``val_loss``, all read into the same wide rows (:func:`read_run_log`).
- Config: the first of ``config.yaml``, ``config.yml``, ``config.json``, ``args.json``,
  ``hparams.yaml``, ``hparams.yml`` (:func:`find_config`), interpreted by :func:`run_settings`
  with the name mappings of other codebases (``cross_entropy`` → ``ce``; ``mse`` ambiguous).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
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


# ------------------------------------------------------------------------------------ settings
# Loss names of other codebases -> landscape's; "mse" is ambiguous (on logits or on softmax
# outputs) and resolved against the run's log (landscape.session).
LOSS_NAMES = {"crossentropy": ("ce",), "ce": ("ce",), "crossentropyloss": ("ce",), "nll": ("ce",),
              "mse": ("mse-softmax", "mse"), "mseloss": ("mse-softmax", "mse"), "l2": ("mse-softmax", "mse"),
              "msesoftmax": ("mse-softmax",), "mselogits": ("mse",), "msesum": ("mse-sum",)}
# Model names of other codebases -> the registry architectures they may be (recognition decides).
MODEL_NAMES = {"resnet18": ("tv_resnet18", "resnet18"), "resnet34": ("tv_resnet34", "resnet34"),
               "resnet50": ("tv_resnet50", "resnet50"), "resnet20": ("resnet20",), "resnet32": ("resnet32",),
               "resnet44": ("resnet44",), "resnet56": ("resnet56",), "resnet110": ("resnet110",),
               "densenet121": ("densenet121",), "vgg11": ("tv_vgg11_bn", "vgg11"), "vgg13": ("tv_vgg13_bn", "vgg13"),
               "vgg16": ("tv_vgg16_bn", "vgg16"), "vgg19": ("tv_vgg19_bn", "vgg19")}


@dataclass(frozen=True)
class RunSettings:
    """What a run config says, in landscape's terms (``None`` where it says nothing)."""

    source: str
    model_name: Optional[str] = None
    model_candidates: Tuple[str, ...] = ()
    loss_name: Optional[str] = None
    loss_candidates: Tuple[str, ...] = ()
    optimizer: Optional[str] = None
    lr: Optional[float] = None
    batch_size: Optional[int] = None
    seed: Optional[int] = None
    val_split: Optional[int] = None
    split_seed: Optional[int] = None
    data: Optional[str] = None

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def run_settings(config: RunConfig, *, root: Optional[Path] = None) -> RunSettings:
    """Interpret a run config (the study's ``config.yaml``, ``args.json``, ``hparams.yaml``, ...)."""
    v = config.values
    data_cfg = v.get("data_config") if isinstance(v.get("data_config"), Mapping) else {}
    opt = v.get("optimizer")
    opt_cfg = opt if isinstance(opt, Mapping) else {}
    model = _first(v, "model", "arch", "architecture", "model_name", "net")
    model = model if isinstance(model, str) else None
    loss = _first(v, "loss_function", "loss", "criterion", "loss_fn")
    loss = loss if isinstance(loss, str) else None
    val_split = _int_or_none(_first(data_cfg, "val_split", "val_size", "n_val")
                             if data_cfg else _first(v, "val_split", "val_size", "n_val"))
    split_seed = _int_or_none(_first(data_cfg, "seed", "split_seed") if data_cfg else _first(v, "split_seed"))
    if val_split and split_seed is None:
        split_seed = _int_or_none(v.get("seed"))
    return RunSettings(
        source=config.path.name,
        model_name=model, model_candidates=MODEL_NAMES.get(_key(model), ()) if model else (),
        loss_name=loss, loss_candidates=LOSS_NAMES.get(_key(loss), ()) if loss else (),
        optimizer=str(opt_cfg.get("name", opt_cfg.get("type"))) if opt_cfg else (str(opt) if isinstance(opt, str) else None),
        lr=_float_or_none(opt_cfg.get("lr", v.get("learning_rate", v.get("lr")))),
        batch_size=_int_or_none(v.get("batch_size", data_cfg.get("batch_size") if data_cfg else None)),
        seed=_int_or_none(v.get("seed")),
        val_split=val_split if val_split and val_split > 0 else None,
        split_seed=split_seed,
        data=_data_spec(data_cfg or v, v, root or config.path.parent),
    )


def _data_spec(data_cfg: Mapping[str, Any], v: Mapping[str, Any], root: Path) -> Optional[str]:
    """``cifar10:ROOT`` where the config's data root holds the CIFAR batches here."""
    data_root = _first(data_cfg, "data_root", "data_dir", "root", "data_path")
    if not isinstance(data_root, str):
        return None
    name = str(_first(v, "dataset", "data", "dataset_name") or "cifar10").lower().replace("-", "")
    if name not in ("cifar10", "cifar100"):
        return None
    for base in (Path(data_root), root / data_root):
        for folder in (base, base / "cifar-10-batches-py", base / "cifar-100-python"):
            if (folder / "test_batch").is_file() or (folder / "test").is_file():
                return f"{name}:{base}"
    return None


def _key(name: Optional[str]) -> str:
    """``"Cross_Entropy"`` -> ``"crossentropy"``: names compared without case or separators."""
    return "".join(ch for ch in (name or "").lower() if ch.isalnum())


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    return next((d[k] for k in keys if k in d and d[k] is not None), None)


def _int_or_none(v: Any) -> Optional[int]:
    try:
        return int(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def _float_or_none(v: Any) -> Optional[float]:
    try:
        return float(v) if v is not None and not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None
