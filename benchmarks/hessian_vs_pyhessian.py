"""Top-5 Hessian eigenvalues: landscape (Lanczos, forward-over-reverse HVPs) vs PyPI pyhessian 0.1.

Same model, data, batch size and loss for both, one run each, side by side in one process:

- model: landscape's small BN-CNN at width 1.1 with 3 input channels (24,020 parameters), briefly
  trained (2 epochs of SGD on the benchmark data) so that BatchNorm's running statistics are real;
- data: ``--n`` CIFAR-shaped random images (seeded) with random labels, batch size ``--batch-size``;
- landscape: ``top_eigen(k=5, tol=1e-4)`` (float32, Lanczos with full reorthogonalisation);
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
import time

import torch

from landscape.hessian import HessianOperator, eigsh
from landscape.hessian.lanczos import arpack_eigsh
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
    torch.manual_seed(seed)
    (vals, vecs), sec = timed(h.eigenvalues, top_n=k)
    flat = torch.stack([torch.cat([t.reshape(-1) for t in v]) for v in vecs])
    return list(vals), flat / flat.norm(dim=1, keepdim=True), count[0], sec


def true_residuals(op: HessianOperator, vals, vecs) -> list:
    hv = op.matmat(vecs.to(op.dtype))
    lam = torch.tensor(vals, dtype=op.dtype)
    return (hv - lam[:, None] * vecs.to(op.dtype)).norm(dim=1).tolist()


def per_pass_cost(obj: Objective, reps: int = 2) -> tuple:
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(0))
    obj.value_and_grad()
    obj.hvp(v)
    fb, hv = [], []
    for _ in range(reps):                      # interleaved, to share the machine's load
        fb.append(timed(obj.value_and_grad)[1])
        hv.append(timed(obj.hvp, v)[1])
    return min(fb), min(hv)


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

    fb, hv = per_pass_cost(obj)
    print(f"one forward+backward over the set: {fb:.2f} s; one HVP (forward-over-reverse): {hv:.2f} s "
          f"= {hv / fb:.2f}x", flush=True)

    op = HessianOperator(obj)
    ours, t_ours = timed(eigsh, op, k=args.k, which="LA", tol=args.tol, seed=args.seed)
    print(f"landscape Lanczos: {t_ours:.1f} s, {ours.matvecs} HVPs, λ = "
          + ", ".join(f"{v:.5g}" for v in ours.eigenvalues), flush=True)

    ph_vals, ph_vecs, ph_hvps, t_ph = run_pyhessian(model, x, y, args.batch_size, args.k, args.seed)
    print(f"pyhessian power iteration: {t_ph:.1f} s, {ph_hvps} HVPs, λ = "
          + ", ".join(f"{v:.5g}" for v in ph_vals), flush=True)
    print(f"pyhessian: {t_ph / ph_hvps:.2f} s per HVP (double backward) = {t_ph / ph_hvps / fb:.2f}x a "
          "forward+backward", flush=True)

    arp = None
    if args.arpack:
        arp, t_arp = timed(arpack_eigsh, HessianOperator(obj), k=args.k, which="LA", tol=args.tol, seed=args.seed)
        print(f"scipy ARPACK over the same HVPs: {t_arp:.1f} s, {arp.matvecs - args.k} HVPs "
              f"(+{args.k} for residuals), λ = " + ", ".join(f"{v:.5g}" for v in arp.eigenvalues), flush=True)

    ref_vals = None
    if not args.no_reference:
        obj64 = Objective(model, x, y, loss="ce", batch_size=args.batch_size, dtype=torch.float64)
        ref, t_ref = timed(eigsh, HessianOperator(obj64), k=args.k, which="LA", tol=1e-9, seed=args.seed,
                           v0=ours.eigenvectors.double())
        ref_vals = ref.eigenvalues
        print(f"reference (float64, tol 1e-9, warm start): {t_ref:.1f} s, {ref.matvecs} HVPs, λ = "
              + ", ".join(f"{v:.7g}" for v in ref.eigenvalues)
              + f"; max residual/λ_max {max(ref.residuals) / ref.eigenvalues[0]:.1e}", flush=True)

    check = HessianOperator(obj)
    res_ours = [r / ours.eigenvalues[0] for r in ours.residuals]
    res_ph = [r / max(abs(v) for v in ph_vals) for r in true_residuals(check, ph_vals, ph_vecs)]
    out = {
        "params": obj.dim, "n": args.n, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "load_average_before": load0[0], "fb_seconds": fb, "hvp_seconds": hv, "hvp_over_fb": hv / fb,
        "landscape": {"seconds": t_ours, "hvps": ours.matvecs, "eigenvalues": list(ours.eigenvalues),
                      "relative_residuals": res_ours},
        "pyhessian": {"seconds": t_ph, "hvps": ph_hvps, "eigenvalues": ph_vals, "relative_residuals": res_ph,
                      "seconds_per_hvp": t_ph / ph_hvps},
        "speedup": t_ph / t_ours,
    }
    if arp is not None:
        out["arpack"] = {"seconds": t_arp, "hvps": arp.matvecs - args.k, "eigenvalues": list(arp.eigenvalues)}
    print(f"\nspeed: landscape {t_ours:.1f} s vs pyhessian {t_ph:.1f} s → {t_ph / t_ours:.1f}x faster "
          f"({ph_hvps} vs {ours.matvecs} HVPs)")
    print(f"true residual ‖Hv − λv‖/λ_max: landscape max {max(res_ours):.1e}, pyhessian max {max(res_ph):.1e}")
    if ref_vals is not None:
        scale = ref_vals[0]
        err_ours = [abs(a - b) / scale for a, b in zip(ours.eigenvalues, ref_vals)]
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
