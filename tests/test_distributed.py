"""torchrun with 2 CPU processes (gloo) gives the single-process numbers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from landscape import open_session

HERE = Path(__file__).parent


def torchrun(script, *args, nproc=2, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", LANDSCAPE_PROGRESS="0")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           str(script), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_objective_data_parallel_matches_single_process(tmp_path, bn_mode):
    out = tmp_path / "dist.pt"
    torchrun(HERE / "dist" / "objective_worker.py", out, bn_mode)
    got = torch.load(out, weights_only=True)
    s = open_session(None, model="cnn", data="digits", subset=300, batch_size=64, init_seed=0, bn_mode=bn_mode)
    v = torch.randn(s.train.dim, generator=torch.Generator().manual_seed(0))
    ev = s.train.evaluate()
    value, g = s.train.value_and_grad()
    assert got["n_local_batches"] in (2, 3)  # 5 batches of 64 dealt to 2 ranks
    assert got["loss"] == pytest.approx(ev.loss, rel=1e-6) and got["acc"] == ev.acc
    assert float(got["value"]) == pytest.approx(float(value), rel=1e-5)
    assert torch.allclose(got["grad"], g, rtol=1e-4, atol=1e-6)
    hv = s.train.hvp(v)
    assert ((got["hvp"] - hv).norm() / hv.norm()).item() < 1e-5
