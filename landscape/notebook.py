"""The Python entry points a notebook needs, each taking an :class:`~landscape.objective.Objective`.

Build the Objective from your own model, data and loss (tensors or a DataLoader; a loss name, an
``nn.Module`` criterion or a callable), then call these; each is a thin front to the engine the CLI
uses (same numbers, same result dataclasses with ``to_json()``), so nothing here re-implements a
measurement. ``landscape.report`` turns any of the results (or files and run folders) into one
offline HTML page. All of them are importable from ``landscape`` directly.

The examples below share this set-up (a tiny classifier on random data)::

    >>> import torch
    >>> from torch import nn
    >>> import landscape
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    >>> obj = landscape.Objective(model, x, y, loss=nn.CrossEntropyLoss(), dtype=torch.float64)
    >>> H = torch.func.hessian(lambda t: nn.functional.cross_entropy(   # the dense reference
    ...     torch.func.functional_call(obj.model, obj.space.unflatten(t), (x.double(),)), y))(obj.theta0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import torch

from .errors import SpecError
from .objective import Objective

Range = Tuple[float, float, int]


def _op(objective: Objective, theta: Optional[torch.Tensor]) -> Any:
    from .hessian.operator import HessianOperator

    return HessianOperator(objective, theta)


def top_eigenvalues(objective: Objective, *, k: int = 1, tol: float = 1e-4, seed: int = 0,
                    theta: Optional[torch.Tensor] = None, which: str = "LA") -> Any:
    """The ``k`` largest (``which="LA"``) or smallest (``"SA"``) Hessian eigenvalues and their
    eigenvectors at ``theta`` (default: the model's weights), by Lanczos with full
    reorthogonalisation, converged on true residuals ‖Hv − λv‖ ≤ tol·|λ|.

    Example:
        >>> from landscape.notebook import top_eigenvalues
        >>> res = top_eigenvalues(obj, k=2)
        >>> len(res.eigenvalues), res.eigenvectors.shape == (2, obj.dim), res.converged
        (2, True, True)
        >>> exact = torch.linalg.eigvalsh(H).flip(0)[:2].tolist()
        >>> all(abs(a - b) <= 1e-4 * abs(b) for a, b in zip(res.eigenvalues, exact))
        True
    """
    from .hessian.analyze import top_eigen

    if k < 1 or k > objective.dim:
        raise SpecError(f"k must be between 1 and the {objective.dim} parameters; got {k}")
    return top_eigen(objective, k=k, tol=tol, seed=seed, theta=theta, which=which)


def trace(objective: Objective, *, matvecs: int = 99, seed: int = 0, theta: Optional[torch.Tensor] = None) -> Any:
    """Hutch++ estimate of tr(H) with its standard error (``matvecs`` Hessian-vector products).

    Example:
        >>> from landscape.notebook import trace
        >>> t = trace(obj, matvecs=99)
        >>> abs(t.trace - float(torch.trace(H))) < 3 * t.stderr
        True
    """
    from .hessian.trace import hutchpp

    return hutchpp(_op(objective, theta), matvecs=matvecs, seed=seed)


def density(objective: Objective, *, steps: int = 64, runs: int = 2, seed: int = 0,
            theta: Optional[torch.Tensor] = None) -> Any:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature (``runs`` random start
    vectors, ``steps`` Lanczos steps each), Gaussian-broadened on a grid.

    Example:
        >>> from landscape.notebook import density
        >>> d = density(obj, steps=20, runs=1)
        >>> d.to_json()["runs"]
        1
    """
    from .hessian.density import slq

    return slq(_op(objective, theta), steps=min(steps, objective.dim), runs=runs, seed=seed)


def slice_surface(objective: Objective, *, test: Optional[Objective] = None, directions: Any = None,
                  x: Range = (-1.0, 1.0, 21), y: Optional[Range] = (-1.0, 1.0, 21), seed: int = 0,
                  norm: str = "filter", out: Optional[Union[str, Path]] = None) -> Any:
    """The loss (and accuracy) on a 1-D or 2-D slice around the weights, in Li et al.'s sense:
    θ + α·d₁ + β·d₂ over the grid ``x`` × ``y`` (``(start, stop, points)``; ``y=None``: 1-D).

    ``directions``: a :class:`~landscape.directions.DirectionSet` (e.g. from
    :func:`landscape.directions.eigen_directions`) or None for filter-normalised Gaussian
    directions from ``seed``. ``test``: a second Objective evaluated at the same points. With
    ``out`` the surface is stored as HDF5 (resumable; ``landscape report`` draws it).

    Example:
        >>> from landscape.notebook import slice_surface
        >>> s = slice_surface(obj, x=(-1, 1, 5), y=(-1, 1, 5))
        >>> s.values["train_loss"].shape, round(s.centre()["train_loss"], 6) == round(obj.evaluate().loss, 6)
        ((5, 5), True)
    """
    from .directions import random_directions
    from .slices.api import compute_surface
    from .slices.grid import Grid

    k = 1 if y is None else 2
    if directions is None:
        directions = random_directions(objective.space, objective.theta0, k=k, seed=seed, norm=norm)
    if directions.k != k:
        raise SpecError(f"{directions.k} directions for a {k}-D slice")
    objectives = {"train": objective} if test is None else {"train": objective, "test": test}
    grid = Grid.from_ranges(tuple(x), tuple(y) if y is not None else None)
    return compute_surface(objectives, directions, grid, out=None if out is None else str(out), desc="slice")


_SHARPNESS = {
    "worst-case": ("worst_case", "worst_case_sharpness"),
    "adaptive": ("adaptive", "adaptive_sharpness"),
    "average": ("average", "average_sharpness"),
    "eps": ("eps", "eps_sharpness"),
    "pac-bayes": ("pac_bayes", "pac_bayes_sigma"),
}


def sharpness(objective: Objective, *, measure: str = "worst-case", **options: Any) -> Any:
    """One sharpness measure at the weights: ``worst-case`` (SAM, ‖δ‖₂ ≤ ρ), ``adaptive`` (ASAM),
    ``average`` (Gaussian, with standard error), ``eps`` (Keskar's ε-sharpness) or ``pac-bayes``
    (the largest σ of Jiang et al.'s flatness); ``options`` go to the measure (``rho``,
    ``steps``, ``seed``, ... as in :mod:`landscape.sharpness`).

    Example:
        >>> from landscape.notebook import sharpness
        >>> s = sharpness(obj, measure="worst-case", rho=0.01, steps=5, restarts=1)
        >>> g, lam = float(obj.grad().norm()), float(torch.linalg.eigvalsh(H)[-1])
        >>> 0.01 * g <= s.value <= 0.01 * g + 0.01 ** 2 * lam / 2 * 1.01   # ρ‖g‖ ≤ max ≤ ρ‖g‖ + ρ²λ_max/2
        True
    """
    import importlib

    if measure not in _SHARPNESS:
        raise SpecError(f"unknown sharpness measure {measure!r}; choose one of {', '.join(_SHARPNESS)}")
    module, fn = _SHARPNESS[measure]
    return getattr(importlib.import_module(f".sharpness.{module}", __package__), fn)(objective, **options)


def stability(objective: Objective, optimizer: torch.optim.Optimizer, *, tol: float = 1e-4, seed: int = 0,
              train_batch_size: Optional[int] = None) -> Any:
    """Is this optimizer, with its live state, stable at the weights? λ_max (or λ₁(P⁻¹H) for
    adaptive families, P read from the state) against its threshold (2/η for SGD, (2+2β)/η with
    momentum, 38/η for Adam at β₁ = 0.9), as ``landscape hessian`` judges a checkpoint.

    Example:
        >>> from landscape.notebook import stability
        >>> sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> v = stability(obj, sgd)
        >>> round(v.threshold, 6), v.ratio == v.lambda_max / v.threshold
        (38.0, True)
    """
    from .checkpoint import map_optimizer_state
    from .hessian.verdict import curvature_verdict
    from .optim.families import recognise_optimizer

    state = map_optimizer_state(optimizer.state_dict(), objective.space, recognise_optimizer(optimizer))
    return curvature_verdict(objective, state, tol=tol, seed=seed, train_batch_size=train_batch_size)


def adam_first_step(objective: Objective, *, lrs: Sequence[float] = (0.1,), batch_size: int = 128,
                    steps: int = 20, **options: Any) -> Any:
    """The Adam-first-step probe from the weights (``landscape probe adam-first-step``): Adam's and
    SGD's first update from the same start and mini-batch, the loss along it and over the next
    ``steps`` steps, with verdicts; ``options`` are :class:`~landscape.probes.adam_first_step.FirstStepConfig` fields.

    Example:
        >>> from landscape.notebook import adam_first_step
        >>> r = adam_first_step(obj, lrs=(0.1,), batch_size=16, steps=2, hessian=False)
        >>> [run.lr for run in r.runs]
        [0.1]
    """
    import copy

    from .probes.adam_first_step import FirstStepConfig
    from .probes.adam_first_step import adam_first_step as probe
    from .session import Session

    model = copy.deepcopy(objective.model)  # the Objective's private copy, trainable again
    for name, p in model.named_parameters():
        p.requires_grad_(name in objective.space.names)
    session = Session(None, model, None, None, objective.loss_name, objective, None, None, objective.space)
    return probe(session, FirstStepConfig(lrs=tuple(float(v) for v in lrs), batch_size=batch_size, steps=steps,
                                          **options))


def probe_spikes(run_dir: Union[str, Path], **options: Any) -> Any:
    """Test-loss spikes in a run folder (``log.csv`` and checkpoints, e.g. written by
    :class:`~landscape.monitor.Monitor`) and the landscape around them, with verdicts
    (``landscape probe spikes``); ``options`` as :func:`landscape.probes.spikes.probe_spikes`.

    Example:
        >>> from landscape.notebook import probe_spikes
        >>> probe_spikes("no/such/run")
        Traceback (most recent call last):
        ...
        landscape.errors.LandscapeError: run folder not found: no/such/run
    """
    from .probes.spikes import probe_spikes as probe

    return probe(run_dir, **options)


def report(items: Any, out: Union[str, Path], *, title: Optional[str] = None) -> Path:
    """One offline HTML page for results (any of the above), slice files, JSON results or run
    folders; returns the path written.

    Example:
        >>> import tempfile, os
        >>> from landscape.notebook import report
        >>> page = report([top_eigenvalues(obj, k=2), slice_surface(obj, x=(-1, 1, 5), y=None)],
        ...               os.path.join(tempfile.mkdtemp(), "r.html"))
        >>> page.stat().st_size > 10_000
        True
    """
    from .report import write_html

    return Path(write_html(items, out, title=title))


__all__ = ["adam_first_step", "density", "probe_spikes", "report", "sharpness", "slice_surface", "stability",
           "top_eigenvalues", "trace"]
