"""Products Lanczos needs on matrices with a five-fold cluster at the top, by block size, and
whether the reported error bounds hold (the test matrices of tests/hessian/test_lanczos.py).

Two families of 300×300 symmetric matrices (random orthogonal eigenvectors, seed 0), λ_max = 10:

- *spaced*: the top five eigenvalues 10/(1+s)^j, neighbours s apart; the rest in [−0.5, 1.5];
- *tight*: the top five within 0.4 % (10, 9.99, …, 9.96), then a gap of s·10 to the rest, which
  decays from 10(1 − s) to 0 like a Hessian spectrum.

For each, Lanczos (k = 5) runs with tol 1e-10 and its iterates are recorded; the table gives the
products at which the true worst error max_i |θ_i − λ_i| first falls to 1e-4·λ_max, the products
at which the stopping rule (every error bound ≤ 1e-4·λ_max) stops, and whether the bounds hold
there ("!" when some true error exceeds its bound). Deterministic; takes a few seconds.

    python benchmarks/lanczos_clusters.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from landscape.hessian import DenseOperator, eigsh  # noqa: E402


def matrix(eigs: list, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return U @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ U.T


def spaced(s: float, d: int = 300) -> list:
    g = torch.Generator().manual_seed(0)
    return [10.0 / (1 + s) ** j for j in range(5)] + (torch.rand(d - 5, generator=g, dtype=torch.float64) * 2 - 0.5).tolist()


def tight(s: float, d: int = 300) -> list:
    return [10.0 * (1 - 1e-3 * j) for j in range(5)] + (10.0 * (1 - s) * torch.linspace(1, 0, d - 5, dtype=torch.float64) ** 3).tolist()


def main() -> None:
    print("| matrix | s | block | products to true error ≤ 1e-4·λ_max | stops at (bounds ≤ 1e-4·λ_max) | bounds hold at the stop |")
    print("|---|---:|---|---:|---:|---|")
    for fam in (spaced, tight):
        for s in (0.01, 0.1, 0.5):
            eigs = fam(s)
            A, exact = matrix(eigs), torch.tensor(sorted(eigs, reverse=True), dtype=torch.float64)
            for block in (1, 5, "auto"):
                hist = []
                eigsh(DenseOperator(A), k=5, tol=1e-10, block=block, max_iter=400, callback=hist.append)
                full = [p for p in hist if len(p.eigenvalues) == 5]
                err = [float((torch.tensor(p.eigenvalues) - exact[:5]).abs().max()) / 10 for p in full]
                first = next((p.matvecs for p, e in zip(full, err) if e <= 1e-4), None)
                stop = eigsh(DenseOperator(A), k=5, tol=1e-4, block=block, max_iter=400)
                e = (torch.tensor(stop.eigenvalues, dtype=torch.float64) - exact[:5]).abs()
                ok = bool((e <= torch.tensor(stop.error_bounds, dtype=torch.float64)).all())
                print(f"| {fam.__name__} | {s} | {block} | {first} | {stop.matvecs} | {'yes' if ok else '**no**'} |")


if __name__ == "__main__":
    main()
