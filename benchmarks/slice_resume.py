"""Seconds per point of a fresh slice against the same slice killed half-way and resumed.

Issue #19 item 5: a resumed 13×13 slice cost 0.177 s per point against 0.074 s fresh, with 14.5 s
of system time against 0.9 s. The cause was not file I/O (a point costs one journal ``os.write``
either way) but page faults: glibc's malloc adapts its trim and mmap thresholds to the first
large blocks freed, and a fresh run (which timed several batch sizes first) and a resumed run left
them in different states, so the resumed run returned each point's activation memory to the OS
and faulted it back in. :func:`landscape.slices.steady_allocator` now fixes the thresholds before
the point loop.

Each run is a separate ``python -m landscape slice`` process (allocator state is per process) on a
small CNN and random CIFAR-shaped images; the table shows, per computed point: the point loop's wall
and CPU seconds and minor page faults (from the result's ``stats``), and the whole process's user
and system CPU seconds and minor page faults. ``--no-steady`` sets ``LANDSCAPE_STEADY_ALLOCATOR=0`` to show the numbers without the fix.

    python benchmarks/slice_resume.py [--grid 13] [--n 1024] [--width 0.5] [--no-steady]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnn_fixture import cnn_fixture  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from landscape.slices import read_surface  # noqa: E402


def _usage() -> tuple:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def _computed(path: Path) -> int:
    try:
        return int(read_surface(path).computed.sum())
    except Exception:  # not created yet
        return 0


def run_slice(cmd: list, env: dict, *, kill_at: int = 0, out: Path) -> dict:
    """Run one slice process (SIGKILLed once ``kill_at`` points are stored, if given); its CPU
    seconds and minor faults from the children's rusage, the loop's seconds from its JSON."""
    before = _usage()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while kill_at and proc.poll() is None and _computed(out) < kill_at:
        time.sleep(0.02)
    if kill_at and proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    after = _usage()
    res = {"user": after[0] - before[0], "sys": after[1] - before[1], "minflt": after[2] - before[2],
           "killed": proc.returncode == -signal.SIGKILL}
    if not kill_at and proc.returncode != 0:
        raise SystemExit(err.decode())
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=13)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-steady", action="store_true", help="without the allocator fix (for comparison)")
    args = ap.parse_args()

    tmp, model, x = cnn_fixture(width=args.width, n=args.n, prefix="slice_resume_")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "LANDSCAPE_PROGRESS": "0",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    if args.no_steady:
        env["LANDSCAPE_STEADY_ALLOCATOR"] = "0"
    g_ = args.grid
    base = [sys.executable, "-m", "landscape", "slice", str(tmp / "ck.pt"), "--data", f"npz:{tmp / 'data.npz'}",
            "--range", f"-1:1:{g_}", "--yrange", f"-1:1:{g_}", "--no-test", "--seed", "0"]
    points = g_ * g_
    print(f"cnn width {args.width}, {args.n} images 3x32x32, {g_}x{g_} = {points} points, "
          f"{args.threads} thread(s), steady allocator {'off' if args.no_steady else 'on'}")

    fresh_out = tmp / "fresh.h5"
    fresh = run_slice([*base, "--out", str(fresh_out), "--json", str(tmp / "fresh.json")], env, out=fresh_out)
    fresh_stats = json.loads((tmp / "fresh.json").read_text())["stats"]
    res_out = tmp / "resumed.h5"
    killed = run_slice([*base, "--out", str(res_out), "--flush-seconds", "1"], env, kill_at=points // 2, out=res_out)
    resumed = run_slice([*base, "--out", str(res_out), "--json", str(tmp / "resumed.json")], env, out=res_out)
    res_stats = json.loads((tmp / "resumed.json").read_text())["stats"]
    assert np.array_equal(read_surface(res_out).values["train_loss"], read_surface(fresh_out).values["train_loss"])
    n_fresh, n_res = fresh_stats["computed_now"], res_stats["computed_now"]
    print(f"killed after {points - n_res} of {points} points (killed: {killed['killed']}); resumed {n_res}")
    if n_res == 0:
        sys.exit("the kill came after the last point: nothing was resumed; use a larger --grid")
    print(f"{'per point':<28}{'fresh':>12}{'resumed':>12}")
    rows = [("loop wall s", fresh_stats["seconds_per_point"], res_stats["seconds_per_point"]),
            ("loop CPU s", fresh_stats["cpu_seconds_per_point"], res_stats["cpu_seconds_per_point"]),
            ("loop minor page faults", fresh_stats["minor_faults_per_point"], res_stats["minor_faults_per_point"]),
            ("process user CPU s", fresh["user"] / n_fresh, resumed["user"] / n_res),
            ("process system CPU s", fresh["sys"] / n_fresh, resumed["sys"] / n_res),
            ("process minor page faults", fresh["minflt"] / n_fresh, resumed["minflt"] / n_res)]
    for name, a, b in rows:
        print(f"{name:<28}{a:>12.4g}{b:>12.4g}")
    print("(loop: the point loop alone; process: the whole command, start-up included, over the points)")


if __name__ == "__main__":
    main()
