"""Loss slices: the loss and accuracy on a 1-D line or a 2-D grid through a checkpoint.

At every grid point ``θ(x, y) = θ_c + x·d₀ + y·d₁`` (directions from :mod:`landscape.directions`)
the train loss and accuracy and, optionally, the test loss and accuracy are evaluated in one
inference pass per set through the :class:`~landscape.objective.Objective` (Li et al. 2018,
"Visualizing the Loss Landscape of Neural Nets"; Goodfellow et al. 2015 for 1-D interpolation).

Speed: the data and the directions stay on the device, the weights of a point are written into
one preallocated flat vector that the Objective reads through views (no model copy, no reading
directions back from disk), and 4-D inputs are evaluated in ``channels_last`` memory format when the
model accepts it (about 2× faster for convolutions on CPU).

Storage (HDF5, readable by Li et al.'s ``plot_surface.py``; see the README's "HDF5 layout"):
``xcoordinates``, ``ycoordinates``, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` of
shape ``(nx,)`` or ``(nx, ny)`` indexed ``[ix, iy]``, a ``computed`` mask (uncomputed points are
NaN), the directions under ``directions/<i>/<name>`` and provenance attributes.

Resuming and crash safety: the ``.h5`` file is only ever replaced atomically (written to a
temporary file, fsynced, then :func:`os.replace`), so it is always a complete, readable file.
Points are appended as they are computed to a journal ``FILE.h5.journal`` (fixed-size records with a
CRC, written with one ``os.write`` each, so a SIGKILL loses at most the point in flight and never
corrupts earlier records); the journal is folded into the ``.h5`` every ``flush_seconds`` and at the
end. Re-running the same command reads the file and the journal and computes only what is missing;
a file made with other settings is refused unless ``overwrite``.

Distributed: :func:`run_points` splits the points still to do across ranks
(:func:`landscape.distributed.shard`) and gathers the results to rank 0, which alone writes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import struct
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from . import distributed as dist
from .directions import DirectionSet, directions_from_rows, h5_direction_rows
from .errors import LandscapeError
from .objective import Objective
from .params import ParamSpace
from .progress import progress

AXIS_ORDER = "[ix, iy]"  # axis 0 follows xcoordinates, axis 1 ycoordinates
FORMAT = "landscape-surface-1"
_JOURNAL_MAGIC = b"LSJ1"


# ------------------------------------------------------------------ grid
@dataclass(frozen=True)
class Grid:
    """Coordinates of a 1-D (``y is None``) or 2-D grid; flat index ``i = ix·ny + iy``."""

    x: np.ndarray
    y: Optional[np.ndarray] = None

    @classmethod
    def from_ranges(cls, xrange: Tuple[float, float, int], yrange: Optional[Tuple[float, float, int]] = None) -> Grid:
        xs = np.linspace(float(xrange[0]), float(xrange[1]), int(xrange[2]))
        ys = None if yrange is None else np.linspace(float(yrange[0]), float(yrange[1]), int(yrange[2]))
        return cls(xs, ys)

    @property
    def k(self) -> int:
        return 1 if self.y is None else 2

    @property
    def shape(self) -> Tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.x), len(self.y))

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    def coords(self) -> np.ndarray:
        """``(n_points, k)`` coordinates in flat-index order."""
        if self.y is None:
            return self.x.reshape(-1, 1).copy()
        gx, gy = np.meshgrid(self.x, self.y, indexing="ij")
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    def centre_index(self) -> Optional[int]:
        """Flat index of the grid point at the origin, if the grid has one."""
        ix = np.flatnonzero(self.x == 0.0)
        if self.y is None:
            return int(ix[0]) if len(ix) else None
        iy = np.flatnonzero(self.y == 0.0)
        return int(ix[0] * len(self.y) + iy[0]) if len(ix) and len(iy) else None


# ------------------------------------------------------------------ evaluation
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

    @property
    def n_metrics(self) -> int:
        return 2 * len(self.objectives)

    @torch.no_grad()
    def set_point(self, c: Sequence[float]) -> torch.Tensor:
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


def compute_points(evaluator: PointEvaluator, coords: np.ndarray, indices: Sequence[int]):
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


# ------------------------------------------------------------------ storage
def settings_key(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the settings that determine a surface's values."""
    text = json.dumps(_plain(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(obj: Any) -> Any:
    from .results import jsonable

    return jsonable(obj)


class SurfaceStore:
    """An HDF5 surface file plus its append-only journal (see the module docstring)."""

    def __init__(self, path: Optional[str | Path]) -> None:
        self.path = Path(path) if path else None
        self.journal = Path(str(self.path) + ".journal") if path else None
        self._fd: Optional[int] = None
        self.key: Optional[str] = None
        self.metrics: Tuple[str, ...] = ()
        self.shape: Tuple[int, ...] = ()
        self.values: Optional[np.ndarray] = None
        self.computed: Optional[np.ndarray] = None
        self.eval_config: Optional[EvalConfig] = None
        self._dirty = False

    # -- creation and checks
    def exists(self) -> bool:
        return self.path is not None and self.path.exists()

    def check(self, settings: Mapping[str, Any]) -> None:
        """Refuse a file made with other settings (or not by landscape)."""
        stored = self._read_settings()
        key = settings_key(settings)
        if stored.get("__key__") == key:
            return
        mine = _plain(settings)
        diffs = [f"{k}: {stored.get(k)!r} -> {mine.get(k)!r}" for k in sorted(set(mine) | set(stored) - {"__key__"})
                 if stored.get(k) != mine.get(k)]
        raise LandscapeError(f"{self.path} was made with other settings or another checkpoint "
                             f"({'; '.join(diffs[:4]) or 'different settings'}); "
                             "pass --overwrite to replace it, or choose another --out")

    def _read_settings(self) -> Dict[str, Any]:
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise LandscapeError(f"{self.path} exists and is not a landscape surface file; "
                                         "pass --overwrite to replace it")
                out = json.loads(f.attrs["settings"])
                out["__key__"] = str(f.attrs["settings_key"])
                return out
        except OSError:
            raise LandscapeError(f"{self.path} exists and is not a readable HDF5 file; "
                                 "pass --overwrite to replace it") from None

    def create(self, *, grid: Grid, metrics: Sequence[str], directions: DirectionSet, space: ParamSpace,
               settings: Mapping[str, Any], attrs: Mapping[str, Any],
               extra: Optional[Callable[[Any], None]] = None) -> None:
        """Write a new file (all points NaN, nothing computed) atomically, and reset the journal."""
        import h5py

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp_name()
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["settings"] = json.dumps(_plain(settings), sort_keys=True)
            f.attrs["settings_key"] = settings_key(settings)
            f.attrs["axis_order"] = AXIS_ORDER
            f.attrs["dirs"] = grid.k
            f.attrs["metrics"] = json.dumps(list(metrics))
            f.attrs["directions_info"] = json.dumps(_plain(directions.to_json()))
            for k, v in attrs.items():
                f.attrs[k] = _attr(v)
            f.create_dataset("xcoordinates", data=grid.x)
            if grid.y is not None:
                f.create_dataset("ycoordinates", data=grid.y)
            for m in metrics:
                f.create_dataset(m, data=np.full(grid.shape, np.nan))
            f.create_dataset("computed", data=np.zeros(grid.shape, dtype=bool))
            _write_directions(f.create_group("directions"), directions, space)
            if extra is not None:
                extra(f)
        self._commit(tmp)
        self.key = settings_key(settings)
        self._reset_journal()

    # -- loading
    def load(self, *, space: ParamSpace, device: torch.device, dtype: torch.dtype,
             buffer_shapes: Mapping[str, Tuple[int, ...]]) -> Tuple[Grid, DirectionSet]:
        """Read grid, values, mask and directions, then replay the journal."""
        import h5py

        with h5py.File(self.path, "r") as f:
            self.key = str(f.attrs["settings_key"])
            self.metrics = tuple(json.loads(f.attrs["metrics"]))
            x = np.asarray(f["xcoordinates"])
            y = np.asarray(f["ycoordinates"]) if "ycoordinates" in f else None
            grid = Grid(x, y)
            self.shape = grid.shape
            self.values = np.stack([np.asarray(f[m], dtype=np.float64).reshape(-1) for m in self.metrics], axis=1)
            self.computed = np.asarray(f["computed"], dtype=bool).reshape(-1)
            info = json.loads(f.attrs["directions_info"])
            if "eval_batch_size" in f.attrs:
                self.eval_config = EvalConfig(bool(f.attrs["channels_last"]), int(f.attrs["eval_batch_size"]))
            g = f["directions"]
            rows = h5_direction_rows(g)
            dset = directions_from_rows(rows, space, k=grid.k, device=device, dtype=dtype,
                                        buffer_shapes=buffer_shapes, where=str(self.path))
            extra_info = {k: v for k, v in info.items() if k not in ("kind", "norm", "include_bn", "k", "norms", "cosine")}
            dirs = DirectionSet(dset.vectors, info.get("kind", "file"), info.get("norm", "none"),
                                bool(info.get("include_bn", False)), dset.buffer_vectors, extra_info)
        self._replay()
        return grid, dirs

    def init_memory(self, grid: Grid, metrics: Sequence[str]) -> None:
        self.metrics = tuple(metrics)
        self.shape = grid.shape
        self.values = np.full((grid.n_points, len(metrics)), np.nan)
        self.computed = np.zeros(grid.n_points, dtype=bool)

    # -- journal
    def _record_size(self) -> int:
        return 8 + 8 * len(self.metrics) + 4

    def _replay(self) -> None:
        if not self.journal.exists():
            return
        data = self.journal.read_bytes()
        head = _JOURNAL_MAGIC + (self.key or "").encode()
        if not data.startswith(head):
            return  # a journal of another (overwritten) file: ignore it
        size, m = self._record_size(), len(self.metrics)
        for off in range(len(head), len(data) - size + 1, size):
            rec = data[off:off + size]
            body, (crc,) = rec[:-4], struct.unpack("<I", rec[-4:])
            if zlib.crc32(body) != crc:
                break  # a record cut short by a kill: it and anything after it are redone
            idx, *vals = struct.unpack(f"<q{m}d", body)
            if 0 <= idx < len(self.computed):
                self.values[idx] = vals
                self.computed[idx] = True
                self._dirty = True

    def _header(self) -> bytes:
        return _JOURNAL_MAGIC + (self.key or "").encode()

    def lock(self) -> None:
        """Open the journal (created if missing) holding an exclusive lock: one writer per file."""
        if self._fd is not None or self.journal is None:
            return
        fd = os.open(self.journal, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LandscapeError(f"another process is writing {self.path}") from None
        self._fd = fd

    def _reset_journal(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.write(self._fd, self._header())
            return
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, self._header())
        finally:
            os.close(fd)

    def open_journal(self) -> None:
        """Make the locked journal ready for appending: this file's header, no torn last record."""
        self.lock()
        head = self._header()
        if os.pread(self._fd, len(head), 0) != head:
            self._reset_journal()
            return
        size = os.fstat(self._fd).st_size
        good = len(head) + ((size - len(head)) // self._record_size()) * self._record_size()
        if good != size:
            os.ftruncate(self._fd, good)

    def append(self, index: int, values: np.ndarray) -> None:
        """Record one computed point (one ``os.write``: survives the process being killed)."""
        body = struct.pack(f"<q{len(self.metrics)}d", int(index), *[float(v) for v in values])
        if self._fd is not None:
            os.write(self._fd, body + struct.pack("<I", zlib.crc32(body)))
        self.values[index] = values
        self.computed[index] = True
        self._dirty = True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- consolidation
    def consolidate(self) -> None:
        """Fold the computed points into a copy of the file and atomically replace it."""
        import h5py

        if not self._dirty:
            return
        tmp = self._tmp_name()
        shutil.copyfile(self.path, tmp)
        with h5py.File(tmp, "r+") as f:
            for j, m in enumerate(self.metrics):
                f[m][...] = self.values[:, j].reshape(self.shape)
            f["computed"][...] = self.computed.reshape(self.shape)
        self._commit(tmp)
        if self._fd is not None:
            head = len(_JOURNAL_MAGIC) + len(self.key or "")
            os.ftruncate(self._fd, head)
        self._dirty = False

    def _tmp_name(self) -> Path:
        return self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")

    def _commit(self, tmp: Path) -> None:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    def cleanup_stale(self) -> None:
        """Remove temporary files left by killed runs of this file."""
        for p in self.path.parent.glob(f".{self.path.name}.tmp-*"):
            try:
                pid = int(p.name.rsplit("-", 1)[1])
            except ValueError:
                continue
            if pid == os.getpid() or not _pid_alive(pid):
                p.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _attr(v: Any) -> Any:
    """HDF5 attributes cannot be None or nested: None -> "", dict/list -> JSON text."""
    if v is None:
        return ""
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(_plain(v))
    if isinstance(v, (bool, int, float, str, np.generic)):
        return v
    return str(v)


def _write_directions(group: Any, directions: DirectionSet, space: ParamSpace) -> None:
    group.attrs["kind"] = directions.kind
    group.attrs["norm"] = directions.norm
    for i in range(directions.k):
        g = group.create_group(str(i))
        for name, view in space.unflatten(directions.vectors[i].detach().cpu()).items():
            g.create_dataset(name, data=view.numpy())
        for name, t in directions.buffer_vectors.items():
            ds = g.create_dataset(name, data=t[i].detach().cpu().numpy())
            ds.attrs["buffer"] = True


# ------------------------------------------------------------------ results
@dataclass(frozen=True)
class Surface:
    """A computed (possibly partly) slice: coordinates, metric arrays ``[ix, iy]``, the mask."""

    xcoordinates: np.ndarray
    ycoordinates: Optional[np.ndarray]
    values: Dict[str, np.ndarray]
    computed: np.ndarray
    directions: Dict[str, Any] = field(default_factory=dict)
    provenance: Dict[str, Any] = field(default_factory=dict)
    path: Optional[str] = None
    stats: Dict[str, Any] = field(default_factory=dict)

    @property
    def dirs(self) -> int:
        return 1 if self.ycoordinates is None else 2

    def centre(self) -> Dict[str, float]:
        grid = Grid(self.xcoordinates, self.ycoordinates)
        i = grid.centre_index()
        if i is None:
            return {}
        return {m: float(v.reshape(-1)[i]) for m, v in self.values.items()}

    def to_json(self) -> dict:
        out: Dict[str, Any] = {"out": self.path, "dirs": self.dirs, "axis_order": AXIS_ORDER,
                               "xcoordinates": self.xcoordinates.tolist()}
        if self.ycoordinates is not None:
            out["ycoordinates"] = self.ycoordinates.tolist()
        for m in ("train_loss", "train_acc", "test_loss", "test_acc"):
            out[m] = self.values[m].tolist() if m in self.values else None
        out["computed"] = self.computed.tolist()
        out.update({"n_points": int(self.computed.size), "n_computed": int(self.computed.sum()),
                    "n_nonfinite": int(self.n_nonfinite()), "centre": self.centre(),
                    "directions": self.directions, "provenance": self.provenance, "stats": self.stats})
        return out

    def n_nonfinite(self) -> int:
        loss = self.values.get("train_loss")
        return 0 if loss is None else int((self.computed & ~np.isfinite(loss)).sum())

    def summary(self) -> str:
        loss = self.values["train_loss"]
        done = self.computed & np.isfinite(loss)
        shape = "×".join(str(s) for s in self.computed.shape)
        lines = [f"{self.dirs}-D slice, {shape} points, {int(self.computed.sum())} computed"
                 + (f" ({self.stats.get('computed_now', 0)} now, {self.stats.get('seconds', 0):.1f} s)"
                    if self.stats else "")]
        if isinstance(self.directions, dict) and self.directions.get("file_format"):
            lines.append(f"directions: {self.directions.get('file')} read as a {self.directions['file_format']}")
        c = self.centre()
        if c:
            lines.append("centre: " + ", ".join(f"{k} {v:.6g}" for k, v in c.items()))
        if done.any():
            lines.append(f"train loss range: {float(loss[done].min()):.6g} .. {float(loss[done].max()):.6g}")
        if self.n_nonfinite():
            lines.append(f"non-finite train loss at {self.n_nonfinite()} point(s) (stored as NaN/inf)")
        if self.path:
            lines.append(f"wrote {self.path}")
        return "\n".join(lines)


def read_surface(path: str | Path) -> Surface:
    """Read a surface file (merging an unconsolidated journal, e.g. of a running or killed run)."""
    import h5py

    store = SurfaceStore(path)
    with h5py.File(store.path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise LandscapeError(f"{path} is not a landscape surface file")
        store.key = str(f.attrs["settings_key"])
        store.metrics = tuple(json.loads(f.attrs["metrics"]))
        x = np.asarray(f["xcoordinates"])
        y = np.asarray(f["ycoordinates"]) if "ycoordinates" in f else None
        store.shape = Grid(x, y).shape
        store.values = np.stack([np.asarray(f[m], dtype=np.float64).reshape(-1) for m in store.metrics], axis=1)
        store.computed = np.asarray(f["computed"], dtype=bool).reshape(-1)
        info = json.loads(f.attrs["directions_info"])
        prov = {k: _unattr(v) for k, v in f.attrs.items()
                if k not in ("settings", "settings_key", "directions_info", "metrics", "format")}
    store._replay()
    return _surface_from(store, Grid(x, y), info, prov, str(path), {})


def _unattr(v: Any) -> Any:
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _surface_from(store: SurfaceStore, grid: Grid, info: dict, prov: dict, path: Optional[str],
                  stats: dict) -> Surface:
    values = {m: store.values[:, j].reshape(grid.shape).copy() for j, m in enumerate(store.metrics)}
    return Surface(grid.x, grid.y, values, store.computed.reshape(grid.shape).copy(), info, prov, path, stats)


# ------------------------------------------------------------------ driver
@dataclass(frozen=True)
class EvalConfig:
    """How points are evaluated: input memory layout and batch size (speed only in BN eval mode).

    Chosen once when a file is created and stored in it, so a resumed run evaluates exactly as
    the first one did. ``timings``: seconds per pass over up to 1,024 samples per batch size tried.
    """

    channels_last: bool
    batch_size: int
    timings: Dict[int, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"channels_last": self.channels_last, "eval_batch_size": self.batch_size,
                "batch_timings": {str(k): v for k, v in self.timings.items()}}


def choose_eval_config(obj: Objective, *, channels_last: Optional[bool] = None,
                       batch_size: Optional[int | str] = None) -> EvalConfig:
    """``channels_last`` for 4-D inputs when the model gives the same outputs with it (``None``)
    or as told; ``batch_size``: an int, ``None`` (the objective's) or ``"auto"`` (the fastest of
    128, 256, 512, 1,024 over the first 1,024 samples; not with BatchNorm in train mode, where the
    batch size changes the objective)."""
    cl = obj.x.dim() == 4 and channels_last is not False and _channels_last_ok(obj)
    if channels_last and not cl:
        warnings.warn("the model does not run on channels_last inputs; using the default layout", stacklevel=2)
    if batch_size is None or obj.bn_mode == "train":
        return EvalConfig(cl, obj.batch_size)
    if batch_size != "auto":
        return EvalConfig(cl, int(batch_size))
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
    return EvalConfig(cl, best if best < m else max(best, obj.batch_size), timings)


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


def compute_surface(objectives: Mapping[str, Objective], directions: DirectionSet | Callable[[], DirectionSet],
                    grid: Grid, *, centre: Optional[torch.Tensor] = None,
                    centre_buffers: Optional[Mapping[str, torch.Tensor]] = None, out: Optional[str] = None,
                    settings: Optional[Mapping[str, Any]] = None, attrs: Optional[Mapping[str, Any]] = None,
                    overwrite: bool = False, flush_seconds: float = 30.0, channels_last: Optional[bool] = None,
                    batch_size: Optional[int | str] = "auto", extra: Optional[Callable[[Any], None]] = None,
                    desc: str = "slice") -> Surface:
    """Evaluate ``objectives`` (``{"train": obj, "test": obj}``) on ``grid`` around ``centre``.

    ``directions`` may be a callable, called only when the file does not already hold them (a
    resumed run reads the stored directions and evaluation settings, so it continues exactly the
    same surface). With ``out`` the points are stored as described in the module docstring;
    ``settings`` are what must match for a resume. ``channels_last``/``batch_size``: see
    :func:`choose_eval_config` (``"auto"`` is used only for grids of 32 points or more). Non-finite
    losses are stored and counted, never raised.
    """
    names = list(objectives)
    metrics = [f"{n}_{q}" for n in names for q in ("loss", "acc")]
    first = objectives[names[0]]
    centre = first.theta0 if centre is None else centre
    space = first.space
    if centre_buffers is None:
        centre_buffers = {n: b for n, b in first.model.named_buffers() if b.is_floating_point()}
    buffer_shapes = {n: tuple(b.shape) for n, b in centre_buffers.items()}
    settings = dict(settings or {})
    settings.setdefault("metrics", metrics)
    attrs = dict(attrs or {})
    t0 = time.perf_counter()

    store = SurfaceStore(out)
    try:
        if out and dist.is_main():
            store.cleanup_stale()
            store.lock()
        grid, dirs, config, todo = _prepare(store, directions, grid, first, centre, space, buffer_shapes, metrics,
                                            settings, attrs, overwrite=overwrite, channels_last=channels_last,
                                            batch_size=batch_size, extra=extra)
        evaluator = PointEvaluator(prepare_objectives([objectives[n] for n in names], config),
                                   centre, dirs, centre_buffers=centre_buffers)
        coords = grid.coords()
        info = dirs.to_json()
        t_eval = time.perf_counter()
        if dist.is_main() and out:
            store.open_journal()
        last = [time.perf_counter(), 0.0]

        def sink(i: int, vals: np.ndarray) -> None:
            store.append(i, vals)
            now = time.perf_counter()
            if out and now - last[0] > max(flush_seconds, 20 * last[1]):
                store.consolidate()
                last[1] = time.perf_counter() - now
                last[0] = time.perf_counter()

        run_points(evaluator, coords, todo, sink, desc=desc)
        if dist.is_main() and out:
            store.consolidate()
    finally:
        store.close()
    t_end = time.perf_counter()
    stats = {"computed_now": len(todo), "seconds": t_end - t0, "eval_seconds": t_end - t_eval,
             "seconds_per_point": (t_end - t_eval) / len(todo) if todo else None, **config.to_json()}
    if not dist.is_main():
        return Surface(grid.x, grid.y, {}, np.zeros(grid.shape, bool), info, attrs, out, stats)
    surface = _surface_from(store, grid, info, attrs, out, stats)
    bad = surface.n_nonfinite()
    if bad:
        warnings.warn(f"the train loss is not finite at {bad} of {surface.computed.size} points "
                      "(stored as NaN/inf)", stacklevel=2)
    return surface


def _prepare(store: SurfaceStore, directions: Any, grid: Grid, first: Objective, centre: torch.Tensor,
             space: ParamSpace, buffer_shapes: Mapping[str, Tuple[int, ...]], metrics: Sequence[str],
             settings: Mapping[str, Any], attrs: Dict[str, Any], *, overwrite: bool,
             channels_last: Optional[bool], batch_size: Optional[int | str],
             extra: Optional[Callable[[Any], None]]) -> Tuple[Grid, DirectionSet, EvalConfig, List[int]]:
    """Create or check-and-load the file (rank 0), make or read the directions, choose the
    evaluation settings, and list the points still to do; the same on every rank."""
    out = store.path
    status: Tuple[str, str] = ("new", "")
    if out and dist.is_main() and store.exists() and not overwrite:
        try:
            store.check(settings)
            status = ("resume", "")
        except LandscapeError as exc:
            status = ("error", str(exc))
    status = dist.broadcast_object(status)
    if status[0] == "error":
        raise LandscapeError(status[1])
    dirs, config = None, None
    if status[0] == "resume":
        if dist.is_main():
            grid, dirs = store.load(space=space, device=centre.device, dtype=centre.dtype, buffer_shapes=buffer_shapes)
            config = store.eval_config or choose_eval_config(first, channels_last=channels_last, batch_size=None)
    else:
        dirs = directions() if callable(directions) else directions
        if dist.is_main():
            if batch_size == "auto" and grid.n_points < 32:
                batch_size = None
            config = choose_eval_config(first, channels_last=channels_last, batch_size=batch_size)
            attrs.update(config.to_json())
            if out:
                store.create(grid=grid, metrics=metrics, directions=dirs, space=space, settings=settings,
                             attrs=attrs, extra=extra)
            store.init_memory(grid, metrics)
    if dist.world_size() > 1:
        dirs, grid, config = _share_directions(dirs, grid, config, centre)
    todo: List[int] = [int(i) for i in np.flatnonzero(~store.computed)] if dist.is_main() else []
    return grid, dirs, config, dist.broadcast_object(todo)


def _share_directions(dirs: Optional[DirectionSet], grid: Grid, config: Optional[EvalConfig],
                      centre: torch.Tensor) -> Tuple[DirectionSet, Grid, EvalConfig]:
    """Rank 0's directions, grid and evaluation settings on every rank (a resumed file is read on
    rank 0 only; timings differ between ranks)."""
    payload = None
    if dist.is_main():
        payload = (dirs.vectors.cpu(), {n: t.cpu() for n, t in dirs.buffer_vectors.items()},
                   dirs.kind, dirs.norm, dirs.include_bn, dirs.info, grid, config)
    vec, bufs, kind, norm, inc, info, grid, config = dist.broadcast_object(payload)
    dev, dt = centre.device, centre.dtype
    return DirectionSet(vec.to(device=dev, dtype=dt), kind, norm, inc,
                        {n: t.to(device=dev, dtype=dt) for n, t in bufs.items()}, info), grid, config


# ------------------------------------------------------------------ commands
Range = Tuple[Any, ...]  # (lo, hi, n) or ("auto", n)


@dataclass(frozen=True)
class Interpolation:
    """The loss along ``(1 − α)·θ_A + α·θ_B`` (Goodfellow et al. 2015); α = 0 is A, α = 1 is B."""

    surface: Surface

    def to_json(self) -> dict:
        s = self.surface
        out = {"alphas": s.xcoordinates.tolist()}
        for m in ("train_loss", "train_acc", "test_loss", "test_acc"):
            out[m] = s.values[m].tolist() if m in s.values else None
        out.update({"computed": s.computed.tolist(), "n_nonfinite": s.n_nonfinite(), "out": s.path,
                    "checkpoints": s.directions.get("checkpoints"), "distance": s.directions.get("distance"),
                    "provenance": s.provenance, "stats": s.stats})
        return out

    def summary(self) -> str:
        s = self.surface
        loss = s.values["train_loss"]
        lines = [f"interpolation over {len(s.xcoordinates)} values of alpha, "
                 f"distance ‖θ_B − θ_A‖ = {s.directions.get('distance', float('nan')):.6g}"]
        for a in (0.0, 1.0):
            i = np.flatnonzero(s.xcoordinates == a)
            if len(i):
                parts = [f"{m} {float(v[i[0]]):.6g}" for m, v in s.values.items()]
                lines.append(f"alpha {a:g}: " + ", ".join(parts))
        ok = np.isfinite(loss) & s.computed
        if ok.any():
            j = int(np.argmax(np.where(ok, loss, -np.inf)))
            lines.append(f"max train loss {float(loss[j]):.6g} at alpha {float(s.xcoordinates[j]):.4g}")
        if s.n_nonfinite():
            lines.append(f"non-finite train loss at {s.n_nonfinite()} value(s) of alpha")
        if s.path:
            lines.append(f"wrote {s.path}")
        return "\n".join(lines)


def _resolve_range(r: Optional[Range], coords: Optional[np.ndarray], *, pad_abs: float = 0.0,
                   pad_rel: float = 0.0, default_n: int = 51, name: str = "--range") -> Tuple[float, float, int]:
    """An explicit ``(lo, hi, n)``, or ``("auto", n)``: the span of ``coords`` and 0, padded."""
    if r is not None and r[0] != "auto":
        return float(r[0]), float(r[1]), int(r[2])
    n = int(r[1]) if r is not None else default_n
    if coords is None:
        raise LandscapeError(f"{name} auto is only for --plane and --direction pca")
    lo, hi = min(0.0, float(np.min(coords))), max(0.0, float(np.max(coords)))
    pad = pad_abs + pad_rel * max(hi - lo, 1e-12)
    return round(lo - pad, 6), round(hi + pad, 6), n


def _session_objectives(session: Any, test: bool) -> Dict[str, Objective]:
    objs = {"train": session.train}
    if test and session.test is not None:
        objs["test"] = session.test
    return objs


def _float_buffers(obj: Objective) -> Dict[str, torch.Tensor]:
    return {n: b for n, b in obj.model.named_buffers() if b.is_floating_point()}


def _load_points(paths: Sequence[str], session: Any, trust: bool) -> List[Any]:
    from .directions import load_point

    obj = session.train
    names = list(_float_buffers(obj))
    return [load_point(p, session.model, session.space, device=obj.theta0.device, dtype=obj.theta0.dtype,
                       buffer_names=names, trust=trust) for p in paths]


def _renormalise(d: DirectionSet, theta: torch.Tensor, space: ParamSpace, norm: str, include_bn: bool) -> DirectionSet:
    from .directions import normalize_direction

    if norm == "none":
        return d
    vecs = torch.stack([normalize_direction(v, theta, space, norm=norm, include_bn=include_bn) for v in d.vectors])
    return DirectionSet(vecs, d.kind, norm, include_bn, {}, {**d.info, "renormalised": True})


def slice_checkpoint(checkpoint: Optional[str] = None, *, dirs: int = 2, direction: str = "random",
                     norm: Optional[str] = None, include_bn: bool = False, xrange: Optional[Range] = None,
                     yrange: Optional[Range] = None, plane: Optional[Sequence[str]] = None,
                     trajectory: Sequence[str] = (), direction_file: Optional[str] = None, test: bool = True,
                     out: Optional[str] = None, overwrite: bool = False, eigen_tol: float = 1e-4,
                     channels_last: Optional[bool] = None, eval_batch_size: Optional[int | str] = "auto",
                     flush_seconds: float = 30.0, **session_kwargs: Any) -> Surface:
    """``landscape slice``: a 1-D or 2-D slice through a checkpoint (see the module docstring).

    ``direction``: ``random`` (``norm`` default ``filter``), ``eigen``, ``pca`` (``trajectory``:
    run folders or checkpoint files; centre = ``checkpoint`` or the last one), ``file``
    (``direction_file``); ``plane=(A, B, C)`` slices the plane through three checkpoints.
    ``session_kwargs`` go to :func:`landscape.session.open_session` (model, data, subset, seed, ...).
    ``eval_batch_size``: the batch size of the point evaluations (``"auto"``: the fastest, see
    :func:`choose_eval_config`); ``session_kwargs["batch_size"]`` is used for the Hessian.
    """
    from .directions import (
        eigen_directions,
        pca_directions,
        plane_directions,
        random_directions,
        read_direction_file,
        trajectory_files,
    )
    from .session import open_session

    if dirs not in (1, 2):
        raise LandscapeError("--dirs must be 1 or 2")
    kind = "plane" if plane else direction
    if kind not in ("random", "eigen", "pca", "file", "plane"):
        raise LandscapeError(f"unknown --direction {direction!r}")
    if plane and direction != "random":
        raise LandscapeError("--plane gives the directions itself; drop --direction")
    if plane and dirs != 2:
        raise LandscapeError("--plane makes a 2-D slice; use --dirs 2")
    if plane and checkpoint:
        raise LandscapeError("--plane A B C centres the slice on A; do not pass CHECKPOINT as well")
    if kind == "file" and not direction_file:
        raise LandscapeError("--direction file needs --direction-file PATH")
    if kind == "pca" and not trajectory:
        raise LandscapeError("--direction pca needs --trajectory RUN_DIR (or checkpoint files)")
    if kind in ("plane",) and norm not in (None, "none"):
        raise LandscapeError("--norm does not apply to --plane (the checkpoints fix the directions)")
    traj = trajectory_files(trajectory) if kind == "pca" else []
    centre_path = plane[0] if plane else (checkpoint or (traj[-1] if traj else None))
    if not centre_path:
        raise LandscapeError("missing CHECKPOINT")
    norm = norm or ("filter" if kind == "random" else "none")
    trust = bool(session_kwargs.get("trust", False))
    seed = int(session_kwargs.get("seed", 0) or 0)

    session = open_session(centre_path, **session_kwargs)
    obj = session.train
    theta0, space = obj.theta0, session.space
    objectives = _session_objectives(session, test)
    others: List[str] = []

    def make() -> DirectionSet:
        if kind == "random":
            return random_directions(space, theta0, k=dirs, seed=seed, norm=norm, include_bn=include_bn)
        if kind == "eigen":
            d = eigen_directions(obj, k=dirs, seed=seed, tol=eigen_tol)
            if not d.info["converged"]:
                warnings.warn(f"Lanczos did not converge to tol {eigen_tol} (residuals "
                              f"{', '.join(f'{r:.2g}' for r in d.info['residuals'])})", stacklevel=2)
            return _renormalise(d, theta0, space, norm, include_bn)
        if kind == "file":
            d = read_direction_file(direction_file, space, k=dirs, device=theta0.device, dtype=theta0.dtype,
                                    buffer_shapes={n: tuple(b.shape) for n, b in _float_buffers(obj).items()},
                                    state_layout=[(n, tuple(t.shape)) for n, t in obj.model.state_dict().items()])
            return _renormalise(d, theta0, space, norm, include_bn) if norm != "none" else d
        if kind == "plane":
            return plane_directions(*_load_points(plane, session, trust))
        pts = _load_points(traj, session, trust)
        d = pca_directions(theta0, torch.stack([p.theta for p in pts]), space, k=dirs, include_bn=include_bn,
                           paths=[p.path for p in pts])
        others.extend(p.sha256 for p in pts)
        return _renormalise(d, theta0, space, norm, include_bn)

    # auto ranges (plane, pca) need the directions first; they are deterministic
    eager = make() if kind in ("plane", "pca") else None
    coords = None
    if kind == "plane":
        coords = np.array([c["coordinates"] for c in eager.info["checkpoints"]])
        others.extend(c["sha256"] for c in eager.info["checkpoints"][1:])
    elif kind == "pca":
        coords = np.array(eager.info["trajectory"]["coordinates"])
    pads = {"pad_abs": 0.5} if kind == "plane" else {"pad_rel": 0.25}
    xr = _resolve_range(xrange or (("auto", 51) if coords is not None else (-1.0, 1.0, 51)),
                        None if coords is None else coords[:, 0], **pads)
    yr = None
    if dirs == 2:
        yr = _resolve_range(yrange or xrange or (("auto", 51) if coords is not None else (-1.0, 1.0, 51)),
                            None if coords is None else coords[:, 1], name="--yrange", **pads)
    grid = Grid.from_ranges(xr, yr)

    prov = session.provenance()
    sha = session.checkpoint.sha256() if session.checkpoint else None
    if kind == "file":
        from .directions import file_sha256

        others.append(file_sha256(direction_file))
    settings = {"command": "slice", "checkpoint_sha256": sha, "model": prov["model"], "data": prov["data"],
                "loss": session.loss, "subset": session_kwargs.get("subset"), "seed": seed,
                "bn_mode": session_kwargs.get("bn_mode", "eval"), "dtype": session_kwargs.get("dtype", "float32"),
                "direction": kind, "norm": norm, "include_bn": include_bn, "dirs": dirs,
                "xrange": _range_setting(xrange, xr), "yrange": _range_setting(yrange or xrange, yr) if dirs == 2 else None,
                "test": "test" in objectives, "other_files_sha256": others}
    if settings["bn_mode"] == "train":
        settings["batch_size"] = obj.batch_size
    attrs = {**prov, "checkpoint_sha256": sha, "subset": settings["subset"], "seed": seed, "norm": norm,
             "include_bn": include_bn, "direction": kind, "bn_mode": settings["bn_mode"], "dtype": settings["dtype"],
             "batch_size": obj.batch_size, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return compute_surface(objectives, eager if eager is not None else make, grid, out=out, settings=settings,
                           attrs=attrs, overwrite=overwrite, channels_last=channels_last,
                           batch_size=eval_batch_size, flush_seconds=flush_seconds, extra=_extra_writer, desc=f"slice {kind}")


def _range_setting(given: Optional[Range], resolved: Tuple[float, float, int]) -> Any:
    if given is not None and given[0] == "auto":
        return ["auto", int(given[1])]
    return [float(resolved[0]), float(resolved[1]), int(resolved[2])]


def _extra_writer(f: Any) -> None:
    """Plotting helpers next to the surfaces: the PCA trajectory and the plane's checkpoints."""
    import h5py

    info = json.loads(f.attrs["directions_info"])
    text = h5py.string_dtype()
    if "trajectory" in info:
        f.create_dataset("trajectory", data=np.asarray(info["trajectory"]["coordinates"], dtype=np.float64))
        f.create_dataset("trajectory_checkpoints", data=np.asarray(info["trajectory"]["files"], dtype=object),
                         dtype=text)
        f.attrs["explained_variance_ratio"] = np.asarray(info["explained_variance_ratio"])
        f.attrs["explained_variance"] = np.asarray(info["explained_variance"])
    if info.get("kind") == "plane":
        f.create_dataset("checkpoint_coordinates", data=np.asarray([c["coordinates"] for c in info["checkpoints"]]))
        f.attrs["plane_checkpoints"] = json.dumps([c["path"] for c in info["checkpoints"]])


def interpolate_checkpoints(a: str, b: str, *, alphas: Range = (-0.5, 1.5, 41), test: bool = True,
                            out: Optional[str] = None, overwrite: bool = False,
                            channels_last: Optional[bool] = None, eval_batch_size: Optional[int | str] = "auto",
                            **session_kwargs: Any) -> Interpolation:
    """``landscape interpolate A B``: loss and accuracy at ``(1 − α)·θ_A + α·θ_B`` (Goodfellow et
    al. 2015). BatchNorm running statistics are interpolated the same way (clamped at 0 for the
    variances), so α = 0 and α = 1 reproduce each checkpoint's own loss."""
    from .directions import interpolation_direction
    from .session import open_session

    session = open_session(a, **session_kwargs)
    pa, pb = _load_points([a, b], session, bool(session_kwargs.get("trust", False)))
    d = interpolation_direction(pa, pb)
    lo, hi, n = _resolve_range(alphas, None, name="--range")
    grid = Grid.from_ranges((lo, hi, n))
    prov = session.provenance()
    objectives = _session_objectives(session, test)
    settings = {"command": "interpolate", "checkpoint_sha256": pa.sha256, "other_files_sha256": [pb.sha256],
                "model": prov["model"], "data": prov["data"], "loss": session.loss,
                "subset": session_kwargs.get("subset"), "seed": int(session_kwargs.get("seed", 0) or 0),
                "bn_mode": session_kwargs.get("bn_mode", "eval"), "dtype": session_kwargs.get("dtype", "float32"),
                "xrange": [lo, hi, n], "test": "test" in objectives}
    if settings["bn_mode"] == "train":
        settings["batch_size"] = session.train.batch_size
    attrs = {**prov, "checkpoint_sha256": pa.sha256, "checkpoint_a": pa.path, "checkpoint_b": pb.path, "checkpoint_b_sha256": pb.sha256,
             "subset": settings["subset"], "seed": settings["seed"], "norm": "none", "direction": "interpolate",
             "bn_mode": settings["bn_mode"], "dtype": settings["dtype"], "batch_size": session.train.batch_size,
             "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    surface = compute_surface(objectives, d, grid, out=out, settings=settings, attrs=attrs, overwrite=overwrite,
                              channels_last=channels_last, batch_size=eval_batch_size, extra=_extra_writer,
                              desc="interpolate")
    return Interpolation(surface)
