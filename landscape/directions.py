"""Directions in weight space for loss slices.

A slice evaluates the loss at ``θ(x, y) = θ_c + x·d₀ + y·d₁`` around a centre ``θ_c``. This module
makes the directions ``d₀, d₁`` (one flat vector each, in the Objective's
:class:`~landscape.params.ParamSpace`):

* **random** Gaussian directions with *filter normalisation* (Li et al. 2018, "Visualizing the
  Loss Landscape of Neural Nets", §4): every filter of the direction — one output channel of a
  convolution, one output neuron (row) of a linear layer, i.e. one slice along dimension 0 — is
  rescaled to the norm of the matching filter of the weights, so the slice is comparable across
  networks whose weights have different scales. ``norm="layer"`` rescales each parameter tensor as
  a whole, ``norm="none"`` keeps the raw Gaussian. Biases and normalisation-layer parameters are
  zeroed by default (Li et al.'s "ignore biasbn"); with ``include_bn=True`` each such 1-D tensor is
  rescaled as a whole to the norm of the weights' tensor (an element-wise "filter" of one number
  would make every entry ±|θᵢ|). BatchNorm running statistics are buffers, not parameters: random
  directions never touch them. The two directions of a plane are drawn independently and are not
  orthogonalised (see the README);
* **eigen**: the top Hessian eigenvectors (unit norm) from :mod:`landscape.hessian.lanczos`;
* **interpolation** between two checkpoints (Goodfellow et al. 2015, "Qualitatively characterizing
  neural network optimization problems"): ``d₀ = θ_B − θ_A`` around ``θ_A``;
* **plane** through three checkpoints (as in Garipov et al. 2018): ``d₀ = θ_B − θ_A`` and ``d₁`` the
  part of ``θ_C − θ_A`` orthogonal to ``d₀``, so A, B, C sit at (0, 0), (1, 0), (c, 1);
* **pca** of a trajectory of checkpoints (Li et al. 2018, §7): the top principal components of
  ``{θ_i − θ_c}`` (mean-centred, as their scikit-learn code does), with the explained variance and
  the trajectory projected onto the plane;
* **file**: directions read from an HDF5 file (this package's layout or Li et al.'s
  ``xdirection``/``ydirection``) or a ``.pt`` file (a state-dict-like dict, a list of them, or flat
  tensors).

For checkpoint-based directions (interpolation, plane) the floating-point buffers (BatchNorm running
statistics) move with the weights, ``b(x, y) = b_c + x·e₀ + y·e₁``, so each checkpoint's own loss
is reproduced at its coordinates; ``buffer_vectors`` holds ``e₀, e₁``.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .checkpoint import load_checkpoint, load_into, strip_prefixes
from .errors import LandscapeError, OptionError, Phrase, SpecError
from .params import ParamSpace

NORMS = ("filter", "layer", "none")
KINDS = ("random", "eigen", "pca", "file", "interpolate", "plane")
_EPS = 1e-10


@dataclass(frozen=True)
class DirectionSet:
    """``k`` directions as rows of ``vectors`` ``(k, dim)``, and how they were made.

    ``buffer_vectors`` maps buffer names to ``(k, *shape)`` tensors for directions that also move
    BatchNorm running statistics (interpolation, plane); empty otherwise. ``info`` holds what the
    construction measured (eigenvalues and residuals, explained variance, cosine between the
    directions, checkpoint coordinates, the projected trajectory).
    """

    vectors: torch.Tensor
    kind: str
    norm: str
    include_bn: bool = False
    buffer_vectors: Dict[str, torch.Tensor] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.vectors.shape[0])

    def to_json(self) -> dict:
        v = self.vectors.double()
        out = {"kind": self.kind, "norm": self.norm, "include_bn": self.include_bn, "k": self.k,
               "norms": [float(x) for x in v.norm(dim=1)]}
        if self.k == 2:
            out["cosine"] = cosine(v[0], v[1])
        out.update(self.info)
        return out


@dataclass(frozen=True)
class CheckpointPoint:
    """A checkpoint's weights as a flat vector in a session's space, with its float buffers."""

    path: str
    sha256: str
    theta: torch.Tensor
    buffers: Dict[str, torch.Tensor]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = float(a.double().norm()), float(b.double().norm())
    if na == 0.0 or nb == 0.0:
        return float("nan")
    return float(a.double() @ b.double()) / (na * nb)


# ------------------------------------------------------------------ normalisation
def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise SpecError(f"unknown normalisation {norm!r}; choose {', '.join(NORMS)}")


def normalize_direction(d: torch.Tensor, theta: torch.Tensor, space: ParamSpace, *, norm: str = "filter",
                        include_bn: bool = False) -> torch.Tensor:
    """A normalised copy of the flat direction ``d`` relative to the weights ``theta`` (Li et al. §4).

    ``filter``: each slice along dim 0 of a ≥2-D weight gets the norm of the same slice of the
    weight; ``layer``: each tensor gets the norm of its weight tensor; ``none``: unchanged.
    Biases and normalisation-layer parameters are zeroed unless ``include_bn``; then (for
    ``filter`` and ``layer``) each is rescaled as a whole tensor.
    """
    _check_norm(norm)
    out = d.detach().clone()
    for (a, b), shape, kind in zip(space.offsets(), space.shapes, space.kinds):
        dv, wv = out[a:b].view(shape), theta[a:b].view(shape)
        if kind in ("bias", "norm") and not include_bn:
            dv.zero_()
        elif norm == "filter" and dv.dim() >= 2:
            dn = dv.reshape(shape[0], -1).norm(dim=1)
            wn = wv.reshape(shape[0], -1).norm(dim=1)
            dv.mul_((wn / (dn + _EPS)).view(-1, *([1] * (dv.dim() - 1))))
        elif norm != "none":
            dv.mul_(wv.norm() / (dv.norm() + _EPS))
    return out


def filter_norms(v: torch.Tensor, space: ParamSpace) -> Dict[str, torch.Tensor]:
    """Per-filter norms (dim-0 slices) of each ≥2-D parameter, whole-tensor norms of 1-D ones."""
    out = {}
    for name, (a, b), shape in zip(space.names, space.offsets(), space.shapes):
        t = v[a:b].view(shape)
        out[name] = t.reshape(shape[0], -1).norm(dim=1) if t.dim() >= 2 else t.norm().reshape(1)
    return out


def bias_bn_mask(space: ParamSpace, *, like: torch.Tensor, include_bn: bool) -> torch.Tensor:
    """1 on the coordinates a direction may move (all, or weights only)."""
    return space.mask(("weight", "bias", "norm") if include_bn else ("weight",), like=like)


# ------------------------------------------------------------------ random
def random_directions(space: ParamSpace, theta: torch.Tensor, *, k: int = 2, seed: int = 0,
                      norm: str = "filter", include_bn: bool = False) -> DirectionSet:
    """``k`` independent Gaussian directions, normalised by :func:`normalize_direction`.

    Drawn on the CPU from ``torch.Generator().manual_seed(seed)`` parameter by parameter, all
    parameters (biases too, before they are zeroed), so a seed gives the same directions on any
    device and with or without ``include_bn``.
    """
    _check_norm(norm)
    gen = torch.Generator().manual_seed(int(seed))
    rows = []
    for _ in range(k):
        raw = torch.cat([torch.randn(int(torch.Size(s).numel()), generator=gen) for s in space.shapes])
        raw = raw.to(device=theta.device, dtype=theta.dtype)
        rows.append(normalize_direction(raw, theta, space, norm=norm, include_bn=include_bn))
    vectors = torch.stack(rows)
    return DirectionSet(vectors, "random", norm, include_bn, info={"seed": int(seed)})


# ------------------------------------------------------------------ eigenvectors
def fix_sign(v: torch.Tensor) -> torch.Tensor:
    """Flip ``v`` so that its largest-magnitude entry is positive (a reproducible sign)."""
    i = int(v.abs().argmax())
    return v if float(v[i]) >= 0 else -v


def eigen_directions(objective: Any, *, k: int = 2, seed: int = 0, tol: float = 1e-4,
                     max_iter: Optional[int] = None) -> DirectionSet:
    """The top-``k`` (largest algebraic) Hessian eigenvectors at the objective's weights, unit norm.

    Uses :func:`landscape.hessian.lanczos.eigsh` on a
    :class:`landscape.hessian.operator.HessianOperator`; eigenvalues, residuals ``‖Hv − λv‖`` and
    the convergence flag go into ``info``.
    """
    try:
        from .hessian.lanczos import eigsh
        from .hessian.operator import HessianOperator
    except ImportError as exc:  # the Hessian engine is a separate module
        raise OptionError("{direction} eigen needs landscape.hessian ({exc})", exc=exc) from None
    op = HessianOperator(objective)
    res = eigsh(op, k=k, which="LA", tol=tol, seed=seed, max_iter=max_iter, converge="vectors")
    vecs = torch.as_tensor(res.eigenvectors).to(device=objective.theta0.device, dtype=objective.theta0.dtype)
    vecs = torch.stack([fix_sign(v / v.norm()) for v in vecs[:k]])
    info = {"eigenvalues": [float(x) for x in res.eigenvalues[:k]],
            "residuals": [float(x) for x in res.residuals[:k]],
            "converged": bool(res.converged), "matvecs": int(res.matvecs), "tol": tol, "seed": int(seed)}
    return DirectionSet(vecs, "eigen", "none", True, info=info)


# ------------------------------------------------------------------ checkpoints
def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_point(path: str, model: torch.nn.Module, space: ParamSpace, *, device: torch.device,
               dtype: torch.dtype, buffer_names: Sequence[str] = (), trust: bool = False) -> CheckpointPoint:
    """Read a checkpoint of the same architecture as ``model`` into a flat vector of ``space``.

    ``model`` is copied, never modified. ``buffer_names`` are the floating buffers to return.
    """
    ck = load_checkpoint(path, trust=trust)
    net = copy.deepcopy(ck.module if ck.module is not None else model)
    if ck.module is None:
        load_into(net, ck.state_dict, where=ck.path)
    other = ParamSpace.from_model(net)
    if other.names != space.names or tuple(map(tuple, other.shapes)) != tuple(map(tuple, space.shapes)):
        raise LandscapeError(f"{path}: its parameters do not match the centre checkpoint's model")
    params = dict(net.named_parameters())
    bufs = dict(net.named_buffers())
    _check_finite(path, {n: params[n] for n in space.names}, "parameter")
    _check_finite(path, {n: bufs[n] for n in buffer_names if n in bufs}, "buffer")
    theta = space.flatten({n: params[n].detach() for n in space.names}).to(device=device, dtype=dtype)
    missing = [n for n in buffer_names if n not in bufs]
    if missing:
        raise LandscapeError(f"{path}: buffer {missing[0]} is missing")
    buffers = {n: bufs[n].detach().to(device=device, dtype=dtype) for n in buffer_names}
    return CheckpointPoint(str(path), ck.sha256(), theta, buffers)


def _check_finite(path: str, tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """A one-line error naming the first tensor holding NaN or infinite values (a slice through it
    would be NaN everywhere, even at the checkpoint's own coordinates)."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all()):
            bad = int((~torch.isfinite(t.detach())).sum())
            raise LandscapeError(f"{path}: {what} {name} has {bad} non-finite value(s) (NaN or inf)")


def interpolation_direction(a: CheckpointPoint, b: CheckpointPoint) -> DirectionSet:
    """``d = θ_B − θ_A`` (and ``b_B − b_A`` for the buffers): α = 0 is A, α = 1 is B."""
    vec = (b.theta - a.theta).unsqueeze(0)
    bufs = {n: (b.buffers[n] - a.buffers[n]).unsqueeze(0) for n in a.buffers}
    info = {"checkpoints": [{"path": a.path, "sha256": a.sha256, "coordinates": [0.0]},
                            {"path": b.path, "sha256": b.sha256, "coordinates": [1.0]}],
            "distance": float((b.theta - a.theta).double().norm())}
    return DirectionSet(vec, "interpolate", "none", True, bufs, info)


def plane_directions(a: CheckpointPoint, b: CheckpointPoint, c: CheckpointPoint) -> DirectionSet:
    """The plane through three checkpoints with orthogonal axes (Garipov et al. 2018, §3).

    ``d₀ = θ_B − θ_A``; ``d₁ = (θ_C − θ_A) − c·d₀`` with ``c = ⟨θ_C − θ_A, d₀⟩/‖d₀‖²``. A, B, C are
    at (0, 0), (1, 0), (c, 1); the buffers get the same affine coordinates.
    """
    d0 = b.theta - a.theta
    dc = c.theta - a.theta
    n0 = float(d0.double() @ d0.double())
    if n0 == 0.0:
        raise OptionError("{plane}: the first two checkpoints have identical weights")
    coef = float(dc.double() @ d0.double()) / n0
    d1 = dc - coef * d0
    if float(d1.double().norm()) <= 1e-12 * max(1.0, n0 ** 0.5):
        raise OptionError("{plane}: the three checkpoints lie on one line")
    bufs = {}
    for n in a.buffers:
        e0 = b.buffers[n] - a.buffers[n]
        e1 = (c.buffers[n] - a.buffers[n]) - coef * e0
        bufs[n] = torch.stack([e0, e1])
    info = {"checkpoints": [{"path": p.path, "sha256": p.sha256, "coordinates": xy}
                            for p, xy in ((a, [0.0, 0.0]), (b, [1.0, 0.0]), (c, [coef, 1.0]))],
            "axis_norms": [n0 ** 0.5, float(d1.double().norm())]}
    return DirectionSet(torch.stack([d0, d1]), "plane", "none", True, bufs, info)


def pca_directions(centre: torch.Tensor, trajectory: torch.Tensor, space: ParamSpace, *, k: int = 2,
                   include_bn: bool = False, paths: Sequence[str] = ()) -> DirectionSet:
    """Top-``k`` principal components of a trajectory around ``centre`` (Li et al. 2018, §7).

    Rows ``r_i = θ_i − θ_c`` (biases and BN parameters zeroed unless ``include_bn``), mean-centred;
    the components are the top right singular vectors (unit norm, sign fixed), found from the
    ``n × n`` Gram matrix in float64. ``info``: ``explained_variance`` (λ/(n−1)),
    ``explained_variance_ratio`` and the trajectory's coordinates ``⟨r_i, d_j⟩``.
    """
    n = int(trajectory.shape[0])
    if n < k + 1:
        raise LandscapeError(f"PCA of a trajectory needs at least {k + 1} checkpoints (got {n})")
    mask = bias_bn_mask(space, like=centre, include_bn=include_bn)
    rows = (trajectory - centre) * mask
    centred = rows - rows.mean(dim=0, keepdim=True)
    gram = _gram64(centred)
    evals, evecs = torch.linalg.eigh(gram)
    evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
    if float(evals[k - 1]) <= 1e-12 * max(float(evals[0]), 1e-300):
        raise LandscapeError("the trajectory spans fewer than "
                             f"{k} independent directions (are the checkpoints identical?)")
    comps = []
    for j in range(k):
        u = (evecs[:, j] / evals[j].sqrt()).to(centred.dtype)
        comps.append(fix_sign(u @ centred))
    vectors = torch.stack(comps)
    vectors = vectors / vectors.double().norm(dim=1, keepdim=True).to(vectors.dtype)
    coords = (rows.double() @ vectors.double().T).cpu().numpy()
    total = float(evals.sum())
    info = {"explained_variance": [float(e) / max(n - 1, 1) for e in evals[:k]],
            "explained_variance_ratio": [float(e) / total for e in evals[:k]],
            "trajectory": {"files": list(paths), "coordinates": coords.tolist()}}
    return DirectionSet(vectors, "pca", "none", include_bn, info=info)


def _gram64(m: torch.Tensor, chunk: int = 1 << 20) -> torch.Tensor:
    """``m mᵀ`` in float64, a block of columns at a time (``m`` may be large and float32)."""
    g = torch.zeros(m.shape[0], m.shape[0], dtype=torch.float64, device=m.device)
    for a in range(0, m.shape[1], chunk):
        block = m[:, a:a + chunk].double()
        g += block @ block.T
    return g


def trajectory_files(items: Sequence[str]) -> List[str]:
    """Expand run folders into their checkpoints in training order (parsed epoch, else step;
    :func:`landscape.runs.open_run`) and keep files as given."""
    from .runs import open_run

    out: List[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            run = open_run(p)
            if not run.ordered:
                raise OptionError("{trajectory} {item}: no checkpoints with an epoch or step in this folder", item=item)
            out.extend(str(q) for q in run.ordered)
        elif p.exists():
            out.append(str(p))
        else:
            raise OptionError("{trajectory} {item}: no such file or folder", item=item)
    return out


# ------------------------------------------------------------------ files
def read_direction_file(path: str, space: ParamSpace, *, k: int, device: torch.device,
                        dtype: torch.dtype, buffer_shapes: Optional[Mapping[str, Tuple[int, ...]]] = None,
                        state_layout: Optional[Sequence[Tuple[str, Tuple[int, ...]]]] = None,
                        trust: bool = False) -> DirectionSet:
    """Directions from a file; missing parameter names are zero, unknown names are an error.

    HDF5: groups ``directions/0``, ``directions/1`` of datasets named by parameter (this package's
    layout), or Li et al.'s ``xdirection``/``ydirection`` groups of datasets ``0, 1, ...`` in
    ``model.parameters()`` or (given ``state_layout``, the model's ``state_dict()`` names and
    shapes) ``state_dict()`` order, see :mod:`landscape.formats.li2018`. ``.pt``: a dict name →
    tensor (one direction), a list/tuple of such dicts, a dict ``{"0": {...}, "1": {...}}``, or a flat tensor ``(dim,)`` / ``(k, dim)``.
    """
    p = Path(path)
    if not p.exists():
        raise OptionError("{direction_file} {path}: no such file", path=path)
    info: Dict[str, Any] = {"file": str(p), "file_sha256": file_sha256(p)}
    if p.suffix in (".h5", ".hdf5"):
        rows = _read_h5_rows(p, space, state_layout=state_layout, info=info)
    else:
        rows = _read_pt_rows(p, space, trust=trust)
    dset = directions_from_rows(rows, space, k=k, device=device, dtype=dtype, buffer_shapes=buffer_shapes,
                                where=Phrase("{direction_file} {path}", path=path))
    return DirectionSet(dset.vectors, "file", "none", True, dset.buffer_vectors, info)


def directions_from_rows(rows: Sequence[Mapping[str, torch.Tensor]], space: ParamSpace, *, k: int,
                         device: torch.device, dtype: torch.dtype,
                         buffer_shapes: Optional[Mapping[str, Tuple[int, ...]]] = None,
                         where: str | Phrase = "directions") -> DirectionSet:
    """Named tensors per direction -> a :class:`DirectionSet` (missing names are zero)."""
    if len(rows) < k:
        raise OptionError("{where} holds {n} direction(s); {k} are needed", where=where, n=len(rows), k=k)
    buffer_shapes = dict(buffer_shapes or {})
    vecs, bufs = [], {}
    for i, row in enumerate(rows[:k]):
        unknown = [n for n in row if n not in space.names and n not in buffer_shapes]
        if unknown:
            raise OptionError("{where}: {name!r} is not a parameter of the model", where=where, name=unknown[0])
        params = {n: t for n, t in row.items() if n in space.names}
        if not params:
            raise OptionError("{where}: direction {i} names no parameter of the model", where=where, i=i)
        try:
            vecs.append(space.flatten({n: t.to(dtype) for n, t in params.items()}).to(device))
        except ValueError as exc:
            raise OptionError("{where}: {exc}", where=where, exc=exc) from None
        for n, t in row.items():
            if n in buffer_shapes:
                if tuple(t.shape) != tuple(buffer_shapes[n]):
                    raise OptionError("{where}: buffer {n} has shape {shape}", where=where, n=n, shape=tuple(t.shape))
                bufs.setdefault(n, [torch.zeros(buffer_shapes[n], dtype=dtype) for _ in range(k)])[i] = t.to(dtype)
    buffer_vectors = {n: torch.stack(ts).to(device=device, dtype=dtype) for n, ts in bufs.items()}
    return DirectionSet(torch.stack(vecs), "file", "none", True, buffer_vectors)


def h5_direction_rows(group: Any) -> List[Dict[str, torch.Tensor]]:
    """Rows from an HDF5 group laid out as ``<i>/<name>`` (this package's ``directions`` group)."""
    return [{n: torch.from_numpy(np.asarray(group[i][n])) for n in group[i]} for i in sorted(group, key=int)]


def _read_h5_rows(p: Path, space: ParamSpace, *, state_layout: Optional[Sequence[Tuple[str, Tuple[int, ...]]]] = None,
                  info: Optional[Dict[str, Any]] = None) -> List[Dict[str, torch.Tensor]]:
    import h5py

    from .formats import li2018

    try:
        with h5py.File(p, "r") as f:
            if "directions" in f:
                return h5_direction_rows(f["directions"])
            if not li2018.is_li_direction_file(tuple(f.keys())):
                raise LandscapeError(f"{p}: no 'directions' or 'xdirection' group")
            groups = li2018.read_direction_groups(f)
    except OSError as exc:
        raise LandscapeError(f"cannot read {p}: {exc}") from None
    params = list(zip(space.names, (tuple(s) for s in space.shapes)))
    rows, kinds = [], set()
    for key, tensors in zip(("xdirection", "ydirection"), groups):
        named, kind = li2018.map_direction_tensors(tensors, params=params, states=state_layout, where=f"{p}: {key}")
        rows.append({n: torch.from_numpy(np.array(t)) for n, t in named.items()})
        kinds.add(kind)
    if info is not None:
        info["file_format"] = f"Li et al. (2018) direction file ({'/'.join(sorted(kinds))} order)"
    return rows


def _read_pt_rows(p: Path, space: ParamSpace, *, trust: bool = False) -> List[Dict[str, torch.Tensor]]:
    """Rows of a ``.pt`` direction file, loaded with ``weights_only=True`` unless ``trust``."""
    try:
        obj = torch.load(p, map_location="cpu", weights_only=not trust)
    except Exception as exc:
        if not trust and "weights only" in str(exc).lower().replace("_", " "):
            raise OptionError("cannot read {direction_file} {p}: it holds Python objects that safe loading "
                              "(weights_only) refuses; pass {trust} only if you trust the file", p=p) from None
        raise LandscapeError(f"cannot read {p}: {str(exc).splitlines()[0][:200]}") from None
    if isinstance(obj, torch.Tensor):
        mat = obj.reshape(1, -1) if obj.dim() == 1 else obj
        if mat.dim() != 2 or mat.shape[1] != space.size:
            raise LandscapeError(f"{p}: a tensor of shape {tuple(obj.shape)}; expected ({space.size},) "
                                 f"or (k, {space.size})")
        return [space.unflatten(row) for row in mat]
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return [strip_prefixes(obj)]
    if isinstance(obj, Mapping) and obj and all(str(key).isdigit() for key in obj):
        obj = [obj[key] for key in sorted(obj, key=lambda s: int(s))]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(r, Mapping) for r in obj):
        return [strip_prefixes(r) for r in obj]
    raise LandscapeError(f"{p}: expected a dict of tensors, a list of such dicts, or a tensor")


# ------------------------------------------------------------------ sources
@dataclass(frozen=True)
class Directions:
    """What a direction source gives a slice: the directions, and what an auto range must cover.

    ``span``: ``(n, k)`` coordinates of the points an ``auto`` range spans (with the origin),
    ``None`` where the directions fix no such points; ``pad_abs``/``pad_rel``: padding on each side
    (absolute, and relative to the span's width); ``files_sha256``: the other files the directions
    were read from (they enter the settings a resumed run must match).
    """

    set: DirectionSet
    span: Optional[np.ndarray] = None
    pad_abs: float = 0.0
    pad_rel: float = 0.0
    files_sha256: Tuple[str, ...] = ()


class DirectionSource:
    """One kind of directions. ``make(session)`` builds them around the session's checkpoint.

    ``eager``: the directions are needed before the surface file is checked (their auto range
    fixes the grid); other sources are made only when the file does not hold them yet (a resumed
    run reads the stored ones, e.g. without recomputing eigenvectors). ``centre()``: the checkpoint
    the source itself fixes as the centre, if any. ``files_sha256()``: the files the directions
    depend on that are known before making them.
    """

    kind: str = ""
    eager: bool = False

    def centre(self) -> Optional[str]:
        return None

    def files_sha256(self) -> List[str]:
        return []

    def make(self, session: Any) -> Directions:
        raise NotImplementedError


def _float_buffers(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {n: b for n, b in model.named_buffers() if b.is_floating_point()}


def renormalise(d: DirectionSet, theta: torch.Tensor, space: ParamSpace, norm: str,
                include_bn: bool) -> DirectionSet:
    """``d`` with every row normalised by :func:`normalize_direction` (``none``: unchanged; the
    buffer directions are dropped, a normalised direction no longer moves between checkpoints)."""
    if norm == "none":
        return d
    vecs = torch.stack([normalize_direction(v, theta, space, norm=norm, include_bn=include_bn) for v in d.vectors])
    return DirectionSet(vecs, d.kind, norm, include_bn, {}, {**d.info, "renormalised": True})


def load_points(paths: Sequence[str], session: Any, *, trust: bool) -> List[CheckpointPoint]:
    """The checkpoints ``paths`` in the space of ``session`` (its model, device and dtype)."""
    obj = session.train
    names = list(_float_buffers(obj.model))
    return [load_point(p, session.model, session.space, device=obj.theta0.device, dtype=obj.theta0.dtype,
                       buffer_names=names, trust=trust) for p in paths]


@dataclass(frozen=True)
class RandomSource(DirectionSource):
    """Filter- (layer-, un-) normalised Gaussian directions (:func:`random_directions`)."""

    k: int = 2
    seed: int = 0
    norm: str = "filter"
    include_bn: bool = False
    kind = "random"

    def make(self, session: Any) -> Directions:
        obj = session.train
        return Directions(random_directions(session.space, obj.theta0, k=self.k, seed=self.seed, norm=self.norm,
                                            include_bn=self.include_bn))


@dataclass(frozen=True)
class EigenSource(DirectionSource):
    """The top Hessian eigenvectors (:func:`eigen_directions`), warning when Lanczos did not converge."""

    k: int = 2
    seed: int = 0
    tol: float = 1e-4
    norm: str = "none"
    include_bn: bool = False
    kind = "eigen"

    def make(self, session: Any) -> Directions:
        import warnings

        obj = session.train
        d = eigen_directions(obj, k=self.k, seed=self.seed, tol=self.tol)
        if not d.info["converged"]:
            warnings.warn(f"Lanczos did not converge to tol {self.tol} (residuals "
                          f"{', '.join(f'{r:.2g}' for r in d.info['residuals'])})", stacklevel=2)
        return Directions(renormalise(d, obj.theta0, session.space, self.norm, self.include_bn))


@dataclass(frozen=True)
class FileSource(DirectionSource):
    """Directions read from a file (:func:`read_direction_file`), optionally renormalised."""

    path: str = ""
    k: int = 2
    norm: str = "none"
    include_bn: bool = False
    trust: bool = False
    kind = "file"

    def files_sha256(self) -> List[str]:
        return [file_sha256(self.path)] if Path(self.path).exists() else []

    def make(self, session: Any) -> Directions:
        obj = session.train
        shapes = {n: tuple(b.shape) for n, b in _float_buffers(obj.model).items()}
        d = read_direction_file(self.path, session.space, k=self.k, device=obj.theta0.device,
                                dtype=obj.theta0.dtype, buffer_shapes=shapes,
                                state_layout=[(n, tuple(t.shape)) for n, t in obj.model.state_dict().items()],
                                trust=self.trust)
        return Directions(renormalise(d, obj.theta0, session.space, self.norm, self.include_bn))


@dataclass(frozen=True)
class PcaSource(DirectionSource):
    """PCA of a trajectory of checkpoints (:func:`pca_directions`); the auto range spans the
    trajectory, padded by a quarter of its width. The centre defaults to the last checkpoint."""

    files: Tuple[str, ...] = ()
    k: int = 2
    norm: str = "none"
    include_bn: bool = False
    trust: bool = False
    kind = "pca"
    eager = True

    def centre(self) -> Optional[str]:
        return self.files[-1] if self.files else None

    def make(self, session: Any) -> Directions:
        obj = session.train
        pts = load_points(self.files, session, trust=self.trust)
        d = pca_directions(obj.theta0, torch.stack([p.theta for p in pts]), session.space, k=self.k,
                           include_bn=self.include_bn, paths=[p.path for p in pts])
        span = np.array(d.info["trajectory"]["coordinates"])
        return Directions(renormalise(d, obj.theta0, session.space, self.norm, self.include_bn), span,
                          pad_rel=0.25, files_sha256=tuple(p.sha256 for p in pts))


@dataclass(frozen=True)
class PlaneSource(DirectionSource):
    """The plane through checkpoints A, B, C (:func:`plane_directions`), centred on A; the auto
    range spans the three checkpoints, padded by 0.5."""

    paths: Tuple[str, ...] = ()
    trust: bool = False
    kind = "plane"
    eager = True

    def centre(self) -> Optional[str]:
        return self.paths[0] if self.paths else None

    def make(self, session: Any) -> Directions:
        d = plane_directions(*load_points(self.paths, session, trust=self.trust))
        cks = d.info["checkpoints"]
        return Directions(d, np.array([c["coordinates"] for c in cks]), pad_abs=0.5,
                          files_sha256=tuple(c["sha256"] for c in cks[1:]))


@dataclass(frozen=True)
class InterpolationSource(DirectionSource):
    """The line from checkpoint A to B (:func:`interpolation_direction`), centred on A; the auto
    range spans A and B, padded by half their distance in α."""

    a: str = ""
    b: str = ""
    trust: bool = False
    kind = "interpolate"
    eager = True

    def centre(self) -> Optional[str]:
        return self.a or None

    def make(self, session: Any) -> Directions:
        pa, pb = load_points([self.a, self.b], session, trust=self.trust)
        d = interpolation_direction(pa, pb)
        return Directions(d, np.array([[0.0], [1.0]]), pad_abs=0.5, files_sha256=(pb.sha256,))
