"""Top-5 Hessian eigenvalues of the registry ResNet-18 (CIFAR stem) on a few CIFAR-shaped images:
how many products each stopping rule needs, and whether the answers agree within their bounds.

The case of issue #22: BatchNorm running statistics randomised as after some training (means
N(0, 0.1²), variances U(0.5, 1.5)), model in eval mode, cross-entropy on random labels, float32,
default product method. One long single-vector Lanczos run (``--long`` products, thick restarts
at the default basis size) is recorded iteration by iteration: Lanczos with one start vector does
the same thing whatever its stopping rule, so the run shows where each rule would stop —

- ``values`` (the default): every eigenvalue's error bound ≤ tol·|λ_max|;
- ``vectors`` (the rule before issue #22): every residual ‖Hv − λv‖ ≤ tol·|λ_max|, capped at 150;

and its last iterate is the long reference. Then the default call itself (``eigsh`` with its
defaults, as ``landscape hessian`` runs it) and ``--blocks`` other block sizes are run for their
product counts. Product counts and eigenvalues are deterministic; wall times depend on the load
(the script prints the load average).

    .venv/bin/python benchmarks/resnet_eigen.py [--n 32] [--long 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from cnn_fixture import randomised_bn_problem

from landscape.hessian import HessianOperator, eigsh
from landscape.objective import Objective


def problem(name: str, n: int, seed: int) -> Objective:
    """The model with randomised BN statistics and ``n`` random CIFAR-shaped images
    (:func:`cnn_fixture.randomised_bn_problem`)."""
    return Objective(*randomised_bn_problem(name, n, seed), loss="ce", batch_size=128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--long", type=int, default=200, help="products of the long reference run")
    ap.add_argument("--blocks", default="auto", help="comma-separated block sizes to run as well")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-budget", type=float, default=None, help="seconds for the long run (it returns early)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--history", default=None, help="append each iteration of the long run here (JSON lines)")
    args = ap.parse_args()
    obj = problem(args.model, args.n, args.seed)
    out = {"model": args.model, "n": args.n, "params": obj.dim, "k": args.k, "tol": args.tol,
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "load_before": os.getloadavg()}
    t0 = time.perf_counter()
    op = HessianOperator(obj)
    out["method"], out["build_s"] = op.method, time.perf_counter() - t0
    hist = []

    def record(p) -> None:
        hist.append(p)
        if args.history:
            with open(args.history, "a") as f:
                f.write(json.dumps({"matvecs": p.matvecs, "eigenvalues": list(p.eigenvalues),
                                    "error_bounds": list(p.error_bounds), "residuals": list(p.residuals),
                                    "scale": p.scale, "seconds": p.seconds, "load": os.getloadavg()[0]}) + "\n")

    res = eigsh(op, k=args.k, tol=1e-12, converge="vectors", max_iter=args.long, seed=args.seed,
                time_budget=args.time_budget, callback=record)
    out["long"] = {"matvecs": res.matvecs, "seconds": res.seconds, "eigenvalues": list(res.eigenvalues),
                   "error_bounds": list(res.error_bounds), "residuals": list(res.residuals)}
    rows = [{"matvecs": p.matvecs, "eigenvalues": list(p.eigenvalues), "error_bounds": list(p.error_bounds),
             "residuals": list(p.residuals), "scale": p.scale, "seconds": p.seconds} for p in hist]
    out["history"] = rows

    def first(measure: str, cap: int):
        for r in rows:
            if len(r[measure]) == args.k and max(r[measure]) <= args.tol * r["scale"]:
                return r if r["matvecs"] <= cap else None
        return None

    for rule, measure, cap in (("values", "error_bounds", 10 ** 9), ("vectors", "residuals", 150)):
        r = first(measure, cap)
        if r is None:
            out[rule] = {"converged": False, "matvecs": min(cap, rows[-1]["matvecs"])}
            continue
        ok = all(abs(a - b) <= ea + eb for a, b, ea, eb in zip(r["eigenvalues"], res.eigenvalues,
                                                               r["error_bounds"], res.error_bounds))
        out[rule] = {"converged": True, "matvecs": r["matvecs"], "eigenvalues": r["eigenvalues"],
                     "error_bounds": r["error_bounds"], "agrees_with_long_within_bounds": ok,
                     "max_abs_diff_to_long": max(abs(a - b) for a, b in zip(r["eigenvalues"], res.eigenvalues))}
    print(json.dumps({k: v for k, v in out.items() if k != "history"}, indent=1), flush=True)
    for b in [x for x in args.blocks.split(",") if x]:
        blk = b if b == "auto" else int(b)
        r = eigsh(HessianOperator(obj), k=args.k, tol=args.tol, block=blk, seed=args.seed)
        ok = all(abs(a - c) <= ea + ec for a, c, ea, ec in zip(r.eigenvalues, res.eigenvalues,
                                                               r.error_bounds, res.error_bounds))
        out[f"block_{b}"] = {"converged": r.converged, "matvecs": r.matvecs, "seconds": r.seconds,
                             "eigenvalues": list(r.eigenvalues), "error_bounds": list(r.error_bounds),
                             "agrees_with_long_within_bounds": ok}
        print(b, json.dumps(out[f"block_{b}"]), flush=True)
    out["load_after"] = os.getloadavg()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
