"""Slice points per second with 1 and 2 processes (torchrun, gloo on CPU; NCCL with --device cuda).

The same surface (a small BN-CNN checkpoint, random CIFAR-shaped data in an npz file, a GRID×GRID
filter-normalised slice, training set only) is computed from scratch once with one process and
once under ``torchrun --nproc-per-node N``, in one run of this script, and the whole-command wall
times, points per second and the speed-up are printed. On a 2-core machine each process is given
one thread (``OMP_NUM_THREADS=1``) in both runs, so the comparison is 1 core vs 2 cores.

    python benchmarks/distributed_points.py [--grid 11] [--n 1024] [--nproc 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from landscape.models import ModelSpec, model_from_spec  # noqa: E402


def make_inputs(folder: Path, n: int, seed: int = 0) -> tuple:
    rng = np.random.RandomState(seed)
    data = folder / "data.npz"
    np.savez(data, x_train=rng.randn(n, 3, 32, 32).astype(np.float32), y_train=rng.randint(0, 10, n),
             x_test=rng.randn(8, 3, 32, 32).astype(np.float32), y_test=rng.randint(0, 10, 8))
    torch.manual_seed(seed)
    model = model_from_spec(ModelSpec("cnn", 10, (3, 32, 32), 0.5))
    ck = folder / "ck.pt"
    torch.save(model.state_dict(), ck)
    return ck, data


def run(nproc: int, ck: Path, data: Path, out: Path, grid: int, device: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", LANDSCAPE_PROGRESS="0")
    args = ["-m", "landscape", "slice", str(ck), "--model", "cnn", "--width", "0.5", "--data", f"npz:{data}",
            "--dirs", "2", "--range", f"-1:1:{grid}", "--no-test", "--device", device, "--out", str(out)]
    cmd = [sys.executable, *args] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=11)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ck, data = make_inputs(folder, a.n)
        points = a.grid * a.grid
        t1 = run(1, ck, data, folder / "one.h5", a.grid, a.device)
        tn = run(a.nproc, ck, data, folder / "many.h5", a.grid, a.device)
    print(f"{points} points, {a.n} samples, small BN-CNN, device {a.device}")
    print(f"1 process : {t1:7.2f} s  {points / t1:6.2f} points/s")
    print(f"{a.nproc} processes: {tn:7.2f} s  {points / tn:6.2f} points/s")
    print(f"speed-up  : {t1 / tn:.2f}x (whole command, start-up included)")


if __name__ == "__main__":
    main()
