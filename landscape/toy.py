"""Optimizer trajectories on 2-D analytic surfaces, with each step's stability ratio.

Surfaces (``landscape toy SURFACE[:key=value,...]``; every parameter exposed):

- ``rosenbrock`` (a=1, b=100): (a − x)² + b(y − x²)², minimum (a, a²).
- ``beale``: (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)², minimum (3, ½).
- ``saddle`` (a=1, b=1): ½(a x² − b y²), a saddle at the origin (unbounded below along y).
- ``quadratic`` (l1=1, l2=100): ½(l1 x² + l2 y²), condition number l2/l1.
- ``basin`` (the basin with walls and a waterfall; radial in r = ‖(x, y)‖):

      f(r) = depth·(1 − e^{−r²/(2σ²)}) + wall·e^{−(r − radius)²/(2 width²)} − fall·s((r − fall_at)/steep)

  with s the logistic function: a shallow well (curvature depth/σ² at its centre) ringed by a
  wall of height ``wall`` at ``radius``, outside which the surface drops by ``fall`` (the
  waterfall). Defaults: depth 0.5, σ = 1, wall 3, radius 2.5, width 0.25, fall 4, fall_at 3.2,
  steep 0.15.

Trajectories are real ``torch.optim`` (or :mod:`landscape.optim`) steps on the two coordinates
as one float64 parameter. At every step t we record the curvature where the step's gradient was
taken, λ_max(H(θ_{t−1})) (exact 2×2 Hessian), and the frozen-preconditioner stability of the
family (:mod:`landscape.optim.preconditioners`): λ₁(P_t⁻¹H) against its threshold c/η, the
*stability ratio* λ₁(P_t⁻¹H)·η/c (> 1: the step is beyond the edge of stability of the local
quadratic model).

**Adam's first step and the wall.** From rest, Adam's first step is Δ₁ = −η g/(|g| + ε) ≈
−η·sign(g), whatever the size of g: in the shallow basin it is far longer than SGD's −ηg. The
step size at which the first step lands beyond the wall's crest (radius r_c, the maximum of f
along r) solves ‖θ₀ + Δ₁(η)‖ = r_c; :func:`first_step_crossing` finds it for any family with real
single steps (bisection), and ``landscape toy basin`` reports it per optimizer with the observed
long-run outcome (``escaped``: final radius beyond r_c).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from .errors import SpecError, SpecOptionError
from .optim import OptimizerConfig, make_optimizer
from .optim.preconditioners import frozen_model
from .specs import parse_kwargs, split_spec

Fn = Callable[[torch.Tensor, torch.Tensor, Dict[str, float]], torch.Tensor]


# ----------------------------------------------------------------------------- surfaces
def _rosenbrock(x, y, p):
    return (p["a"] - x) ** 2 + p["b"] * (y - x * x) ** 2


def _rosenbrock_grad(x, y, p):
    return (-2 * (p["a"] - x) - 4 * p["b"] * x * (y - x * x), 2 * p["b"] * (y - x * x))


def _beale_terms(x, y):
    return (1.5 - x + x * y, 2.25 - x + x * y * y, 2.625 - x + x * y ** 3)


def _beale(x, y, p):
    a, b, c = _beale_terms(x, y)
    return a * a + b * b + c * c


def _beale_grad(x, y, p):
    a, b, c = _beale_terms(x, y)
    gx = 2 * a * (y - 1) + 2 * b * (y * y - 1) + 2 * c * (y ** 3 - 1)
    gy = 2 * a * x + 2 * b * 2 * x * y + 2 * c * 3 * x * y * y
    return gx, gy


def _saddle(x, y, p):
    return 0.5 * (p["a"] * x * x - p["b"] * y * y)


def _saddle_grad(x, y, p):
    return p["a"] * x, -p["b"] * y


def _quadratic(x, y, p):
    return 0.5 * (p["l1"] * x * x + p["l2"] * y * y)


def _quadratic_grad(x, y, p):
    return p["l1"] * x, p["l2"] * y


def _basin_radial(r, p):
    basin = p["depth"] * (1 - torch.exp(-r * r / (2 * p["sigma"] ** 2)))
    wall = p["wall"] * torch.exp(-(r - p["radius"]) ** 2 / (2 * p["width"] ** 2))
    fall = p["fall"] * torch.sigmoid((r - p["fall_at"]) / p["steep"])
    return basin + wall - fall


def _basin_radial_deriv(r, p):
    basin = p["depth"] * r / p["sigma"] ** 2 * torch.exp(-r * r / (2 * p["sigma"] ** 2))
    wall = -p["wall"] * (r - p["radius"]) / p["width"] ** 2 * torch.exp(-(r - p["radius"]) ** 2 / (2 * p["width"] ** 2))
    s = torch.sigmoid((r - p["fall_at"]) / p["steep"])
    return basin + wall - p["fall"] * s * (1 - s) / p["steep"]


def _basin(x, y, p):
    return _basin_radial(torch.sqrt(x * x + y * y), p)


def _basin_grad(x, y, p):
    r = torch.sqrt(x * x + y * y)
    d = _basin_radial_deriv(r, p) / torch.clamp(r, min=1e-300)
    return d * x, d * y


@dataclass(frozen=True)
class SurfaceDef:
    fn: Fn
    grad: Fn
    defaults: Dict[str, float]
    start: Tuple[float, float]
    domain: Tuple[float, float, float, float]
    minimum: Optional[Callable[[Dict[str, float]], Tuple[float, float]]]
    description: str


SURFACES: Dict[str, SurfaceDef] = {
    "rosenbrock": SurfaceDef(_rosenbrock, _rosenbrock_grad, {"a": 1.0, "b": 100.0}, (-1.2, 1.0),
                             (-2.0, 2.0, -1.0, 3.0), lambda p: (p["a"], p["a"] ** 2),
                             "(a − x)² + b(y − x²)²"),
    "beale": SurfaceDef(_beale, _beale_grad, {}, (1.0, 1.5), (-4.5, 4.5, -4.5, 4.5), lambda p: (3.0, 0.5),
                        "(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²"),
    "saddle": SurfaceDef(_saddle, _saddle_grad, {"a": 1.0, "b": 1.0}, (1.0, 1e-3), (-2.0, 2.0, -2.0, 2.0),
                         None, "½(a x² − b y²)"),
    "quadratic": SurfaceDef(_quadratic, _quadratic_grad, {"l1": 1.0, "l2": 100.0}, (1.0, 1.0),
                            (-1.5, 1.5, -1.5, 1.5), lambda p: (0.0, 0.0), "½(l1 x² + l2 y²)"),
    "basin": SurfaceDef(_basin, _basin_grad,
                        {"depth": 0.5, "sigma": 1.0, "wall": 3.0, "radius": 2.5, "width": 0.25, "fall": 4.0,
                         "fall_at": 3.2, "steep": 0.15},
                        (0.3, 0.2), (-5.0, 5.0, -5.0, 5.0), lambda p: (0.0, 0.0),
                        "depth(1 − e^{−r²/2σ²}) + wall·e^{−(r − radius)²/2width²} − fall·s((r − fall_at)/steep)"),
}


@dataclass(frozen=True)
class Surface:
    """A named 2-D surface with its parameters; ``value``/``grad``/``hessian`` take (…, 2) tensors."""

    name: str
    params: Dict[str, float]

    @property
    def spec(self) -> SurfaceDef:
        return SURFACES[self.name]

    def value(self, xy: torch.Tensor) -> torch.Tensor:
        return self.spec.fn(xy[..., 0], xy[..., 1], self.params)

    def grad(self, xy: torch.Tensor) -> torch.Tensor:
        """The closed-form gradient (tests check it against autograd)."""
        gx, gy = self.spec.grad(xy[..., 0], xy[..., 1], self.params)
        return torch.stack((torch.as_tensor(gx, dtype=xy.dtype).expand(xy.shape[:-1]),
                            torch.as_tensor(gy, dtype=xy.dtype).expand(xy.shape[:-1])), dim=-1)

    def hessian(self, xy: torch.Tensor) -> torch.Tensor:
        """Exact 2×2 Hessian at one point (double backward)."""
        with torch.enable_grad():
            p = xy.detach().to(torch.float64).requires_grad_(True)
            (g,) = torch.autograd.grad(self.value(p), p, create_graph=True)
            rows = [torch.autograd.grad(g[i], p, retain_graph=i == 0)[0] for i in range(2)]
        return torch.stack(rows).detach()

    @property
    def start(self) -> Tuple[float, float]:
        return self.spec.start

    @property
    def domain(self) -> Tuple[float, float, float, float]:
        return self.spec.domain

    @property
    def minimum(self) -> Optional[Tuple[float, float]]:
        return self.spec.minimum(self.params) if self.spec.minimum else None

    def crest_radius(self) -> Optional[float]:
        """Basin only: the radius of the wall's crest (max of f(r) between centre and waterfall)."""
        if self.name != "basin":
            return None
        p = self.params
        r = torch.linspace(0.0, p["fall_at"], 200001, dtype=torch.float64)
        return float(r[torch.argmax(_basin_radial(r, p))])

    def to_json(self) -> dict:
        return {"name": self.name, "params": dict(self.params), "formula": self.spec.description,
                "domain": list(self.domain), "minimum": list(self.minimum) if self.minimum else None,
                "crest_radius": self.crest_radius()}


def make_surface(spec: str) -> Surface:
    """``NAME[:key=value,...]`` -> :class:`Surface` (unknown names/keys are SpecErrors)."""
    head, arg = split_spec(spec)
    if head not in SURFACES:
        raise SpecError(f"unknown surface {head!r}; choose {', '.join(SURFACES)}")
    params = dict(SURFACES[head].defaults)
    for key, value in parse_kwargs(arg).items():
        if key not in params:
            raise SpecError(f"surface {head} has no parameter {key!r}; its parameters: "
                            f"{', '.join(params) or 'none'}")
        params[key] = float(value)
    return Surface(head, params)


# ----------------------------------------------------------------------------- trajectories
class _Point(nn.Module):
    def __init__(self, start: Sequence[float]) -> None:
        super().__init__()
        self.xy = nn.Parameter(torch.tensor([float(start[0]), float(start[1])], dtype=torch.float64))


@dataclass(frozen=True)
class Trajectory:
    """One optimizer's path: points (steps+1, 2), losses, and per-step stability records."""

    optimizer: str
    lr: float
    config: dict
    points: Tuple[Tuple[float, float], ...]
    losses: Tuple[float, ...]
    sharpness: Tuple[float, ...]          # λ_max(H(θ_{t−1})) for step t = 1..T
    preconditioned: Tuple[float, ...]     # λ₁(P_t⁻¹H(θ_{t−1}))
    threshold: Tuple[float, ...]          # c/η_t
    ratio: Tuple[float, ...]              # preconditioned / threshold
    escaped: Optional[bool] = None        # basin: final radius beyond the crest
    first_step_crossed: Optional[bool] = None
    diverged: bool = False

    def to_json(self) -> dict:
        return {"optimizer": self.optimizer, "lr": self.lr, "config": self.config,
                "points": [list(p) for p in self.points], "losses": list(self.losses),
                "sharpness": list(self.sharpness), "preconditioned_sharpness": list(self.preconditioned),
                "threshold": list(self.threshold), "stability_ratio": list(self.ratio),
                "escaped": self.escaped, "first_step_crossed": self.first_step_crossed,
                "diverged": self.diverged, "final_point": list(self.points[-1]),
                "final_loss": self.losses[-1]}


def run_trajectory(surface: Surface, cfg: OptimizerConfig, *, steps: int = 100,
                   start: Optional[Sequence[float]] = None, stop_radius: float = 1e6) -> Trajectory:
    """Take ``steps`` real optimizer steps from ``start`` and record the path and its stability."""
    from .checkpoint import map_optimizer_state
    from .params import ParamSpace

    point = _Point(start if start is not None else surface.start)
    space = ParamSpace.from_model(point)
    opt = make_optimizer(point.parameters(), cfg)
    pts = [tuple(float(v) for v in point.xy.detach())]
    losses = [float(surface.value(point.xy.detach()))]
    sharp, pre, thr, ratio = [], [], [], []
    diverged = False
    for _ in range(steps):
        before = point.xy.detach().clone()
        opt.zero_grad()
        loss = surface.value(point.xy)
        loss.backward()
        opt.step()
        h = surface.hessian(before)
        ev = torch.linalg.eigvalsh(h)
        fm = frozen_model(map_optimizer_state(opt.state_dict(), space, _live_type(opt)), space)
        ps = fm.p_diag.rsqrt() if fm.p_diag is not None else torch.ones(2, dtype=torch.float64)
        h_eff = h + fm.coupled_weight_decay * torch.eye(2, dtype=torch.float64)
        lam = float(torch.linalg.eigvalsh(ps[:, None] * h_eff * ps[None, :])[-1])
        sharp.append(float(ev[-1]))
        pre.append(lam)
        thr.append(fm.threshold)
        ratio.append(lam / fm.threshold)
        xy = point.xy.detach()
        pts.append((float(xy[0]), float(xy[1])))
        losses.append(float(surface.value(xy)))
        if not bool(torch.isfinite(xy).all()) or float(xy.norm()) > stop_radius:
            diverged = True
            break
    escaped = crossed = None
    rc = surface.crest_radius()
    if rc is not None:
        r = [math.hypot(*p) for p in pts]
        escaped = bool(r[-1] > rc) if math.isfinite(r[-1]) else True
        crossed = bool(r[1] > rc) if len(r) > 1 else False
    return Trajectory(cfg.name, cfg.lr, cfg.to_json(), tuple(pts), tuple(losses), tuple(sharp), tuple(pre),
                      tuple(thr), tuple(ratio), escaped, crossed, diverged)


def _live_type(opt: torch.optim.Optimizer) -> str:
    from .optim import optimizer_type

    return optimizer_type(opt)


def first_step(surface: Surface, cfg: OptimizerConfig, start: Sequence[float]) -> torch.Tensor:
    """θ₁ after one real step of ``cfg`` from ``start``."""
    point = _Point(start)
    opt = make_optimizer(point.parameters(), cfg)
    opt.zero_grad()
    surface.value(point.xy).backward()
    opt.step()
    return point.xy.detach().clone()


def first_step_crossing(surface: Surface, cfg: OptimizerConfig, *, start: Optional[Sequence[float]] = None,
                        lr_max: float = 1e4, rel_tol: float = 1e-10) -> Optional[float]:
    """Basin: the smallest η whose first real step lands beyond the crest (bisection; None if > lr_max).

    Landing radius ‖θ₀ + Δ₁(η)‖ for families whose first step is linear in η (all but AdaBound's
    clipped coordinates) is a convex quadratic in η, negative at 0: one crossing, found exactly.
    """
    from dataclasses import replace

    rc = surface.crest_radius()
    if rc is None:
        raise SpecError(f"first-step crossing is defined for the basin surface, not {surface.name}")
    s = tuple(start if start is not None else surface.start)
    if math.hypot(*s) >= rc:
        raise SpecError(f"start {s} is not inside the basin (crest radius {rc:.4g})")

    def beyond(lr: float) -> bool:
        return float(first_step(surface, replace(cfg, lr=lr), s).norm()) > rc

    lo, hi = 0.0, 1e-3
    while not beyond(hi):
        lo, hi = hi, hi * 2
        if hi > lr_max:
            return None
    while hi - lo > rel_tol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if beyond(mid) else (mid, hi)
    return hi


def adam_first_step_crossing(surface: Surface, *, start: Optional[Sequence[float]] = None,
                             eps: float = 1e-8) -> float:
    """Closed form for Adam: the positive root of ‖θ₀ − η u‖ = r_c with u = g/(|g| + ε)."""
    s = torch.tensor(start if start is not None else surface.start, dtype=torch.float64)
    g = surface.grad(s)
    return _ray_root(s, g / (g.abs() + eps), surface.crest_radius())


def sgd_first_step_crossing(surface: Surface, *, start: Optional[Sequence[float]] = None) -> float:
    """Closed form for SGD: the positive root of ‖θ₀ − η g‖ = r_c."""
    s = torch.tensor(start if start is not None else surface.start, dtype=torch.float64)
    return _ray_root(s, surface.grad(s), surface.crest_radius())


def _ray_root(s: torch.Tensor, u: torch.Tensor, rc: float) -> float:
    a, b, c = float(u @ u), float(s @ u), float(s @ s) - rc * rc
    return (b + math.sqrt(b * b - a * c)) / a


# ----------------------------------------------------------------------------- result
@dataclass(frozen=True)
class ToyResult:
    """Trajectories on one surface, a grid of its values for plotting, and (basin) the crossings."""

    surface: dict
    start: Tuple[float, float]
    steps: int
    trajectories: Tuple[Trajectory, ...]
    grid_x: Tuple[float, ...]
    grid_y: Tuple[float, ...]
    grid_z: Tuple[Tuple[float, ...], ...]   # grid_z[j][i] = f(grid_x[i], grid_y[j])
    crossings: Tuple[dict, ...] = field(default_factory=tuple)
    kind: str = "toy"

    def to_json(self) -> dict:
        return {"kind": self.kind, "surface": self.surface, "start": list(self.start), "steps": self.steps,
                "trajectories": [t.to_json() for t in self.trajectories], "grid_x": list(self.grid_x),
                "grid_y": list(self.grid_y), "grid_z": [list(r) for r in self.grid_z],
                "crossings": list(self.crossings)}

    def summary(self) -> str:
        lines = [f"surface {self.surface['name']} {self.surface['params']}, start {self.start}, {self.steps} steps"]
        for t in self.trajectories:
            peak = max(t.ratio) if t.ratio else float("nan")
            extra = ""
            if t.escaped is not None:
                extra = (f", first step {'crossed' if t.first_step_crossed else 'stayed inside'} the wall, "
                         f"{'escaped' if t.escaped else 'trapped in the basin'}")
            lines.append(f"  {t.optimizer:9s} lr={t.lr:<8g} final {tuple(round(v, 4) for v in t.points[-1])} "
                         f"loss {t.losses[-1]:.4g}, max stability ratio {peak:.3g}"
                         f"{', DIVERGED' if t.diverged else ''}{extra}")
        for c in self.crossings:
            eta = c["first_step_crossing_lr"]
            lines.append(f"  {c['optimizer']:9s} first step crosses the crest (r={self.surface['crest_radius']:.4g}) "
                         f"for lr > {eta:.6g}" if eta is not None else f"  {c['optimizer']}: never crosses")
        return "\n".join(lines)


def grid(surface: Surface, n: int = 121) -> Tuple[Tuple[float, ...], Tuple[float, ...], Tuple[Tuple[float, ...], ...]]:
    """f on an n×n grid over the surface's domain (z[j][i] = f(x_i, y_j))."""
    x0, x1, y0, y1 = surface.domain
    xs = torch.linspace(x0, x1, n, dtype=torch.float64)
    ys = torch.linspace(y0, y1, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    z = surface.value(torch.stack((xx, yy), dim=-1))
    return tuple(xs.tolist()), tuple(ys.tolist()), tuple(tuple(r) for r in z.tolist())


def toy(surface_spec: str, configs: Sequence[OptimizerConfig], *, steps: int = 100,
        start: Optional[Sequence[float]] = None, grid_points: int = 121) -> ToyResult:
    """Run every optimizer config on the surface; for the basin also find each first-step crossing η."""
    surface = make_surface(surface_spec)
    s = tuple(float(v) for v in (start if start is not None else surface.start))
    if len(s) != 2:
        raise SpecOptionError("{start} needs two numbers x,y; got {s}", s=s)
    trajs = tuple(run_trajectory(surface, c, steps=steps, start=s) for c in configs)
    crossings = ()
    if surface.name == "basin":
        seen, rows = set(), []
        for c in configs:
            key = (c.name, c.momentum, c.betas, c.eps, c.alpha, c.final_lr, c.gamma)
            if key in seen:
                continue
            seen.add(key)
            rows.append({"optimizer": c.name, "first_step_crossing_lr": first_step_crossing(surface, c, start=s)})
        crossings = tuple(rows)
    gx, gy, gz = grid(surface, grid_points)
    return ToyResult(surface.to_json(), s, steps, trajs, gx, gy, gz, crossings)
