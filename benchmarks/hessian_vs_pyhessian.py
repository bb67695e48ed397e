"""Top-5 Hessian eigenvalues: landscape (Lanczos, forward-over-reverse HVPs) vs PyPI pyhessian 0.1.

Same model, data, batch size and loss for both, one run each, side by side in one process:

- model: landscape's small BN-CNN at width 1.1 with 3 input channels (24,020 parameters), briefly
  trained (2 epochs of SGD on the benchmark data) so that BatchNorm's running statistics are real;
- data: ``--n`` CIFAR-shaped random images (seeded) with random labels, batch size ``--batch-size``;
- landscape: Lanczos with full reorthogonalisation, k=5, tol=1e-4 (residual), float32, with the
  default product method ("auto": cached gradient graphs, one backward per product; the time
  includes building them) and, for comparison, with forward-over-reverse products ("fwd");
- pyhessian: ``hessian(...).eigenvalues(top_n=5)`` with its defaults (power iteration with
  deflation, maxIter=100, stop when λ changes by < 1e-3 relative), via its full-dataset path;
- reference: landscape in float64 at tol 1e-9, warm-started from the float32 eigenvectors;
- optional: scipy ARPACK over the same products (``--arpack``).

Prints seconds, HVP counts, the speed ratio, each method's worst eigenvalue error relative to
λ_max of the reference, the true residuals ‖Hv − λv‖/λ_max, and one HVP's cost relative to one
forward+backward pass over the same data. Wall-clock numbers depend on what else the machine
runs; the script prints the load average before and after.

    .venv/bin/python benchmarks/hessian_vs_pyhessian.py [--n 1024] [--batch-size 128] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch

from landscape.hessian import HessianOperator, eigsh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from crosscheck import arpack_eigsh  # noqa: E402  (cross-library references live with the tests)

from landscape.models.small import cnn
from landscape.objective import Objective


def make_problem(n: int, width: float, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    torch.manual_seed(seed)
    model = cnn(10, (3, 32, 32), width=width)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(2):
        for a in range(0, n, 128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[a:a + 128]), y[a:a + 128]).backward()
            opt.step()
    model.eval()
    return model, x, y


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


def timed2(fn, *a, **k):
    """(result, wall seconds, process CPU seconds)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0, time.process_time() - c0


def run_pyhessian(model, x, y, batch_size: int, k: int, seed: int):
    from pyhessian import hessian

    net = copy.deepcopy(model)
    loader = [(x[a:a + batch_size], y[a:a + batch_size]) for a in range(0, len(y), batch_size)]
    h = hessian(net, torch.nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
    count = [0]
    original = h.dataloader_hv_product

    def counted(v):
        count[0] += 1
        return original(v)

    h.dataloader_hv_product = counted
    warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
    torch.manual_seed(seed)
    (vals, vecs), sec, cpu = timed2(h.eigenvalues, top_n=k)
    flat = torch.stack([torch.cat([t.reshape(-1) for t in v]) for v in vecs])
    return list(vals), flat / flat.norm(dim=1, keepdim=True), count[0], sec, cpu


def true_residuals(op: HessianOperator, vals, vecs) -> list:
    hv = op.matmat(vecs.to(op.dtype))
    lam = torch.tensor(vals, dtype=op.dtype)
    return (hv - lam[:, None] * vecs.to(op.dtype)).norm(dim=1).tolist()


def per_pass_cost(obj: Objective, reps: int = 2) -> dict:
    """Process CPU seconds of one forward+backward and one product of each method (interleaved)."""
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(0))
    cached = HessianOperator(obj, method="cached")
    fns = {"fb": obj.value_and_grad, "fwd": lambda: obj.hvp(v), "rev": lambda: obj.hvp(v, method="rev"),
           "cached": lambda: cached.matvec(v)}
    out = {k: float("inf") for k in fns}
    for _ in range(reps + 1):                  # first round warms up
        for k, f in fns.items():
            c0 = time.process_time()
            f()
            out[k] = min(out[k], time.process_time() - c0)
    _, _, out["cached_build"] = timed2(HessianOperator, obj, method="cached")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=float, default=1.1)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--arpack", action="store_true", help="also time scipy ARPACK over the same HVPs")
    ap.add_argument("--no-reference", action="store_true", help="skip the float64 reference")
    ap.add_argument("--json", default=None, help="write the figures as JSON to this path")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load0 = os.getloadavg()
    model, x, y = make_problem(args.n, args.width, args.seed)
    obj = Objective(model, x, y, loss="ce", batch_size=args.batch_size)
    print(f"model: BN-CNN width {args.width}, {obj.dim:,} parameters; {args.n} CIFAR-shaped samples, "
          f"batch size {args.batch_size}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {load0[0]:.1f}", flush=True)

    cost = per_pass_cost(obj)
    fb = cost["fb"]
    print(f"CPU seconds of one forward+backward over the set: {fb:.2f}; one HVP: "
          + ", ".join(f"{k} {cost[k]:.2f} ({cost[k] / fb:.2f}x)" for k in ("fwd", "rev", "cached"))
          + f"; building the cached graphs once: {cost['cached_build']:.2f} ({cost['cached_build'] / fb:.2f}x)",
          flush=True)

    def lanczos(method: str) -> tuple:
        def go():
            return eigsh(HessianOperator(obj, method=method), k=args.k, which="LA", tol=args.tol, seed=args.seed)
        return timed2(go)

    ours, t_ours, c_ours = lanczos("auto")
    print(f"landscape Lanczos (auto = cached products): {t_ours:.1f} s wall, {c_ours:.1f} s CPU, "
          f"{ours.matvecs} HVPs, λ = " + ", ".join(f"{v:.5g}" for v in ours.eigenvalues), flush=True)
    fwd, t_fwd, c_fwd = lanczos("fwd")
    print(f"landscape Lanczos (forward-over-reverse products): {t_fwd:.1f} s wall, {c_fwd:.1f} s CPU, "
          f"{fwd.matvecs} HVPs", flush=True)

    ph_vals, ph_vecs, ph_hvps, t_ph, c_ph = run_pyhessian(model, x, y, args.batch_size, args.k, args.seed)
    print(f"pyhessian power iteration: {t_ph:.1f} s wall, {c_ph:.1f} s CPU, {ph_hvps} HVPs, λ = "
          + ", ".join(f"{v:.5g}" for v in ph_vals), flush=True)

    arp = None
    if args.arpack:
        arp, t_arp = timed(arpack_eigsh, HessianOperator(obj, method="fwd"), k=args.k, which="LA", tol=args.tol,
                           seed=args.seed)
        print(f"scipy ARPACK over forward-over-reverse HVPs: {t_arp:.1f} s, {arp.matvecs - args.k} HVPs "
              f"(+{args.k} for residuals), λ = " + ", ".join(f"{v:.5g}" for v in arp.eigenvalues), flush=True)

    ref_vals = None
    if not args.no_reference:
        obj64 = Objective(model, x, y, loss="ce", batch_size=args.batch_size, dtype=torch.float64)
        ref, t_ref = timed(eigsh, HessianOperator(obj64, method="fwd"), k=args.k, which="LA", tol=1e-9, seed=args.seed,
                           v0=ours.eigenvectors.double())
        ref_vals = ref.eigenvalues
        print(f"reference (float64, tol 1e-9, warm start): {t_ref:.1f} s, {ref.matvecs} HVPs, λ = "
              + ", ".join(f"{v:.7g}" for v in ref.eigenvalues)
              + f"; max residual/λ_max {max(ref.residuals) / ref.eigenvalues[0]:.1e}", flush=True)

    check = HessianOperator(obj, method="fwd")
    res_ours = [r / ours.eigenvalues[0] for r in ours.residuals]
    res_ph = [r / max(abs(v) for v in ph_vals) for r in true_residuals(check, ph_vals, ph_vecs)]
    out = {
        "params": obj.dim, "n": args.n, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "load_average_before": load0[0], "cpu_seconds_per_pass": cost,
        "landscape": {"seconds": t_ours, "cpu_seconds": c_ours, "hvps": ours.matvecs,
                      "eigenvalues": list(ours.eigenvalues), "relative_residuals": res_ours},
        "landscape_fwd": {"seconds": t_fwd, "cpu_seconds": c_fwd, "hvps": fwd.matvecs,
                          "eigenvalues": list(fwd.eigenvalues)},
        "pyhessian": {"seconds": t_ph, "cpu_seconds": c_ph, "hvps": ph_hvps, "eigenvalues": ph_vals,
                      "relative_residuals": res_ph},
        "speedup_wall": t_ph / t_ours, "speedup_cpu": c_ph / c_ours,
        "speedup_fwd_wall": t_ph / t_fwd, "speedup_fwd_cpu": c_ph / c_fwd,
    }
    if arp is not None:
        out["arpack"] = {"seconds": t_arp, "hvps": arp.matvecs - args.k, "eigenvalues": list(arp.eigenvalues)}
    print(f"\nspeed: landscape {t_ours:.1f} s vs pyhessian {t_ph:.1f} s wall → {t_ph / t_ours:.1f}x faster "
          f"(CPU time {c_ph / c_ours:.1f}x; {ph_hvps} vs {ours.matvecs} HVPs); with forward-over-reverse "
          f"products {t_ph / t_fwd:.1f}x wall, {c_ph / c_fwd:.1f}x CPU")
    print(f"true residual ‖Hv − λv‖/λ_max: landscape max {max(res_ours):.1e}, pyhessian max {max(res_ph):.1e}")
    if ref_vals is not None:
        scale = ref_vals[0]
        err_ours = [abs(a - b) / scale for a, b in zip(ours.eigenvalues, ref_vals)]
        out["landscape_fwd"]["error_over_lambda_max"] = [abs(a - b) / scale for a, b in zip(fwd.eigenvalues, ref_vals)]
        err_ph = [abs(a - b) / scale for a, b in zip(sorted(ph_vals, reverse=True), ref_vals)]
        rel_ph = [(a - b) / b for a, b in zip(sorted(ph_vals, reverse=True), ref_vals)]
        out["reference"] = {"eigenvalues": list(ref_vals)}
        out["landscape"]["error_over_lambda_max"] = err_ours
        out["pyhessian"]["error_over_lambda_max"] = err_ph
        out["pyhessian"]["relative_error_each"] = rel_ph
        print(f"eigenvalue error / λ_max vs the reference: landscape max {max(err_ours):.1e}, pyhessian max {max(err_ph):.1e}")
        print("pyhessian's λ_i relative errors: " + ", ".join(f"{e:+.2%}" for e in rel_ph))
    load1 = os.getloadavg()
    out["load_average_after"] = load1[0]
    print(f"load average before/after: {load0[0]:.1f} / {load1[0]:.1f} (other processes share these cores)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
