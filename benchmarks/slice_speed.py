"""Whole-call time of a 2-D loss slice against its floor: points × one plain inference forward.

A small BN-CNN (``cnn`` from the registry) on 1,024 random CIFAR-shaped images, a 15×15 grid of
filter-normalised random directions, training set only (one forward over the set per point). The
timed call is :func:`landscape.slices.slice_checkpoint` from a checkpoint file and an ``npz`` data
file to the finished HDF5 file — session loading, direction drawing, file creation, every point,
the journal and the final consolidation. The floor is ``points × t_fwd`` where ``t_fwd`` is the
fastest plain ``model(x)`` over the 1,024 images under ``torch.inference_mode`` found over batch
sizes {128, 256, 512, 1024} and both memory layouts (NCHW and channels_last), best of several
repeats. Both are measured in the same run, interleaved, ``--repeats`` times; the ratios' range is
printed (the CPU may be shared with other work: look at the spread).

    python benchmarks/slice_speed.py [--grid 15] [--width 0.5] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LANDSCAPE_PROGRESS", "0")

from landscape.models import ModelSpec, model_from_spec  # noqa: E402
from landscape.slices import slice_checkpoint  # noqa: E402


def best_forward(model: torch.nn.Module, x: torch.Tensor, *, repeats: int) -> dict:
    """Fastest plain inference forward over ``x`` per (layout, batch size), seconds."""
    out = {}
    for layout in ("nchw", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        m = model.to(memory_format=fmt)
        xs = x.contiguous(memory_format=fmt)
        for bs in (128, 256, 512, 1024):
            with torch.inference_mode():
                for a in range(0, len(xs), bs):  # warm-up
                    m(xs[a:a + bs])
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    for a in range(0, len(xs), bs):
                        m(xs[a:a + bs])
                    times.append(time.perf_counter() - t)
            out[(layout, bs)] = min(times)
    model.to(memory_format=torch.contiguous_format)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=15)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = ModelSpec("cnn", 10, (3, 32, 32), args.width)
    torch.manual_seed(0)
    model = model_from_spec(spec).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.n,), generator=g)
    tmp = Path(tempfile.mkdtemp(prefix="slice_speed_"))
    np.savez(tmp / "data.npz", x_train=x.numpy(), y_train=y.numpy(), x_test=x[:16].numpy(), y_test=y[:16].numpy())
    torch.save({"model_state_dict": model.state_dict(), "landscape": {"model": spec.to_json()}}, tmp / "ck.pt")
    n_points = args.grid * args.grid
    rng = f"-1:1:{args.grid}"
    print(f"cnn width {args.width} ({sum(p.numel() for p in model.parameters()):,} parameters), {args.n} images "
          f"3x32x32, {args.grid}x{args.grid} = {n_points} points, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    ratios, per_point, floors = [], [], []
    for r in range(args.repeats):
        fwd = best_forward(model, x, repeats=5)
        (layout, bs), t_fwd = min(fwd.items(), key=lambda kv: kv[1])
        out = tmp / f"s{r}.h5"
        t0 = time.perf_counter()
        surface = slice_checkpoint(str(tmp / "ck.pt"), data=f"npz:{tmp / 'data.npz'}", dirs=2,
                                   xrange=(-1.0, 1.0, args.grid), yrange=(-1.0, 1.0, args.grid), test=False,
                                   out=str(out), overwrite=True, batch_size=args.batch_size, seed=r)
        t_call = time.perf_counter() - t0
        assert surface.computed.all()
        floor = n_points * t_fwd
        ratios.append(t_call / floor)
        per_point.append(surface.stats["seconds_per_point"])
        floors.append(t_fwd)
        table = ", ".join(f"{lay[:4]}/{b}: {1e3 * t:.0f}" for (lay, b), t in sorted(fwd.items()))
        print(f"repeat {r + 1}: plain forward ms [{table}]; best {1e3 * t_fwd:.1f} ms ({layout}, batch {bs})")
        print(f"  slice call {t_call:.2f} s for {n_points} points ({1e3 * per_point[-1]:.1f} ms/point in the loop); "
              f"floor {floor:.2f} s; ratio {ratios[-1]:.2f}")
    print(f"ratio (whole call / points x best plain forward): {min(ratios):.2f} .. {max(ratios):.2f} "
          f"over {args.repeats} repeats (goal <= 1.3); rng {rng}")


if __name__ == "__main__":
    main()
