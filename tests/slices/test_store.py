"""The slice store (landscape.slices.store: HDF5 file + journal): non-finite losses stored, resuming
after SIGKILL to the uninterrupted surface, one writer at a time, constant file operations per point,
long file names, and stored settings or crafted files refused on resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cases import objective_for

from landscape.directions import DirectionSet
from landscape.errors import LandscapeError
from landscape.slices import Grid, compute_surface, read_surface
from tests.slices.commands import digits_slice, one_line_error, run


def test_nonfinite_losses_are_stored_not_raised(tmp_path):
    obj = objective_for("mlp_tanh", loss="mse", dtype=torch.float32)
    big = torch.full((1, obj.dim), 1e30)
    d = DirectionSet(big, "file", "none")
    with pytest.warns(UserWarning, match="not finite"):
        s = compute_surface({"train": obj}, d, Grid(np.array([0.0, 1.0, 1e10])), out=str(tmp_path / "n.h5"))
    assert s.computed.all() and np.isfinite(s.values["train_loss"][0])
    assert not np.isfinite(s.values["train_loss"][2]) and s.n_nonfinite() >= 1
    again = read_surface(tmp_path / "n.h5")
    assert again.computed.all() and not np.isfinite(again.values["train_loss"][2])


def _computed(out: Path) -> int:
    try:
        return int(read_surface(out).computed.sum())
    except Exception:  # not created yet
        return 0


def _env() -> dict:
    # the same thread count as this process, so the floating-point sums are the same
    return {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "LANDSCAPE_PROGRESS": "0"}


def _folded(out: Path) -> int:
    """Points in the ``.h5`` file itself (the journal not counted)."""
    try:
        with h5py.File(out, "r") as f:
            return int(np.asarray(f["computed"]).sum())
    except Exception:  # not created yet, or being replaced
        return -1


def _run_until(cmd, out: Path, *, points: int, timeout: float = 120.0, count=_computed) -> bool:
    """Start ``cmd`` and SIGKILL it once ``count(out)`` reaches ``points``; True if it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env())
    t0 = time.time()
    while proc.poll() is None and count(out) < points and time.time() - t0 < timeout:
        time.sleep(0.01)
    finished = proc.poll() is not None
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return finished


def test_sigkilled_slice_resumes_to_the_uninterrupted_surface(digits_run, tmp_path):
    ck = digits_run / "epoch_003.pt"
    # an explicit --batch-size: the in-process reference must not pick another one by timing
    args = ["slice", str(ck), "--range", "-1:1:7", "--yrange", "-1:1:5", "--seed", "2", "--subset", "100",
            "--batch-size", "64", "--flush-seconds", "0.2"]
    ref = tmp_path / "ref.h5"
    assert run(*args, "--out", ref).exit_code == 0
    out = tmp_path / "killed.h5"
    cmd = [sys.executable, "-m", "landscape", *args, "--out", str(out)]
    total = 7 * 5
    # kill 1: a few points into the run; kill 2: later, after the journal was folded into the file
    assert not _run_until(cmd, out, points=3), "the run finished before it could be killed"
    partial = read_surface(out)  # the file is readable and holds what was computed
    assert 3 <= int(partial.computed.sum()) < total
    # the second run folds the journal into the file after its first point (--flush-seconds 0);
    # kill it once the file itself holds more than the first run had computed
    again = [c if c != "0.2" else "0" for c in cmd]
    assert not _run_until(again, out, points=int(partial.computed.sum()) + 1, count=_folded), \
        "finished before the kill"
    with h5py.File(out, "r") as f:  # a complete HDF5 file after a kill at any moment
        assert f["train_loss"].shape == (7, 5) and 0 < int(np.asarray(f["computed"]).sum()) < total
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    assert res.returncode == 0, res.stderr
    got, want = read_surface(out), read_surface(ref)
    assert got.computed.all()
    for m in ("train_loss", "train_acc", "test_loss", "test_acc"):
        np.testing.assert_array_equal(got.values[m], want.values[m], err_msg=m)
    with h5py.File(out, "r") as f, h5py.File(ref, "r") as g:
        assert np.array_equal(f["train_loss"], g["train_loss"])
        for n in g["directions/1"]:
            assert np.array_equal(f["directions/1"][n], g["directions/1"][n])
    assert not list(tmp_path.glob(".killed.h5.tmp-*"))  # stale temporary files cleaned up


def test_a_second_writer_is_refused(tmp_path):
    from landscape.slices import SurfaceStore

    first, second = SurfaceStore(tmp_path / "w.h5"), SurfaceStore(tmp_path / "w.h5")
    first.lock()
    try:
        with pytest.raises(LandscapeError, match="another process"):
            second.lock()
    finally:
        first.close()
    second.lock()  # free again once the first writer is gone
    second.close()


class _CountingOs:
    """The ``os`` module as the store sees it, counting opens and writes."""

    def __init__(self, real):
        self._real, self.opens, self.writes = real, 0, 0

    def __getattr__(self, name):
        return getattr(self._real, name)

    def open(self, *a, **k):
        self.opens += 1
        return self._real.open(*a, **k)

    def write(self, *a, **k):
        self.writes += 1
        return self._real.write(*a, **k)


def test_resumed_points_cost_the_same_file_operations_as_fresh_ones(tmp_path, monkeypatch):
    """#19 item 5: per point one journal write and no file opened, fresh or resumed."""
    import landscape.slices.store as store_mod

    obj = objective_for("mlp_tanh", dtype=torch.float64)
    d = DirectionSet(torch.randn(2, obj.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
                     "file", "none")
    grid = Grid(np.linspace(-1, 1, 6), np.linspace(-1, 1, 5))
    out = tmp_path / "io.h5"
    h5_opens = []
    real_file = h5py.File
    monkeypatch.setattr(h5py, "File", lambda *a, **k: h5_opens.append(a[0]) or real_file(*a, **k))
    counting = _CountingOs(os)
    monkeypatch.setattr(store_mod, "os", counting)

    def run_once():
        counting.opens = counting.writes = 0
        h5_opens.clear()
        s = compute_surface({"train": obj}, d, grid, out=str(out), flush_seconds=1e9)
        return s, counting.opens, counting.writes, len(h5_opens)

    fresh, opens_f, writes_f, h5_f = run_once()
    assert fresh.computed.all()
    assert writes_f == grid.n_points + 1  # the journal's header, then one record per point
    # half of the points undone: the resumed run does the same per point
    with h5py.File(out, "r+") as f:
        c = np.asarray(f["computed"])
        c.reshape(-1)[::2] = False
        f["computed"][...] = c
    todo = int((~c).sum())
    resumed, opens_r, writes_r, h5_r = run_once()
    np.testing.assert_array_equal(resumed.values["train_loss"], fresh.values["train_loss"])
    assert resumed.stats["computed_now"] == todo
    assert writes_r == todo  # one record per point, nothing else
    assert opens_r <= opens_f and h5_r <= h5_f + 1  # a constant number of opens, not one per point


def test_stored_negative_eval_batch_size_refused(digits_run, tmp_path):
    out = tmp_path / "s.h5"
    assert digits_slice(digits_run, out).exit_code == 0
    with h5py.File(out, "r+") as f:
        f.attrs["eval_batch_size"] = -5
        f["computed"][...] = False
    one_line_error(digits_slice(digits_run, out), "eval_batch_size", "-5")


def test_other_xcoordinates_refused_on_resume(digits_run, tmp_path):
    out = tmp_path / "s.h5"
    assert digits_slice(digits_run, out).exit_code == 0
    with h5py.File(out, "r+") as f:
        f["xcoordinates"][...] = np.array([-2.0, 0.0, 2.0])
        f["computed"][0] = False
    before = out.read_bytes()
    one_line_error(digits_slice(digits_run, out), "other coordinates", "--overwrite")
    assert out.read_bytes() == before
    assert digits_slice(digits_run, out, "--overwrite").exit_code == 0
    assert read_surface(out).xcoordinates.tolist() == [-1.0, 0.0, 1.0]


def test_a_252_character_file_name_works_and_resumes(digits_run, tmp_path):
    from landscape.slices import journal_path

    out = tmp_path / ("n" * 249 + ".h5")
    res = digits_slice(digits_run, out)
    assert res.exit_code == 0, res.output
    j = journal_path(out)
    assert j.exists() and len(j.name) <= 255 and j.parent == out.parent
    assert journal_path(tmp_path / "short.h5").name == "short.h5.journal"
    with h5py.File(out, "r+") as f:
        f["computed"][1] = False
    res = digits_slice(digits_run, out)
    assert res.exit_code == 0 and "(1 now" in res.output, res.output
    assert read_surface(out).computed.all()


def test_crafted_surface_files_are_refused_not_tracebacks(digits_run, tmp_path):
    out = tmp_path / "s.h5"
    assert digits_slice(digits_run, out).exit_code == 0
    with h5py.File(out, "r+") as f:
        del f.attrs["directions_info"]
    one_line_error(digits_slice(digits_run, out), "s.h5", "--overwrite")
    with h5py.File(out, "r+") as f:
        del f["xcoordinates"]
        f["xcoordinates"] = np.zeros((3, 2))
    one_line_error(digits_slice(digits_run, out), "not 1-D")
    with pytest.raises(LandscapeError, match="not 1-D"):
        read_surface(out)
