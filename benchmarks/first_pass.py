"""Does a cheap first pass on a data subset pay? Products counted in full-data units.

``landscape hessian --first-pass-subset N`` first computes the top-k on the first N of the n
evaluation samples (loose tolerance), then starts the full-data Lanczos from those Ritz vectors.
A product over N samples costs about N/n of a full-data product (one pass over its data), so the
cost of a call is

    full-data units = first-pass products × N/n + full-data products,

which does not depend on the machine or its load (wall times do; none are compared here). For
each model, k and N this runs the default call from a random start (the baseline) and from a
first pass, both with the default stopping rule (error bounds ≤ tol·|λ_max|), checks that the
answers agree within their bounds, and prints a table (and JSON with ``--json``).

Models (:func:`problem`): the registry ResNet-32 / ResNet-18 with BatchNorm running statistics
randomised as after some training (as ``benchmarks/resnet_eigen.py``), or the CNN of
``benchmarks/cnn_fixture.py``; random CIFAR-shaped images and labels, cross-entropy, float32.

    .venv/bin/python benchmarks/first_pass.py --model resnet32 --n 256 --subsets 32,64 --ks 1,5
    .venv/bin/python benchmarks/first_pass.py --model resnet18 --n 32 --subsets 8 --ks 1,5
    .venv/bin/python benchmarks/first_pass.py --model cnn --n 64 --subsets 16 --ks 1    # seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnn_fixture import randomised_bn_problem  # noqa: E402

from landscape.hessian import HessianOperator, eigsh  # noqa: E402
from landscape.hessian.analyze import FIRST_PASS_TOL, first_pass  # noqa: E402
from landscape.objective import Objective  # noqa: E402


def problem(name: str, n: int, seed: int) -> Objective:
    """``name`` (a registry ResNet, or ``cnn`` at width 0.5) on ``n`` random CIFAR-shaped images,
    BatchNorm running statistics randomised, eval mode (:func:`cnn_fixture.randomised_bn_problem`)."""
    return Objective(*randomised_bn_problem(name, n, seed), loss="ce", batch_size=128)


def case(obj: Objective, *, k: int, subset: int, tol: float, first_tol: float, seed: int,
         baseline: Dict[str, Any]) -> Dict[str, Any]:
    """One first-pass call against the baseline: products, full-data units, agreement."""
    t0 = time.perf_counter()
    fp = first_pass(obj, subset=subset, k=k, seed=seed, tol=first_tol)
    full = eigsh(HessianOperator(obj), k=k, tol=tol, seed=seed, v0=fp.start)
    agree = all(abs(a - b) <= ea + eb for a, b, ea, eb in zip(full.eigenvalues, baseline["eigenvalues"],
                                                              full.error_bounds, baseline["error_bounds"]))
    units = fp.full_data_units + full.matvecs
    return {"k": k, "subset": subset, "first_tol": first_tol, "first_pass_matvecs": fp.matvecs,
            "first_pass_converged": fp.converged, "first_pass_units": fp.full_data_units,
            "full_matvecs": full.matvecs, "converged": full.converged, "units": units,
            "baseline_units": baseline["matvecs"], "saving": 1.0 - units / baseline["matvecs"],
            "agrees_within_bounds": agree, "eigenvalues": list(full.eigenvalues),
            "error_bounds": list(full.error_bounds), "seconds": time.perf_counter() - t0}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet32", help="resnet32, resnet18, ... (registry) or cnn")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--ks", default="1,5")
    ap.add_argument("--subsets", default="32,64")
    ap.add_argument("--first-tols", default=str(FIRST_PASS_TOL), help="first-pass residual tolerances to try")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    obj = problem(args.model, args.n, args.seed)
    out: Dict[str, Any] = {"model": args.model, "n": args.n, "params": obj.dim, "tol": args.tol,
                           "torch": torch.__version__, "threads": torch.get_num_threads(),
                           "load_before": os.getloadavg(), "baselines": {}, "cases": []}
    rows: List[Dict[str, Any]] = []
    for k in [int(x) for x in args.ks.split(",") if x]:
        base = eigsh(HessianOperator(obj), k=k, tol=args.tol, seed=args.seed)
        b = {"matvecs": base.matvecs, "converged": base.converged, "eigenvalues": list(base.eigenvalues),
             "error_bounds": list(base.error_bounds)}
        out["baselines"][str(k)] = b
        print(f"k={k} baseline: {base.matvecs} products, converged {base.converged}", flush=True)
        for subset in [int(x) for x in args.subsets.split(",") if x]:
            for ft in [float(x) for x in args.first_tols.split(",") if x]:
                r = case(obj, k=k, subset=subset, tol=args.tol, first_tol=ft, seed=args.seed, baseline=b)
                rows.append(r)
                print(json.dumps({key: v for key, v in r.items() if key not in ("eigenvalues", "error_bounds")}),
                      flush=True)
    out["cases"] = rows
    out["load_after"] = os.getloadavg()
    print(f"\n{args.model}, {obj.dim:,} parameters, n = {args.n}, tol {args.tol:g} (products in full-data units)")
    print("| k | N | first pass (products → units) | full-data products | total units | baseline | saving | agree |")
    print("|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['k']} | {r['subset']} | {r['first_pass_matvecs']} → {r['first_pass_units']:.2f} | "
              f"{r['full_matvecs']} | {r['units']:.2f} | {r['baseline_units']} | {r['saving']:+.0%} | "
              f"{'yes' if r['agrees_within_bounds'] else 'NO'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
