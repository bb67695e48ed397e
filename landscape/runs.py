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

The file readers live in :mod:`landscape.runfiles` (re-exported here), below
:mod:`landscape.session`, which reads a checkpoint's run metadata through them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import LandscapeError
from .runfiles import (  # noqa: F401 (the run-file readers are part of this module's API)
    CHECKPOINT_SUBFOLDERS,
    CHECKPOINT_SUFFIXES,
    CONFIG_FILES,
    LOG_FILES,
    RunCheckpoint,
    RunConfig,
    RunLog,
    RunSettings,
    checkpoint_files,
    find_config,
    find_log,
    is_run_dir,
    position_from_name,
    read_config_file,
    read_run_log,
    run_root_of,
    run_settings,
)
from .session import Session, open_session


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

    @property
    def data_cache(self) -> Dict[Any, Any]:
        """The run's loaded data sets (``open_session(data_cache=...)``): pass it to share them."""
        return self._data_cache

    def position_of(self, path: str | Path) -> Optional[RunCheckpoint]:
        """The run's record of the checkpoint at ``path`` (``None`` if it is not one of them)."""
        target = Path(path).resolve()
        return next((c for c in self.checkpoints if c.path.resolve() == target), None)

    def session_at(self, checkpoint: str | Path, **session_kwargs: Any) -> Session:
        """:func:`landscape.session.open_session` on one of the run's checkpoints, with the data
        set loaded once for the whole run (later calls reuse it)."""
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


def _position_from_content(path: Path) -> Tuple[Optional[int], Optional[int]]:
    from .checkpoint import read_position

    try:
        return read_position(path)
    except Exception:  # not a checkpoint after all (or unreadable): it has no position
        return None, None


