"""Whole-call time of a 2-D loss slice against its floor: points × one plain inference forward.

A small BN-CNN (``cnn`` from the registry) on 1,024 random CIFAR-shaped images, a 15×15 grid of
filter-normalised random directions, training set only (one forward over the set per point). The
timed call is :func:`landscape.slices.slice_checkpoint` from a checkpoint file and an ``npz`` data
file to the finished HDF5 file — session loading, direction drawing, file creation, every point,
the journal and the final consolidation. The floor is ``points × t_fwd`` where ``t_fwd`` is the
fastest plain ``model(x)`` over the 1,024 images under ``torch.inference_mode`` found over batch
sizes {128, 256, 512, 1024} and both memory layouts (NCHW and channels_last), best of several
repeats. Both are measured in the same run, ``--repeats`` times, and the ratios' range is printed,
as wall time and as process CPU time. On a shared CPU the wall ratio swings with the load, so a
third number times one slice point (the loop's own evaluator) and one plain forward with the same
layout and batch size alternately, ``--pairs`` times, and compares their medians.

    python benchmarks/slice_speed.py [--grid 15] [--width 0.5] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LANDSCAPE_PROGRESS", "0")

from cnn_fixture import cnn_fixture  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from landscape.slices import slice_checkpoint  # noqa: E402


def best_forward(model: torch.nn.Module, x: torch.Tensor, *, repeats: int) -> dict:
    """Fastest plain inference forward over ``x`` per (layout, batch size): (wall s, CPU s)."""
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
                    t, c = time.perf_counter(), time.process_time()
                    for a in range(0, len(xs), bs):
                        m(xs[a:a + bs])
                    times.append((time.perf_counter() - t, time.process_time() - c))
            out[(layout, bs)] = min(times)
    model.to(memory_format=torch.contiguous_format)
    return out


def interleaved(ck: str, data: str, model: torch.nn.Module, x: torch.Tensor, *, pairs: int) -> tuple:
    """Median wall time of one slice point (the loop's own evaluator) and of one plain forward with
    the same layout and batch size, timed alternately so that load changes hit both alike."""
    from landscape.directions import random_directions
    from landscape.session import open_session
    from landscape.slices import PointEvaluator, choose_eval_config, prepare_objectives

    s = open_session(ck, data=data)
    cfg = choose_eval_config(s.train)  # the rule the slice loop uses (min(n, 256) unless given)
    d = random_directions(s.space, s.train.theta0, k=2, seed=0)
    ev = PointEvaluator(prepare_objectives([s.train], cfg), s.train.theta0, d)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    m, xs, bs = model.to(memory_format=fmt), x.contiguous(memory_format=fmt), cfg.batch_size
    t_pt, t_fw = [], []
    coords = np.random.default_rng(0).uniform(-1, 1, size=(pairs, 2))
    ev.point(coords[0])
    for c in coords:
        t = time.perf_counter()
        ev.point(c)
        t_pt.append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.inference_mode():
            for a in range(0, len(xs), bs):
                m(xs[a:a + bs])
        t_fw.append(time.perf_counter() - t)
    model.to(memory_format=torch.contiguous_format)
    return float(np.median(t_pt)), float(np.median(t_fw)), cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=15)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--pairs", type=int, default=20, help="interleaved point/forward pairs per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tmp, model, x = cnn_fixture(width=args.width, n=args.n, prefix="slice_speed_")
    n_points = args.grid * args.grid
    print(f"cnn width {args.width} ({sum(p.numel() for p in model.parameters()):,} parameters), {args.n} images "
          f"3x32x32, {args.grid}x{args.grid} = {n_points} points, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    ratios, cpu_ratios, pair_ratios = [], [], []
    for r in range(args.repeats):
        fwd = best_forward(model, x, repeats=5)
        (layout, bs), (t_fwd, c_fwd) = min(fwd.items(), key=lambda kv: kv[1][0])
        c_best = min(c for _, c in fwd.values())
        out = tmp / f"s{r}.h5"
        t0, c0 = time.perf_counter(), time.process_time()
        surface = slice_checkpoint(str(tmp / "ck.pt"), data=f"npz:{tmp / 'data.npz'}", dirs=2,
                                   xrange=(-1.0, 1.0, args.grid), yrange=(-1.0, 1.0, args.grid), test=False,
                                   out=str(out), overwrite=True, seed=r)
        t_call, c_call = time.perf_counter() - t0, time.process_time() - c0
        assert surface.computed.all()
        ratios.append(t_call / (n_points * t_fwd))
        cpu_ratios.append(c_call / (n_points * c_best))
        table = ", ".join(f"{lay[:4]}/{b}: {1e3 * t:.0f}" for (lay, b), (t, _) in sorted(fwd.items()))
        print(f"repeat {r + 1}: plain forward ms [{table}]; best {1e3 * t_fwd:.1f} ms ({layout}, batch {bs})")
        print(f"  slice call {t_call:.2f} s for {n_points} points ({1e3 * surface.stats['seconds_per_point']:.1f} "
              f"ms/point in the loop, batch {surface.stats['eval_batch_size']}, channels_last "
              f"{surface.stats['channels_last']}); floor {n_points * t_fwd:.2f} s; wall ratio {ratios[-1]:.2f}; "
              f"CPU-time ratio {cpu_ratios[-1]:.2f}")
        t_pt, t_fw, cfg = interleaved(str(tmp / "ck.pt"), f"npz:{tmp / 'data.npz'}", model, x, pairs=args.pairs)
        pair_ratios.append(t_pt / t_fw)
        print(f"  interleaved medians: slice point {1e3 * t_pt:.1f} ms vs plain forward {1e3 * t_fw:.1f} ms "
              f"(same layout and batch {cfg.batch_size}): {pair_ratios[-1]:.2f}")
    print(f"whole call / (points x best plain forward), wall time: {min(ratios):.2f} .. {max(ratios):.2f}; "
          f"CPU time: {min(cpu_ratios):.2f} .. {max(cpu_ratios):.2f}; one point / one forward, interleaved: "
          f"{min(pair_ratios):.2f} .. {max(pair_ratios):.2f} ({args.repeats} repeats; goal <= 1.3)")


if __name__ == "__main__":
    main()
