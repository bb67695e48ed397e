"""What landscape.Monitor costs a training loop: wall time of ``mon.step`` at a measurement vs a
plain training step, side by side (small BN-CNN, CIFAR-shaped random data, SGD with momentum).

A plain step is forward + backward + ``optimizer.step()`` on one mini-batch. ``mon.step`` at a
non-measuring step is a counter increment; at a measuring step it computes λ_max (warm-started
Lanczos) and the batch sharpness on the fixed subset. The first measurement pays one-off setup
(the private model copy, cold Lanczos start), so it is reported separately from the later ones.
Memory held by the Monitor (the subset and, with ``spikes=True``, ``keep + 1`` CPU copies of the
weights and optimizer state) is printed too.

    python benchmarks/monitor_overhead.py [--n 2048] [--subset 512] [--batch-size 128]
                                          [--measurements 5] [--width 0.5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from landscape import Monitor  # noqa: E402
from landscape.models import ModelSpec, model_from_spec  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048, help="training samples (random, CIFAR-shaped)")
    ap.add_argument("--subset", type=int, default=512, help="Monitor subset for sharpness")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--measurements", type=int, default=5, help="measuring steps timed after the first")
    ap.add_argument("--plain-steps", type=int, default=20, help="plain steps timed")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.n,), generator=g)
    torch.manual_seed(0)
    model = model_from_spec(ModelSpec("cnn", 10, (3, 32, 32), args.width)).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    crit = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=args.batch_size)
    out = Path(tempfile.mkdtemp(prefix="monitor_overhead_"))
    every = 2
    mon = Monitor(model, opt, train=loader, loss=crit, out=out, every=every, subset=args.subset,
                  batch_size=args.batch_size)
    batches = [(xb.to(device), yb.to(device)) for xb, yb in loader]

    def train_step(i: int) -> float:
        xb, yb = batches[i % len(batches)]
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = crit(model(xb), yb)
        loss.backward()
        opt.step()
        sync(device)
        return time.perf_counter() - t0

    plain, idle, measuring = [], [], []
    first = None
    step = 0
    model.train()
    while len(measuring) < args.measurements or len(plain) < args.plain_steps:
        plain.append(train_step(step))
        step += 1
        t0 = time.perf_counter()
        row = mon.step()
        sync(device)
        dt = time.perf_counter() - t0
        if row is None:
            idle.append(dt)
        elif first is None:
            first = (dt, row)
        else:
            measuring.append((dt, row))
    mon.close()
    med = statistics.median
    plain_s = med(plain)
    meas_s = med(dt for dt, _ in measuring)
    hvps = med(int(r["hvps"]) for _, r in measuring)
    subset_bytes = sum(t.numel() * t.element_size() for t in mon.subset)
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    opt_bytes = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                    if isinstance(t, torch.Tensor))
    print(f"small BN-CNN (width {args.width}, {n_params:,} parameters), batch {args.batch_size}, "
          f"subset {args.subset}, device {device}, torch threads {torch.get_num_threads()}")
    print(f"{'':34s}{'seconds':>10s}{'× plain step':>14s}")
    print(f"{'plain training step (median)':34s}{plain_s:10.4f}{1.0:14.2f}")
    print(f"{'mon.step, not measuring (median)':34s}{med(idle):10.6f}{med(idle) / plain_s:14.4f}")
    print(f"{'mon.step, first measurement':34s}{first[0]:10.4f}{first[0] / plain_s:14.2f}")
    print(f"{'mon.step, later measurements':34s}{meas_s:10.4f}{meas_s / plain_s:14.2f}"
          f"   (median of {len(measuring)}, {hvps:g} Hessian-vector products each)")
    print(f"memory held: subset {subset_bytes / 2**20:.1f} MiB; per kept checkpoint "
          f"{(state_bytes + opt_bytes) / 2**20:.2f} MiB (spikes=True keeps keep + 1 of them)")
    print(f"per measurement amortised over every={every}: use every=K to spread it: overhead ≈ "
          f"{meas_s:.3f}/K s per step")


if __name__ == "__main__":
    main()
