"""At the study's scale: ResNet-18 (registry, CIFAR stem) and ResNet-32, side by side with the
tools people would pick instead, in one run.

For each model, on the same data (CIFAR-shaped random images with a fixed seed, or the first
``--n`` training images of real CIFAR-10 with ``--cifar DIR``), cross-entropy, BatchNorm with
running statistics (randomised as after some training, as in ``resnet_eigen.py``), batch 128:

- **top-5 Hessian eigenvalues** by landscape (the default call: Lanczos, error bounds ≤ 1e-4·λ_max,
  cached gradient graphs), by PyHessian (``hessian.eigenvalues(top_n=5)`` with its defaults,
  power iteration, tol 1e-3, at most ``--pyhessian-iters`` products per eigenvalue), and by
  curvlinops' ``HessianLinearOperator`` with ``scipy.sparse.linalg.eigsh`` (which='LA',
  tol ``--tol``); every tool's eigenvalues against one tight reference (landscape in float64,
  bounds ≤ ``--ref-tol``·λ_max), as max |λ_i − λ_ref,i| / λ_ref,1;
- **one Hessian-vector product's cost** in units of one forward+backward over the same data
  (landscape's default product method, after its one-off graph build);
- **2-D slice points per second**: landscape's ``compute_surface`` against Li et al.'s evaluation
  loop (eager PyTorch: copy θ + αd₁ + βd₂ into the model, then ``torch.no_grad()`` forwards in
  batches of 128), the same filter-normalised random directions and grid;
- **peak memory** of each: every measurement runs in its own child process (``--inline`` runs
  them in this one, e.g. for the smoke test) and reports its peak RSS (``ru_maxrss``) on the CPU,
  ``torch.cuda.max_memory_allocated`` on a GPU.

Results: a JSON file (``--json``) and a table on stdout. Sizes: the CPU default (``--n 32``,
3×3 slice grid, both models) is meant to finish in under 10 minutes on an idle 2-core machine;
``--gpu`` runs the issue's full sizes on ``cuda`` (10,000 images, 51×51 grid). TF32 is off
(``torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False``), so GPU
numbers are float32-exact; the JSON says so. Wall times depend on what else the machine runs:
the load average is recorded before and after.

curvlinops (``curvlinops-for-pytorch``, the ``bench`` extra) depends on BackPACK, which requires
torchvision and, through it, a matching torch build; on a CPU-only machine install it with
``pip install --no-deps curvlinops-for-pytorch backpack-for-pytorch einops einconv
linear_operator opt_einsum`` to keep the installed torch. Without it the curvlinops rows say
"not installed".

    python benchmarks/scale.py [--models resnet32,resnet18] [--n 32] [--grid 3] [--json out.json]
    python benchmarks/scale.py --gpu --json gpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LANDSCAPE_PROGRESS", "0")

TOOLS = ("reference", "landscape", "pyhessian", "curvlinops", "hvp_cost", "slice")


# --------------------------------------------------------------------------- problem
def problem(args: argparse.Namespace, name: str) -> tuple:
    """The model (BN statistics randomised, eval mode) and ``args.n`` images with labels."""
    from cnn_fixture import randomised_bn_problem

    device = torch.device(args.device)
    model, x, y = randomised_bn_problem(name, args.n, args.seed, images=not args.cifar)
    if args.cifar:
        from landscape.data import load_data

        ds = load_data(f"cifar10:{args.cifar}")
        x, y = ds.x_train[: args.n].clone(), ds.y_train[: args.n].clone()
    return model.to(device), x.to(device), y.to(device)


def objective(args: argparse.Namespace, name: str, dtype: torch.dtype = torch.float32):
    from landscape.objective import Objective

    model, x, y = problem(args, name)
    return Objective(model, x, y, loss="ce", batch_size=args.batch, dtype=dtype, device=args.device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- tools
def run_reference(args: argparse.Namespace, name: str) -> dict:
    """landscape in float64, bounds ≤ ref_tol·λ_max (or what the product budget allows)."""
    from landscape.hessian import HessianOperator, eigsh

    obj = objective(args, name, torch.float64)
    t0 = time.perf_counter()
    r = eigsh(HessianOperator(obj), k=args.k, tol=args.ref_tol, max_iter=args.ref_hvps)
    return {"eigenvalues": list(r.eigenvalues), "error_bounds": list(r.error_bounds), "converged": r.converged,
            "hvps": r.matvecs, "seconds": time.perf_counter() - t0, "dtype": "float64"}


def run_landscape(args: argparse.Namespace, name: str) -> dict:
    """The default call of ``landscape hessian --top-k 5`` (build of the product graphs included)."""
    from landscape.hessian import HessianOperator, eigsh

    obj = objective(args, name)
    sync(args.device)
    t0 = time.perf_counter()
    op = HessianOperator(obj)
    r = eigsh(op, k=args.k, tol=args.tol)
    sync(args.device)
    return {"eigenvalues": list(r.eigenvalues), "error_bounds": list(r.error_bounds), "converged": r.converged,
            "hvps": r.matvecs, "seconds": time.perf_counter() - t0, "method": op.method}


def run_pyhessian(args: argparse.Namespace, name: str) -> dict:
    """PyHessian's ``eigenvalues(top_n=k)`` (power iteration with deflation, its tol 1e-3)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:   # the PyHessian runner lives with the cross-library checks of the tests
        from crosscheck import pyhessian_top
    except ImportError as exc:
        return {"skipped": f"pyhessian not usable: {exc}"}
    obj = objective(args, name)
    sync(args.device)
    t0 = time.perf_counter()
    r = pyhessian_top(obj, k=args.k, max_iter=args.pyhessian_iters, seed=args.seed, residuals=False)
    sync(args.device)
    vals = sorted(r.eigenvalues, reverse=True)
    return {"eigenvalues": vals, "hvps": r.matvecs, "seconds": time.perf_counter() - t0,
            "order_as_returned": list(r.eigenvalues), "max_iter": args.pyhessian_iters}


def run_curvlinops(args: argparse.Namespace, name: str) -> dict:
    """curvlinops' HessianLinearOperator through scipy's ARPACK (which='LA')."""
    try:
        from curvlinops import HessianLinearOperator
    except ImportError as exc:
        return {"skipped": f"curvlinops-for-pytorch not installed ({exc}); see the module docstring"}
    import numpy as np
    from scipy.sparse.linalg import LinearOperator, eigsh

    model, x, y = problem(args, name)
    params = [p for p in model.parameters() if p.requires_grad]
    data = [(x[a:a + args.batch], y[a:a + args.batch]) for a in range(0, len(x), args.batch)]
    sync(args.device)
    t0 = time.perf_counter()
    H = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), params, data,
                              check_deterministic=False).to_scipy()
    count = [0]

    def mv(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        return H @ v

    op = LinearOperator(H.shape, matvec=mv, dtype=H.dtype)
    v0 = np.random.default_rng(args.seed).standard_normal(H.shape[0]).astype(H.dtype)
    vals = eigsh(op, k=args.k, which="LA", tol=args.tol, v0=v0, return_eigenvectors=False)
    sync(args.device)
    return {"eigenvalues": sorted((float(v) for v in vals), reverse=True), "hvps": count[0],
            "seconds": time.perf_counter() - t0, "check_deterministic": False, "scipy_tol": args.tol}


def run_hvp_cost(args: argparse.Namespace, name: str) -> dict:
    """Median time of one product (default method, graphs already built) over that of one
    forward+backward of the mean loss over the same data, both over ``args.repeats`` tries."""
    from landscape.hessian import HessianOperator

    obj = objective(args, name)
    op = HessianOperator(obj)
    v = torch.randn(obj.dim, generator=torch.Generator().manual_seed(1)).to(obj.theta0)
    model, x, y = problem(args, name)

    def fwd_bwd() -> None:
        model.zero_grad(set_to_none=True)
        for a in range(0, len(x), args.batch):
            loss = torch.nn.functional.cross_entropy(model(x[a:a + args.batch]), y[a:a + args.batch],
                                                     reduction="sum") / len(x)
            loss.backward()

    def timed(fn: Callable[[], Any]) -> float:
        out = []
        for _ in range(args.repeats):
            sync(args.device)
            t0 = time.perf_counter()
            fn()
            sync(args.device)
            out.append(time.perf_counter() - t0)
        return sorted(out)[len(out) // 2]

    op.matvec(v)
    fwd_bwd()
    t_hvp, t_fb = timed(lambda: op.matvec(v)), timed(fwd_bwd)
    return {"method": op.method, "hvp_s": t_hvp, "forward_backward_s": t_fb, "ratio": t_hvp / t_fb}


def li_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, dirs: torch.Tensor,
            coords: List[tuple], batch: int) -> List[float]:
    """Li et al.'s evaluation loop, re-implemented: per point, write θ + αd₁ + βd₂ into the
    model's parameters, then eager ``no_grad`` forwards in batches, summing the loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    theta = [p.detach().clone() for p in params]
    sizes = [p.numel() for p in params]
    d1, d2 = (list(torch.split(d, sizes)) for d in dirs)
    out = []
    with torch.no_grad():
        for a, b in coords:
            for p, t, u, w in zip(params, theta, d1, d2):
                p.copy_(t + a * u.view_as(t) + b * w.view_as(t))
            total = 0.0
            for i in range(0, len(x), batch):
                total += float(torch.nn.functional.cross_entropy(model(x[i:i + batch]), y[i:i + batch],
                                                                 reduction="sum"))
            out.append(total / len(x))
        for p, t in zip(params, theta):
            p.copy_(t)
    return out


def run_slice(args: argparse.Namespace, name: str) -> dict:
    """Points per second of a g×g train-loss slice: landscape vs Li et al.'s loop."""
    from landscape.directions import random_directions
    from landscape.slices.api import compute_surface
    from landscape.slices.grid import Grid

    obj = objective(args, name)
    dirs = random_directions(obj.space, obj.theta0, k=2, seed=args.seed)
    grid = Grid.from_ranges((-1.0, 1.0, args.grid), (-1.0, 1.0, args.grid))
    sync(args.device)
    t0 = time.perf_counter()
    surface = compute_surface({"train": obj}, dirs, grid)
    sync(args.device)
    t_land = time.perf_counter() - t0
    model, x, y = problem(args, name)
    coords = [tuple(float(c) for c in row) for row in grid.coords()]
    sync(args.device)
    t0 = time.perf_counter()
    li = li_loop(model, x, y, dirs.vectors.to(x.device, torch.float32), coords, 128)
    sync(args.device)
    t_li = time.perf_counter() - t0
    ours = [float(v) for v in surface.values["train_loss"].reshape(-1)] if hasattr(surface, "values") else None
    same = ours is not None and len(ours) == len(li)
    # far from the centre the losses reach 1e9 on randomised networks, where float32 rounding
    # alone differs by hundreds: the relative difference is the comparable number
    agree = max(abs(a - b) for a, b in zip(ours, li)) if same else None
    rel = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(ours, li)) if same else None
    n = grid.n_points
    return {"points": n, "landscape_points_per_s": n / t_land, "li_points_per_s": n / t_li,
            "landscape_s": t_land, "li_s": t_li, "max_abs_loss_difference": agree,
            "max_rel_loss_difference": rel, "loss_range": [min(li), max(li)] if li else None}


RUNNERS: Dict[str, Callable[[argparse.Namespace, str], dict]] = {
    "reference": run_reference, "landscape": run_landscape, "pyhessian": run_pyhessian,
    "curvlinops": run_curvlinops, "hvp_cost": run_hvp_cost, "slice": run_slice,
}


# --------------------------------------------------------------------------- running
def exact_float32(device: str) -> None:
    """TF32 off: float32 products stay float32-exact on Ampere+ GPUs."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def measure(tool: str, args: argparse.Namespace, name: str) -> dict:
    """One tool on one model, with its peak memory (this process's)."""
    torch.set_num_threads(args.threads) if args.threads else None
    exact_float32(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    try:
        out = RUNNERS[tool](args, name)
    except Exception as exc:      # a tool failing is a result, not the end of the benchmark
        out = {"error": f"{type(exc).__name__}: {exc}"}
    if args.device.startswith("cuda"):
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        out["memory_kind"] = "torch.cuda.max_memory_allocated"
    else:
        out["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["memory_kind"] = "peak RSS of the process (includes Python and torch, ~0.3-0.5 GB)"
    return out


def _child(q: Any, tool: str, args: argparse.Namespace, name: str) -> None:
    q.put(measure(tool, args, name))


def isolated(tool: str, args: argparse.Namespace, name: str) -> dict:
    """``measure`` in a fresh process, so that the peak memory is this tool's alone."""
    if args.inline:
        return measure(tool, args, name)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, tool, args, name))
    p.start()
    try:
        out = q.get(timeout=args.tool_timeout)
    except Exception:
        out = {"error": f"no result within {args.tool_timeout} s"}
        p.terminate()
    p.join()
    return out


def errors_against(ref: dict, res: dict) -> Optional[float]:
    """max_i |λ_i − λ_ref,i| / λ_ref,1 (None without both)."""
    a, b = ref.get("eigenvalues"), res.get("eigenvalues")
    if not a or not b:
        return None
    return max(abs(x - y) for x, y in zip(a, b)) / abs(a[0])


def _num(value: Optional[float]) -> float:
    """A number for a table cell (NaN when the measurement is missing)."""
    return float("nan") if value is None else value


def table(results: dict) -> str:
    """The side-by-side table (markdown)."""
    lines = ["| model | tool | top-5 HVPs | seconds | max error / λ_max | peak MB |",
             "|---|---|---:|---:|---:|---:|"]
    for name, r in results["models"].items():
        ref = r.get("reference", {})
        for tool in ("landscape", "pyhessian", "curvlinops", "reference"):
            t = r.get(tool)
            if t is None:
                continue
            if "skipped" in t or "error" in t:
                lines.append(f"| {name} | {tool} | – | – | {t.get('skipped') or t.get('error')} | – |")
                continue
            err = errors_against(ref, t) if tool != "reference" else None
            err_s = f"{err:.1e}" if err is not None else f"bound {max(t.get('error_bounds', [math.nan])) / abs(t['eigenvalues'][0]):.0e}"
            lines.append(f"| {name} | {tool} | {t['hvps']} | {t['seconds']:.1f} | {err_s} | {t['peak_memory_mb']:.0f} |")
    lines += ["", "| model | HVP / (forward+backward) | slice points/s landscape | Li et al.'s loop | ratio (time) "
              "| max rel. loss difference |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in results["models"].items():
        h, s = r.get("hvp_cost", {}), r.get("slice", {})
        ratio = (s["li_points_per_s"] / s["landscape_points_per_s"]) if "li_points_per_s" in s else None
        lines.append(f"| {name} | {h.get('ratio', float('nan')):.2f} ({h.get('method', '?')}) | "
                     f"{s.get('landscape_points_per_s', float('nan')):.3g} | {s.get('li_points_per_s', float('nan')):.3g} | "
                     f"{ratio if ratio is None else round(ratio, 2)} | {_num(s.get('max_rel_loss_difference')):.1e} |")
    return "\n".join(lines)


def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet32,resnet18")
    ap.add_argument("--n", type=int, default=None, help="images (default 32; 10,000 with --gpu)")
    ap.add_argument("--grid", type=int, default=None, help="slice grid side (default 3; 51 with --gpu)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--ref-tol", type=float, default=1e-7)
    ap.add_argument("--ref-hvps", type=int, default=300)
    ap.add_argument("--pyhessian-iters", type=int, default=100, help="PyHessian's maxIter (its default 100)")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cifar", default=None, help="CIFAR-10 folder: the first --n training images")
    ap.add_argument("--gpu", action="store_true", help="cuda and the full sizes")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inline", action="store_true", help="no child processes (peak memory is then cumulative)")
    ap.add_argument("--tool-timeout", type=float, default=3600)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    args.device = args.device or ("cuda" if args.gpu else "cpu")
    args.n = args.n or (10_000 if args.gpu else 32)
    args.grid = args.grid or (51 if args.gpu else 3)
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse(argv)
    exact_float32(args.device)
    results: Dict[str, Any] = {
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "torch": torch.__version__, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tf32": False, "data": f"cifar10:{args.cifar}" if args.cifar else "random CIFAR-shaped (seeded)",
        "n": args.n, "grid": args.grid, "batch": args.batch, "k": args.k, "tol": args.tol,
        "load_before": os.getloadavg(), "models": {},
    }
    for name in [m for m in args.models.split(",") if m]:
        r: Dict[str, Any] = {}
        for tool in [t for t in args.tools.split(",") if t]:
            r[tool] = isolated(tool, args, name)
            print(f"{name} {tool}: {json.dumps(r[tool])}", file=sys.stderr, flush=True)
        for tool in ("landscape", "pyhessian", "curvlinops"):
            if tool in r and "reference" in r:
                r[tool]["max_error_rel"] = errors_against(r["reference"], r[tool])
        results["models"][name] = r
    results["load_after"] = os.getloadavg()
    print(table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
