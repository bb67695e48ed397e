"""Constructed data sets of the studies we serve.

**Wilson et al. 2017** ("The Marginal Value of Adaptive Gradient Methods in Machine Learning",
§3.3, "Adaptivity can overfit"): a linearly separable binary problem on which gradient descent
from zero finds the minimum-norm interpolant, which classifies new points perfectly, while
AdaGrad, RMSProp and Adam from zero converge to a solution ∝ sign(Xᵀy), which labels every new
point positive. Data point i of N, label yᵢ ∈ {−1, +1} with P(yᵢ = +1) = p > ½, features
xᵢ ∈ ℝ^{6N} (1-based indices j):

    x_{ij} = yᵢ                         j = 1
             1                          j = 2, 3
             1                          j = 4 + 5(i − 1), …, 4 + 5(i − 1) + 2(1 − yᵢ)
             0                          otherwise

i.e. the label itself, two always-on features, and features unique to point i: one if yᵢ = +1,
five if yᵢ = −1. Then X·sign(Xᵀy) = 4y whenever Σyᵢ > 0 (the condition of the paper's lemma),
so the adaptive methods' limit w ∝ sign(Xᵀy) gives wᵀx = τ(y + 2) > 0 on any new point (whose
unique features the training never touched). We draw the train and test points as points
1..n and n+1..n+n_test of one such sample (so test points have unused unique features, as
"new data" does in the paper), in ℝ^{6(n + n_test)}.

``--data wilson2017[:n=200,test=200,p=0.6,seed=0]``. Class indices: y = +1 is class 1, y = −1 is
class 0. The paper's model for ``landscape train`` is ``--model landscape.synthetic:wilson_linear_D``
with D = 6(n + test) (e.g. ``wilson_linear_2400`` for the defaults): a bias-free linear map
f = wᵀx initialised at zero, with logits (−f, f). With ``--loss mse-sum`` its loss per point is
½(f − t₁)² + ½(f + t₀)² = (f − y/2)² + ¼, the paper's least squares (targets scaled by ½, which
scales every solution and leaves sign(Xᵀy) unchanged).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from torch import nn

from .errors import SpecError
from .specs import parse_kwargs

WILSON_DEFAULTS = {"n": 200, "test": 200, "p": 0.6, "seed": 0}


def wilson2017_features(y: np.ndarray) -> np.ndarray:
    """The feature matrix (N, 6N) of the paper's §3.3 for labels ``y`` ∈ {−1, +1}^N (float32)."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.isin(y, (-1, 1)).all():
        raise SpecError("wilson2017 labels must be a 1-D array of -1/+1")
    n = len(y)
    x = np.zeros((n, 6 * n), dtype=np.float32)
    x[:, 0] = y
    x[:, 1:3] = 1.0
    for i in range(n):  # 0-based i: unique block starts at column 3 + 5i (1-based 4 + 5(i−1))
        start = 3 + 5 * i
        x[i, start:start + 1 + 2 * (1 - int(y[i]))] = 1.0
    return x


def wilson2017(*, n: int = 200, n_test: int = 200, p: float = 0.6,
               seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` with labels as class indices (1 for y = +1)."""
    if n < 1 or n_test < 0:
        raise SpecError(f"wilson2017: n={n}, test={n_test}; need n ≥ 1 and test ≥ 0")
    if not 0.5 < p <= 1.0:
        raise SpecError(f"wilson2017: p={p}; the construction needs ½ < p ≤ 1")
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n + n_test) < p, 1, -1)
    x = wilson2017_features(y)
    cls = (y > 0).astype(np.int64)
    return x[:n], cls[:n], x[n:], cls[n:]


def load_wilson2017(arg: str | None) -> Tuple[np.ndarray, ...]:
    """The ``--data wilson2017[:n=...,test=...,p=...,seed=...]`` loader."""
    opts = {**WILSON_DEFAULTS, **parse_kwargs(arg)}
    unknown = set(opts) - set(WILSON_DEFAULTS)
    if unknown:
        raise SpecError(f"wilson2017: unknown option(s) {', '.join(sorted(unknown))}; use n, test, p, seed")
    return wilson2017(n=int(opts["n"]), n_test=int(opts["test"]), p=float(opts["p"]), seed=int(opts["seed"]))


def signs_pm(cls: np.ndarray) -> np.ndarray:
    """Class indices (1/0) -> labels (+1/−1)."""
    return np.where(np.asarray(cls) > 0, 1.0, -1.0)


def adaptive_limit(x: np.ndarray, y_pm: np.ndarray) -> np.ndarray:
    """The paper's adaptive-method limit: the interpolant w = c·sign(Xᵀy) (c from the first row).

    Exact when X sign(Xᵀy) = c·y for a scalar c (here c = 4 when Σy > 0); raises otherwise.
    """
    s = np.sign(x.T.astype(np.float64) @ y_pm)
    xs = x.astype(np.float64) @ s
    c = xs[0] / y_pm[0]
    if not np.allclose(xs, c * y_pm):
        raise ValueError("X sign(Xᵀy) is not proportional to y: the lemma's condition fails (Σy ≤ 0?)")
    return s / c


def min_norm_solution(x: np.ndarray, y_pm: np.ndarray) -> np.ndarray:
    """Xᵀ(XXᵀ)⁻¹y: where gradient descent from zero converges on least squares."""
    x64 = x.astype(np.float64)
    return x64.T @ np.linalg.solve(x64 @ x64.T, y_pm)


class TiedLinear(nn.Module):
    """f = wᵀx (no bias, w = 0 at initialisation); logits (−f, f) for classes (0, 1) = (y=−1, y=+1)."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(1) @ self.weight
        return torch.stack((-f, f), dim=1)


def __getattr__(name: str):  # PEP 562: factories wilson_linear_<D> for any input size D
    prefix = "wilson_linear_"
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        dim = int(name[len(prefix):])

        def factory(num_classes: int = 2) -> nn.Module:
            if num_classes != 2:
                raise SpecError(f"{name} is a binary model; the data has {num_classes} classes")
            return TiedLinear(dim)

        factory.__name__ = name
        return factory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
