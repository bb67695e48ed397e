"""Entry points: :func:`slice_checkpoint` (``landscape slice``), :func:`interpolate_checkpoints`
(``landscape interpolate``) and the driver they share, :func:`compute_surface`.

A slice is: a direction source (:mod:`landscape.directions`) → a grid (:mod:`.grid`, an auto range
from the source) → the settings a resume must match → the store (:mod:`.store`: create, or check
and load) → the point loop (:mod:`.evaluate`) → a :class:`~.surface.Surface`.

Distributed: :func:`~.evaluate.run_points` splits the points still to do across ranks
(:func:`landscape.distributed.shard`) and gathers the results to rank 0, which alone writes.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import distributed as dist
from ..directions import (
    Directions,
    DirectionSet,
    DirectionSource,
    EigenSource,
    FileSource,
    InterpolationSource,
    PcaSource,
    PlaneSource,
    RandomSource,
)
from ..errors import Field, LandscapeError, OptionError
from ..objective import Objective
from ..params import ParamSpace
from .evaluate import (
    EvalConfig,
    PointEvaluator,
    check_batch_size,
    choose_eval_config,
    prepare_objectives,
    run_points,
    steady_allocator,
)
from .grid import Grid, Range, range_setting, resolve_range
from .store import SurfaceStore
from .surface import Interpolation, Surface, surface_from

BatchSize = Optional[int | str]  # an int, None (the fixed rule) or "auto" (fastest by timing, opt-in)


@dataclass(frozen=True)
class SliceConfig:
    """What ``landscape slice`` computes (the session options — model, data, subset, seed, ... —
    are separate: they go to :func:`landscape.session.open_session`).

    ``direction``: ``random`` (``norm`` default ``filter``), ``eigen`` (``eigen_tol``), ``pca``
    (``trajectory``: run folders or checkpoint files; centre = the checkpoint or the last one),
    ``file`` (``direction_file``); ``plane=(A, B, C)`` slices the plane through three checkpoints.
    ``xrange``/``yrange``: ``(lo, hi, n)`` or ``("auto", n)`` (pca and plane). ``eval_batch_size``:
    see :func:`~.evaluate.choose_eval_config`. ``flush_seconds``: fold the journal into ``out``
    at least this often.
    """

    dirs: int = 2
    direction: str = "random"
    norm: Optional[str] = None
    include_bn: bool = False
    xrange: Optional[Range] = None
    yrange: Optional[Range] = None
    plane: Optional[Sequence[str]] = None
    trajectory: Sequence[str] = ()
    direction_file: Optional[str] = None
    test: bool = True
    out: Optional[str] = None
    overwrite: bool = False
    eigen_tol: float = 1e-4
    channels_last: Optional[bool] = None
    eval_batch_size: BatchSize = None
    flush_seconds: float = 30.0

    @property
    def kind(self) -> str:
        return "plane" if self.plane else self.direction


@dataclass(frozen=True)
class InterpolateConfig:
    """What ``landscape interpolate A B`` computes: ``alphas`` ``(lo, hi, n)``; the rest as in
    :class:`SliceConfig`."""

    alphas: Range = (-0.5, 1.5, 41)
    test: bool = True
    out: Optional[str] = None
    overwrite: bool = False
    channels_last: Optional[bool] = None
    eval_batch_size: BatchSize = None
    flush_seconds: float = 30.0


def _split(config_type: type, config: Any, kwargs: Dict[str, Any]) -> Tuple[Any, Dict[str, Any]]:
    """A config with the keyword arguments naming its fields applied; the rest are session options."""
    names = {f.name for f in dataclasses.fields(config_type)}
    mine = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
    return dataclasses.replace(config or config_type(), **mine), kwargs


# ------------------------------------------------------------------ slice
def source_for(config: SliceConfig, *, seed: int, trust: bool) -> DirectionSource:
    """The direction source of a slice config (after checking the combination of options)."""
    from ..directions import trajectory_files

    if config.dirs not in (1, 2):
        raise OptionError("{dirs} must be 1 or 2")
    kind = config.kind
    if kind not in ("random", "eigen", "pca", "file", "plane"):
        raise OptionError("unknown {direction} {value!r}", value=config.direction)
    if config.plane and config.direction != "random":
        raise OptionError("{plane} gives the directions itself; drop {direction}")
    if config.plane and config.dirs != 2:
        raise OptionError("{plane} makes a 2-D slice; use {dirs} 2")
    if config.plane and len(config.plane) != 3:
        raise OptionError("{plane} needs three checkpoints A B C")
    if kind == "file" and not config.direction_file:
        raise OptionError("{direction} file needs {direction_file} PATH")
    if kind == "pca" and not config.trajectory:
        raise OptionError("{direction} pca needs {trajectory} RUN_DIR (or checkpoint files)")
    if kind == "plane" and config.norm not in (None, "none"):
        raise OptionError("{norm} does not apply to {plane} (the checkpoints fix the directions)")
    norm = config.norm or ("filter" if kind == "random" else "none")
    k, inc = config.dirs, config.include_bn
    if kind == "random":
        return RandomSource(k=k, seed=seed, norm=norm, include_bn=inc)
    if kind == "eigen":
        return EigenSource(k=k, seed=seed, tol=config.eigen_tol, norm=norm, include_bn=inc)
    if kind == "file":
        return FileSource(path=str(config.direction_file), k=k, norm=norm, include_bn=inc, trust=trust)
    if kind == "plane":
        return PlaneSource(paths=tuple(str(p) for p in config.plane), trust=trust)
    return PcaSource(files=tuple(trajectory_files(config.trajectory)), k=k, norm=norm, include_bn=inc, trust=trust)


def _session_objectives(session: Any, test: bool) -> Dict[str, Objective]:
    objs = {"train": session.train}
    if test and session.test is not None:
        objs["test"] = session.test
    return objs


def _common_settings(session: Any, session_kwargs: Mapping[str, Any], objectives: Mapping[str, Objective]
                     ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The settings (resume key) and attributes every surface file has, from the session."""
    prov = session.provenance()
    seed = int(session_kwargs.get("seed", 0) or 0)
    settings = {"model": prov["model"], "data": prov["data"], "loss": session.loss,
                "subset": session_kwargs.get("subset"), "seed": seed,
                "bn_mode": session_kwargs.get("bn_mode", "eval"), "dtype": session_kwargs.get("dtype", "float32"),
                "test": "test" in objectives}
    # preprocessing and the run's split change every value; keys only when set, so older files resume
    settings.update({k: prov[k] for k in ("normalize", "split")
                     if prov.get(k) and (k != "normalize" or session_kwargs.get("normalize"))})
    attrs = {**prov, "subset": settings["subset"], "seed": seed, "bn_mode": settings["bn_mode"],
             "dtype": settings["dtype"], "batch_size": session.train.batch_size}
    return settings, attrs


def slice_checkpoint(checkpoint: Optional[str] = None, config: Optional[SliceConfig] = None,
                     **kwargs: Any) -> Surface:
    """``landscape slice``: a 1-D or 2-D slice through a checkpoint.

    ``config`` (:class:`SliceConfig`) says what to compute; keyword arguments naming its fields
    override it (``slice_checkpoint(ck, dirs=1, out="s.h5")``), and the remaining ones go to
    :func:`landscape.session.open_session` (model, data, subset, seed, batch_size, ...);
    ``batch_size`` is used for the Hessian (eigen directions), ``eval_batch_size`` for the points.
    """
    from ..session import open_session

    config, session_kwargs = _split(SliceConfig, config, dict(kwargs))
    _check_eval_options(config.eval_batch_size, config.flush_seconds)
    seed = int(session_kwargs.get("seed", 0) or 0)
    source = source_for(config, seed=seed, trust=bool(session_kwargs.get("trust", False)))
    if config.plane and checkpoint:
        raise OptionError("{plane} A B C centres the slice on A; do not pass CHECKPOINT as well")
    centre_path = checkpoint or source.centre()
    if not centre_path:
        raise LandscapeError("missing CHECKPOINT")

    session = open_session(centre_path, **session_kwargs)
    objectives = _session_objectives(session, config.test)
    made: Optional[Directions] = source.make(session) if source.eager else None
    span = made.span if made is not None else None
    pads = {"pad_abs": made.pad_abs, "pad_rel": made.pad_rel} if made is not None else {}
    default = ("auto", 51) if span is not None else (-1.0, 1.0, 51)
    xr = resolve_range(config.xrange or default, None if span is None else span[:, 0], **pads)
    yr = None
    if config.dirs == 2:
        yr = resolve_range(config.yrange or config.xrange or default, None if span is None else span[:, 1],
                           name=Field("yrange"), **pads)
    grid = Grid.from_ranges(xr, yr)

    common, attrs = _common_settings(session, session_kwargs, objectives)
    sha = session.checkpoint.sha256() if session.checkpoint else None
    others = [*(made.files_sha256 if made is not None else ()), *source.files_sha256()]
    norm = getattr(source, "norm", "none")
    settings = {"command": "slice", "checkpoint_sha256": sha, **common, "direction": source.kind, "norm": norm,
                "include_bn": config.include_bn, "dirs": config.dirs, "xrange": range_setting(config.xrange, xr),
                "yrange": range_setting(config.yrange or config.xrange, yr) if config.dirs == 2 else None,
                "other_files_sha256": others}
    if settings["bn_mode"] == "train":
        settings["batch_size"] = session.train.batch_size
    attrs.update({"checkpoint_sha256": sha, "norm": norm, "include_bn": config.include_bn, "direction": source.kind})

    def directions() -> DirectionSet:
        return (made if made is not None else source.make(session)).set

    return compute_surface(objectives, directions, grid, out=config.out, settings=settings, attrs=attrs,
                           overwrite=config.overwrite, channels_last=config.channels_last,
                           batch_size=config.eval_batch_size, flush_seconds=config.flush_seconds,
                           extra=_extra_writer, desc=f"slice {source.kind}")


def _check_eval_options(batch_size: BatchSize, flush_seconds: float) -> None:
    if batch_size is not None and batch_size != "auto":
        check_batch_size(batch_size, name=Field("eval_batch_size"))
    if not (flush_seconds >= 0):
        raise OptionError("{flush_seconds} must be >= 0 (got {value!r})", value=flush_seconds)


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


# ------------------------------------------------------------------ interpolate
def interpolate_checkpoints(a: str, b: str, config: Optional[InterpolateConfig] = None,
                            **kwargs: Any) -> Interpolation:
    """``landscape interpolate A B``: loss and accuracy at ``(1 − α)·θ_A + α·θ_B`` (Goodfellow et
    al. 2015). BatchNorm running statistics are interpolated the same way (clamped at 0 for the
    variances), so α = 0 and α = 1 reproduce each checkpoint's own loss. Keyword arguments naming
    :class:`InterpolateConfig` fields override ``config``; the rest go to ``open_session``."""
    from ..session import open_session

    config, session_kwargs = _split(InterpolateConfig, config, dict(kwargs))
    _check_eval_options(config.eval_batch_size, config.flush_seconds)
    source = InterpolationSource(a=a, b=b, trust=bool(session_kwargs.get("trust", False)))
    session = open_session(a, **session_kwargs)
    made = source.make(session)
    d = made.set
    pa, pb = d.info["checkpoints"]
    lo, hi, n = resolve_range(config.alphas, None, name=Field("alphas"))
    grid = Grid.from_ranges((lo, hi, n))
    objectives = _session_objectives(session, config.test)
    common, attrs = _common_settings(session, session_kwargs, objectives)
    settings = {"command": "interpolate", "checkpoint_sha256": pa["sha256"], "other_files_sha256": list(made.files_sha256),
                **common, "xrange": [lo, hi, n]}
    if settings["bn_mode"] == "train":
        settings["batch_size"] = session.train.batch_size
    attrs.update({"checkpoint_sha256": pa["sha256"], "checkpoint_a": pa["path"], "checkpoint_b": pb["path"],
                  "checkpoint_b_sha256": pb["sha256"], "norm": "none", "direction": "interpolate"})
    surface = compute_surface(objectives, d, grid, out=config.out, settings=settings, attrs=attrs,
                              overwrite=config.overwrite, channels_last=config.channels_last,
                              batch_size=config.eval_batch_size, flush_seconds=config.flush_seconds,
                              extra=_extra_writer, desc="interpolate")
    return Interpolation(surface)


# ------------------------------------------------------------------ driver
def compute_surface(objectives: Mapping[str, Objective], directions: DirectionSet | Callable[[], DirectionSet],
                    grid: Grid, *, centre: Optional[torch.Tensor] = None,
                    centre_buffers: Optional[Mapping[str, torch.Tensor]] = None, out: Optional[str] = None,
                    settings: Optional[Mapping[str, Any]] = None, attrs: Optional[Mapping[str, Any]] = None,
                    overwrite: bool = False, flush_seconds: float = 30.0, channels_last: Optional[bool] = None,
                    batch_size: BatchSize = None, extra: Optional[Callable[[Any], None]] = None,
                    desc: str = "slice") -> Surface:
    """Evaluate ``objectives`` (``{"train": obj, "test": obj}``) on ``grid`` around ``centre``.

    ``directions`` may be a callable, called only when the file does not already hold them (a
    resumed run reads the stored directions and evaluation settings, so it continues exactly the
    same surface). With ``out`` the points are stored as described in :mod:`.store`; ``settings``
    are what must match for a resume, and the stored coordinates must equal ``grid``'s.
    ``channels_last``/``batch_size``: see :func:`~.evaluate.choose_eval_config`. Non-finite
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
        steady_allocator()
        t_eval, c_eval, f_eval = time.perf_counter(), time.process_time(), _minor_faults()
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
    t_end, c_end, f_end = time.perf_counter(), time.process_time(), _minor_faults()
    per = (lambda v: v / len(todo) if todo else None)  # noqa: E731
    stats = {"computed_now": len(todo), "seconds": t_end - t0, "eval_seconds": t_end - t_eval,
             "seconds_per_point": per(t_end - t_eval), "cpu_seconds_per_point": per(c_end - c_eval),
             "minor_faults_per_point": per(f_end - f_eval), **config.to_json()}
    if not dist.is_main():
        return Surface(grid.x, grid.y, {}, np.zeros(grid.shape, bool), info, attrs, out, stats)
    surface = surface_from(store, grid, info, attrs, out, stats)
    bad = surface.n_nonfinite()
    if bad:
        warnings.warn(f"the train loss is not finite at {bad} of {surface.computed.size} points "
                      "(stored as NaN/inf)", stacklevel=2)
    return surface


def _minor_faults() -> int:
    """Minor page faults of this process so far (memory handed back and faulted in again)."""
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
    except (ImportError, OSError):
        return 0


def _prepare(store: SurfaceStore, directions: Any, grid: Grid, first: Objective, centre: torch.Tensor,
             space: ParamSpace, buffer_shapes: Mapping[str, Tuple[int, ...]], metrics: Sequence[str],
             settings: Mapping[str, Any], attrs: Dict[str, Any], *, overwrite: bool,
             channels_last: Optional[bool], batch_size: BatchSize,
             extra: Optional[Callable[[Any], None]]) -> Tuple[Grid, DirectionSet, EvalConfig, List[int]]:
    """Create or check-and-load the file (rank 0), make or read the directions, choose the
    evaluation settings, and list the points still to do; the same on every rank."""
    out = store.path
    status: Tuple[str, Any] = ("new", "")  # ("error", exc): every rank raises rank 0's error
    if out and dist.is_main() and store.exists() and not overwrite:
        try:
            store.check(settings)
            status = ("resume", "")
        except LandscapeError as exc:
            status = ("error", exc)
    status = dist.broadcast_object(status)
    if status[0] == "error":
        raise status[1]
    dirs, config = None, None
    if status[0] == "resume":
        if dist.is_main():
            try:
                grid, dirs = store.load(space=space, device=centre.device, dtype=centre.dtype,
                                        buffer_shapes=buffer_shapes, expect=grid)
                status = ("resume", "")
            except LandscapeError as exc:
                status = ("error", exc)
            if dirs is not None:
                config = store.eval_config or choose_eval_config(first, channels_last=channels_last,
                                                                 batch_size=first.batch_size)
        status = dist.broadcast_object(status)
        if status[0] == "error":
            raise status[1]
    else:
        dirs = directions() if callable(directions) else directions
        if dist.is_main():
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
    rank 0 only)."""
    payload = None
    if dist.is_main():
        payload = (dirs.vectors.cpu(), {n: t.cpu() for n, t in dirs.buffer_vectors.items()},
                   dirs.kind, dirs.norm, dirs.include_bn, dirs.info, grid, config)
    vec, bufs, kind, norm, inc, info, grid, config = dist.broadcast_object(payload)
    dev, dt = centre.device, centre.dtype
    return DirectionSet(vec.to(device=dev, dtype=dt), kind, norm, inc,
                        {n: t.to(device=dev, dtype=dt) for n, t in bufs.items()}, info), grid, config
