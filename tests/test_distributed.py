"""torchrun with 2 CPU processes (gloo) gives the single-process numbers."""

import json
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


BN_MODES = ("eval", "train")


@pytest.fixture(scope="module")
def data_parallel(tmp_path_factory):
    """The worker's numbers for every BatchNorm mode, from one torchrun (one start-up, not two)."""
    out = tmp_path_factory.mktemp("dist") / "dist.pt"
    torchrun(HERE / "dist" / "objective_worker.py", out, *BN_MODES)
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("bn_mode", BN_MODES)
def test_objective_data_parallel_matches_single_process(data_parallel, bn_mode):
    got = data_parallel[bn_mode]
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


def _slice_cmd(ck, out, *extra):
    return ["-m", "landscape", "slice", str(ck), "--dirs", "2", "--range", "-1:1:5", "--yrange", "-1:1:4",
            "--subset", "200", "--seed", "3", "--out", str(out), *extra]


def _torchrun_module(args, nproc):
    env = dict(os.environ, OMP_NUM_THREADS="1", LANDSCAPE_PROGRESS="0")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _one_process(args):
    """The same command in this process (one rank, no process start-up); ``args`` as for
    :func:`_torchrun_module` (``-m landscape`` first)."""
    from click.testing import CliRunner

    from landscape.cli import main

    assert args[:2] == ["-m", "landscape"]
    res = CliRunner().invoke(main, args[2:])
    assert res.exit_code == 0, res.output


def _knock_out(path, keep_every=3):
    """Simulate an interrupted run: forget all but every third point."""
    import h5py
    import numpy as np

    with h5py.File(path, "r+") as f:
        mask = f["computed"][...]
        flat = mask.reshape(-1)
        drop = np.arange(flat.size) % keep_every != 0
        flat[drop] = False
        f["computed"][...] = flat.reshape(mask.shape)
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            values = f[key][...].reshape(-1)
            values[drop] = np.nan
            f[key][...] = values.reshape(mask.shape)
    return int(drop.sum())


def _surface(path):
    import h5py

    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("train_loss", "train_acc", "test_loss", "test_acc", "computed")}


def test_slice_two_ranks_equals_one_and_resumes_across_rank_counts(digits_run, tmp_path):
    import numpy as np

    ck = digits_run / "epoch_003.pt"
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    _one_process(_slice_cmd(ck, one))
    _torchrun_module(_slice_cmd(ck, two), nproc=2)
    a, b = _surface(one), _surface(two)
    assert a["computed"].all() and b["computed"].all() and a["train_loss"].shape == (5, 4)
    for k in ("train_loss", "test_loss", "train_acc", "test_acc"):
        assert np.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), k
    # a file started with 1 process is finished with 2, and one started with 2 is finished with 1
    dropped_one, dropped_two = _knock_out(one), _knock_out(two)
    assert dropped_one > 0 and dropped_two > 0
    _torchrun_module(_slice_cmd(ck, one, "--json", tmp_path / "r1.json"), nproc=2)
    _one_process(_slice_cmd(ck, two, "--json", tmp_path / "r2.json"))
    # only the missing points are computed, each exactly once
    assert json.loads((tmp_path / "r1.json").read_text())["stats"]["computed_now"] == dropped_one
    assert json.loads((tmp_path / "r2.json").read_text())["stats"]["computed_now"] == dropped_two
    for path in (one, two):
        c = _surface(path)
        assert c["computed"].all()
        for k in ("train_loss", "test_loss"):
            assert np.allclose(c[k], a[k], rtol=1e-5, atol=1e-7), (path, k)


def test_hessian_two_ranks_equals_one(tmp_path):
    from landscape.train import TrainConfig, train

    train(TrainConfig(model="mlp:hidden=32,act=tanh", optimizer="sgd", lr=0.1, momentum=0.9, epochs=1),
          tmp_path / "run")
    ck = tmp_path / "run" / "epoch_001.pt"
    args = ["-m", "landscape", "hessian", str(ck), "--top-k", "2", "--subset", "128", "--batch-size", "32",
            "--tol", "1e-6", "--dtype", "float64"]
    _one_process([*args, "--json", str(tmp_path / "one.json")])
    _torchrun_module([*args, "--json", str(tmp_path / "two.json")], nproc=2)
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    for a, b in zip(one["eigenvalues"], two["eigenvalues"]):
        assert abs(a - b) <= 1e-5 * abs(one["eigenvalues"][0]), (one["eigenvalues"], two["eigenvalues"])
    assert one["stability"]["threshold"] == two["stability"]["threshold"]
