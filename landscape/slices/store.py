"""The crash-safe surface file: an HDF5 file replaced only atomically, plus an append-only journal.

The ``.h5`` file is only ever replaced atomically (written to a temporary file, fsynced, then
:func:`os.replace`), so it is always a complete, readable file. Points are appended as they are
computed to a journal ``FILE.h5.journal`` (fixed-size records with a CRC, written with one
``os.write`` each, so a SIGKILL loses at most the point in flight and never corrupts earlier
records); the journal is folded into the ``.h5`` every ``flush_seconds`` and at the end. Re-running
the same command reads the file and the journal and computes only what is missing; a file made
with other settings (or holding another grid) is refused unless ``overwrite``.

Names too long for the file system once ``.journal`` (or the temporary file's prefix and suffix)
is added are shortened to a prefix of the name plus a hash of the whole name (:func:`side_path`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..directions import DirectionSet, directions_from_rows, h5_direction_rows
from ..errors import LandscapeError, OptionError
from ..params import ParamSpace
from .evaluate import EvalConfig, check_batch_size
from .grid import AXIS_ORDER, Grid

FORMAT = "landscape-surface-1"
_JOURNAL_MAGIC = b"LSJ1"
_PID_WIDTH = 10  # room kept for the process id in temporary file names


def settings_key(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the settings that determine a surface's values."""
    text = json.dumps(_plain(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(obj: Any) -> Any:
    from ..results import jsonable

    return jsonable(obj)


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder if folder.exists() else ".", "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def side_path(path: Path, prefix: str, suffix: str, *, reserve: int = 0) -> Path:
    """``prefix + name + suffix`` next to ``path``; if that (plus ``reserve`` characters) is longer
    than the file system allows, ``prefix + start of name + "~" + 16 hex digits of its SHA-256 +
    suffix`` instead (deterministic, so every run finds the same file)."""
    name = path.name
    limit = _name_max(path.parent) - reserve
    if len((prefix + name + suffix).encode()) <= limit:
        return path.with_name(prefix + name + suffix)
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    keep = max(0, limit - len(prefix.encode()) - len(suffix.encode()) - 17)
    head = name.encode()[:keep].decode("utf-8", "ignore")
    return path.with_name(f"{prefix}{head}~{digest}{suffix}")


def journal_path(path: str | Path) -> Path:
    """Where the journal of the surface file ``path`` lives (``FILE.h5.journal`` when it fits)."""
    return side_path(Path(path), "", ".journal")


class SurfaceStore:
    """An HDF5 surface file plus its append-only journal (see the module docstring)."""

    def __init__(self, path: Optional[str | Path]) -> None:
        self.path = Path(path) if path else None
        self.journal = journal_path(self.path) if path else None
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
        raise OptionError("{path} was made with other settings or another checkpoint ({diffs}); "
                          "pass {overwrite} to replace it, or choose another {out}",
                          path=self.path, diffs='; '.join(diffs[:4]) or 'different settings')

    def _read_settings(self) -> Dict[str, Any]:
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise OptionError("{path} exists and is not a landscape surface file; "
                                      "pass {overwrite} to replace it", path=self.path)
                out = json.loads(f.attrs["settings"])
                out["__key__"] = str(f.attrs["settings_key"])
                return out
        except (OSError, KeyError, ValueError):
            raise OptionError("{path} exists and is not a readable HDF5 file; "
                              "pass {overwrite} to replace it", path=self.path) from None

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
    def read_arrays(self, f: Any) -> Grid:
        """Key, metrics, grid, values and mask from an open file; shapes are checked first."""
        self.key = str(f.attrs["settings_key"])
        self.metrics = tuple(str(m) for m in json.loads(f.attrs["metrics"]))
        axes = [a for a in ("xcoordinates", "ycoordinates") if a in f]
        if "xcoordinates" not in axes or any(len(f[a].shape) != 1 for a in axes):
            raise OptionError("{path}: xcoordinates/ycoordinates missing or not 1-D; "
                              "pass {overwrite} to replace the file", path=self.path)
        x = np.asarray(f["xcoordinates"], dtype=np.float64)
        y = np.asarray(f["ycoordinates"], dtype=np.float64) if "ycoordinates" in f else None
        grid = Grid(x, y)
        for m in (*self.metrics, "computed"):
            if m not in f or tuple(f[m].shape) != grid.shape:
                raise OptionError("{path}: dataset {m} is missing or not of shape {shape}; "
                                  "pass {overwrite} to replace the file", path=self.path, m=m, shape=grid.shape)
        self.shape = grid.shape
        self.values = np.stack([np.asarray(f[m], dtype=np.float64).reshape(-1) for m in self.metrics], axis=1)
        self.computed = np.asarray(f["computed"], dtype=bool).reshape(-1)
        return grid

    def load(self, *, space: ParamSpace, device: torch.device, dtype: torch.dtype,
             buffer_shapes: Mapping[str, Tuple[int, ...]], expect: Optional[Grid] = None) -> Tuple[Grid, DirectionSet]:
        """Read grid, values, mask, evaluation settings and directions, then replay the journal.

        ``expect``: the grid this command asks for; a file holding other coordinates is refused
        (its settings may match while its ``xcoordinates`` were changed by hand)."""
        import h5py

        try:
            return self._load(h5py, space=space, device=device, dtype=dtype, buffer_shapes=buffer_shapes,
                              expect=expect)
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise OptionError("{path} is not a complete landscape surface file ({kind}: {what}); "
                              "pass {overwrite} to replace it", path=self.path, kind=type(exc).__name__,
                              what=str(exc).splitlines()[0][:120] if str(exc) else 'unreadable') from None

    def _load(self, h5py: Any, *, space: ParamSpace, device: torch.device, dtype: torch.dtype,
              buffer_shapes: Mapping[str, Tuple[int, ...]], expect: Optional[Grid]) -> Tuple[Grid, DirectionSet]:
        with h5py.File(self.path, "r") as f:
            grid = self.read_arrays(f)
            if expect is not None and not grid.same_as(expect):
                raise OptionError("{path} holds other coordinates ({have}) than this command asks for "
                                  "({want}); pass {overwrite} to replace it, or choose another {out}",
                                  path=self.path, have=_axes(grid), want=_axes(expect))
            info = json.loads(f.attrs["directions_info"])
            if "eval_batch_size" in f.attrs:
                size = check_batch_size(_unattr_scalar(f.attrs["eval_batch_size"]),
                                        name=f"{self.path}: stored eval_batch_size")
                self.eval_config = EvalConfig(bool(f.attrs.get("channels_last", False)), size)
            rows = h5_direction_rows(f["directions"])
            dset = directions_from_rows(rows, space, k=grid.k, device=device, dtype=dtype,
                                        buffer_shapes=buffer_shapes, where=str(self.path))
            extra_info = {k: v for k, v in info.items() if k not in ("kind", "norm", "include_bn", "k", "norms", "cosine")}
            dirs = DirectionSet(dset.vectors, info.get("kind", "file"), info.get("norm", "none"),
                                bool(info.get("include_bn", False)), dset.buffer_vectors, extra_info)
        self.replay()
        return grid, dirs

    def init_memory(self, grid: Grid, metrics: Sequence[str]) -> None:
        self.metrics = tuple(metrics)
        self.shape = grid.shape
        self.values = np.full((grid.n_points, len(metrics)), np.nan)
        self.computed = np.zeros(grid.n_points, dtype=bool)

    # -- journal
    def _record_size(self) -> int:
        return 8 + 8 * len(self.metrics) + 4

    def replay(self) -> None:
        """Apply the journal's intact records of this file (a torn last record is dropped)."""
        if not self.journal.exists():
            return
        data = self.journal.read_bytes()
        head = self._header()
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
        """Open the journal (created if missing, with its folder) holding an exclusive lock: one
        writer per file."""
        if self._fd is not None or self.journal is None:
            return
        self.journal.parent.mkdir(parents=True, exist_ok=True)
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
            os.ftruncate(self._fd, len(self._header()))
        self._dirty = False

    def _tmp_stem(self) -> str:
        return side_path(self.path, ".", ".tmp-", reserve=_PID_WIDTH).name

    def _tmp_name(self) -> Path:
        return self.path.with_name(f"{self._tmp_stem()}{os.getpid()}")

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
        stem = self._tmp_stem()
        if not self.path.parent.exists():
            return
        for p in self.path.parent.iterdir():
            if not p.name.startswith(stem):
                continue
            try:
                pid = int(p.name[len(stem):])
            except ValueError:
                continue
            if pid == os.getpid() or not _pid_alive(pid):
                p.unlink(missing_ok=True)


def _axes(grid: Grid) -> str:
    def ax(v: np.ndarray) -> str:
        return f"{float(v[0]):g}:{float(v[-1]):g}:{len(v)}" if len(v) else "empty"

    return "x " + ax(grid.x) + ("" if grid.y is None else ", y " + ax(grid.y))


def _unattr_scalar(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


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
