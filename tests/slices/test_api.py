"""Loss slices through their entry points (landscape.slices.api and the `slice`/`interpolate`
commands): centre and corners against independent evaluations, interpolation endpoints, planes
through checkpoints, PCA trajectories, the HDF5 layout, seeds, bit-identical files, bad input.
(The store itself: tests/slices/test_store.py.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape.directions import filter_norms, load_point, plane_directions
from landscape.errors import LandscapeError
from landscape.session import open_session
from landscape.slices import PointEvaluator, read_surface
from tests.slices.commands import digits_slice, one_line_error, run


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _theta_from_h5(f, group: str, space) -> torch.Tensor:
    g = f["directions"][group]
    return space.flatten({n: torch.from_numpy(np.asarray(g[n])).double() for n in space.names if n in g})


def test_centre_corners_layout_and_stored_directions(digits_run, tmp_path):
    ck = digits_run / "epoch_003.pt"
    out = tmp_path / "s.h5"
    res = run("slice", ck, "--range", "-1:1:5", "--yrange", "-0.5:0.5:3", "--seed", "4", "--out", out,
              "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    s = open_session(str(ck))
    with h5py.File(out, "r") as f:
        x, y = np.asarray(f["xcoordinates"]), np.asarray(f["ycoordinates"])
        assert x.tolist() == [-1, -0.5, 0, 0.5, 1] and y.tolist() == [-0.5, 0, 0.5]
        for m in ("train_loss", "train_acc", "test_loss", "test_acc", "computed"):
            assert f[m].shape == (5, 3), m
        assert np.asarray(f["computed"]).all()
        assert f.attrs["axis_order"].startswith("[ix, iy]")
        assert f.attrs["checkpoint_sha256"] == sha256(ck)
        assert f.attrs["checkpoint"] == str(ck) and f.attrs["seed"] == 4 and f.attrs["norm"] == "filter"
        assert f.attrs["loss"] == "ce" and f.attrs["data"] == "digits" and f.attrs["landscape_version"]
        tl, vl = np.asarray(f["train_loss"]), np.asarray(f["test_loss"])
        # centre = the checkpoint's own loss and accuracy
        tr, te = s.train.evaluate(), s.test.evaluate()
        assert tl[2, 1] == pytest.approx(tr.loss, rel=1e-5)
        assert f["train_acc"][2, 1] == pytest.approx(tr.acc)
        assert vl[2, 1] == pytest.approx(te.loss, rel=1e-5)
        # stored directions: the parameter shapes, the filter norms of the weights, zero biases/BN
        shapes = dict(zip(s.space.names, s.space.shapes))
        w = filter_norms(s.train.theta0.double(), s.space)
        for i in ("0", "1"):
            for name, kind in zip(s.space.names, s.space.kinds):
                arr = torch.from_numpy(np.asarray(f["directions"][i][name])).double()
                assert tuple(arr.shape) == tuple(shapes[name])
                if kind == "weight":
                    got = arr.reshape(arr.shape[0], -1).norm(dim=1)
                    assert torch.allclose(got, w[name], rtol=1e-5), name
                else:
                    assert float(arr.abs().max()) == 0.0
        d0, d1 = _theta_from_h5(f, "0", s.space), _theta_from_h5(f, "1", s.space)
    # corners recomputed independently (float64 weights, default memory layout, fresh session)
    theta0 = s.train.theta0.double()
    for ix, iy in ((0, 0), (0, 2), (4, 0), (4, 2)):
        theta = (theta0 + x[ix] * d0 + y[iy] * d1).float()
        assert tl[ix, iy] == pytest.approx(s.train.evaluate(theta).loss, rel=1e-4), (ix, iy)
        assert vl[ix, iy] == pytest.approx(s.test.evaluate(theta).loss, rel=1e-4), (ix, iy)
    assert not np.allclose(tl[0, 0], tl[4, 2])
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["centre"]["train_loss"] == pytest.approx(tr.loss, rel=1e-5)
    assert np.array(data["train_loss"]).shape == (5, 3)


def test_interpolation_endpoints_equal_each_checkpoint(digits_run, tmp_path):
    a, b = digits_run / "epoch_000.pt", digits_run / "epoch_003.pt"
    res = run("interpolate", a, b, "--range", "-0.5:1.5:5", "--json", tmp_path / "i.json", "--out", tmp_path / "i.h5")
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "i.json").read_text())
    assert {"alphas", "train_loss", "train_acc", "test_loss", "test_acc"} <= set(d)
    assert d["alphas"] == [-0.5, 0.0, 0.5, 1.0, 1.5]
    for i, path in ((1, a), (3, b)):
        s = open_session(str(path))
        tr, te = s.train.evaluate(), s.test.evaluate()
        assert d["train_loss"][i] == pytest.approx(tr.loss, rel=1e-5)
        assert d["train_acc"][i] == pytest.approx(tr.acc)
        assert d["test_loss"][i] == pytest.approx(te.loss, rel=1e-5)
        assert d["test_acc"][i] == pytest.approx(te.acc)
    with h5py.File(tmp_path / "i.h5", "r") as f:
        assert f.attrs["direction"] == "interpolate" and f["train_loss"].shape == (5,)
        assert "ycoordinates" not in f


def test_plane_through_three_checkpoints(digits_run, tmp_path):
    paths = [str(digits_run / f"epoch_00{i}.pt") for i in (0, 1, 3)]
    s = open_session(paths[0], subset=150)
    obj = s.train
    bufs = {n: t for n, t in obj.model.named_buffers() if t.is_floating_point()}
    pts = [load_point(p, s.model, s.space, device=obj.theta0.device, dtype=obj.theta0.dtype,
                      buffer_names=list(bufs)) for p in paths]
    d = plane_directions(*pts)
    ev = PointEvaluator([obj], obj.theta0, d, centre_buffers=bufs)
    for p, c in zip(paths, d.info["checkpoints"]):
        own = open_session(p, subset=150).train.evaluate()
        got = ev.point(c["coordinates"])
        assert got[0] == pytest.approx(own.loss, rel=1e-5) and got[1] == pytest.approx(own.acc)
    out = tmp_path / "plane.h5"
    res = run("slice", "--plane", *paths, "--range", "0:1:2", "--yrange", "0:1:2", "--subset", 150,
              "--no-test", "--out", out)
    assert res.exit_code == 0, res.output
    with h5py.File(out, "r") as f:
        assert np.asarray(f["checkpoint_coordinates"]).shape == (3, 2) and "test_loss" not in f
        tl = np.asarray(f["train_loss"])
    assert tl[0, 0] == pytest.approx(open_session(paths[0], subset=150).train.evaluate().loss, rel=1e-5)
    assert tl[1, 0] == pytest.approx(open_session(paths[1], subset=150).train.evaluate().loss, rel=1e-5)


def test_pca_trajectory_slice(digits_run, tmp_path):
    out = tmp_path / "pca.h5"
    res = run("slice", "--direction", "pca", "--trajectory", digits_run, "--range", "auto:3", "--subset", 100,
              "--no-test", "--out", out, "--json", "-")
    assert res.exit_code == 0, res.output
    with h5py.File(out, "r") as f:
        traj = np.asarray(f["trajectory"])
        ratio = np.asarray(f.attrs["explained_variance_ratio"])
        x, y = np.asarray(f["xcoordinates"]), np.asarray(f["ycoordinates"])
        assert f.attrs["checkpoint"].endswith("epoch_003.pt")
    assert traj.shape == (4, 2) and np.allclose(traj[-1], 0.0)  # the centre is the last checkpoint
    assert 0 < ratio[1] <= ratio[0] <= 1 and ratio.sum() <= 1 + 1e-12
    assert x.min() <= traj[:, 0].min() and x.max() >= traj[:, 0].max()
    assert y.min() <= traj[:, 1].min() and y.max() >= traj[:, 1].max()


def test_mismatched_file_refused_seeds_reproduce_and_file_directions(digits_run, tmp_path):
    ck = digits_run / "epoch_003.pt"
    base = ["slice", ck, "--dirs", "1", "--range", "-1:1:3", "--subset", 100]
    a, b, c = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "c.h5"
    assert run(*base, "--seed", 7, "--out", a).exit_code == 0
    assert run(*base, "--seed", 7, "--out", b).exit_code == 0
    sa, sb = read_surface(a), read_surface(b)
    assert np.array_equal(sa.values["train_loss"], sb.values["train_loss"])
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for n in fa["directions/0"]:
            assert np.array_equal(fa["directions/0"][n], fb["directions/0"][n])
    before = a.read_bytes()
    res = run(*base, "--seed", 8, "--out", a)
    assert res.exit_code == 1 and "other settings" in res.output and "--overwrite" in res.output
    assert a.read_bytes() == before  # untouched
    res = run(*base[:2], "--dirs", "1", "--range", "-1:1:3", "--subset", 100, "--seed", 7, "--out", a, "--no-test")
    assert res.exit_code == 1  # other metrics: refused too
    assert run(*base, "--seed", 8, "--out", a, "--overwrite").exit_code == 0
    assert not np.array_equal(read_surface(a).values["train_loss"], sb.values["train_loss"])
    # the directions of b.h5 read back as a direction file give b's surface
    res = run(*base, "--seed", 7, "--direction", "file", "--direction-file", b, "--out", c)
    assert res.exit_code == 0, res.output
    assert np.allclose(read_surface(c).values["train_loss"], sb.values["train_loss"], rtol=1e-6)


@pytest.mark.parametrize("rng", ["1:-1:5", "-1:1", "a:b:c", "-1:1:1"])
def test_bad_range_is_a_one_line_error(digits_run, rng, tmp_path):
    res = run("slice", digits_run / "epoch_003.pt", "--range", rng, "--out", tmp_path / "x.h5")
    assert res.exit_code != 0
    assert res.output.strip().startswith("error:") and res.output.strip().count("\n") == 0
    assert not (tmp_path / "x.h5").exists()


# ------------------------------------------------------------------ the package and its config
def test_public_names_and_config_equal_keywords(tmp_path):
    import landscape.slices as sl
    from landscape.slices import SliceConfig, slice_checkpoint  # noqa: F401

    for name in ("Grid", "PointEvaluator", "SurfaceStore", "Surface", "Interpolation", "EvalConfig",
                 "compute_surface", "read_surface", "interpolate_checkpoints", "choose_eval_config",
                 "prepare_objectives", "settings_key", "run_points", "compute_points"):
        assert hasattr(sl, name), name
    from landscape.directions import PcaSource, PlaneSource, RandomSource

    cfg = SliceConfig(dirs=1, xrange=(-1.0, 1.0, 3))
    assert isinstance(sl.source_for(cfg, seed=3, trust=False), RandomSource)
    assert sl.source_for(cfg, seed=3, trust=False).norm == "filter"
    plane = sl.source_for(SliceConfig(plane=("a", "b", "c")), seed=0, trust=False)
    assert isinstance(plane, PlaneSource) and plane.eager and plane.centre() == "a"
    assert PcaSource(files=("e5.pt", "e9.pt")).centre() == "e9.pt" and PcaSource().centre() is None
    with pytest.raises(LandscapeError, match="^dirs must be 1 or 2$"):
        sl.source_for(SliceConfig(dirs=3), seed=0, trust=False)


# ------------------------------------------------------------------ determinism (#19 item 8)
def test_same_command_gives_bit_identical_files(digits_run, tmp_path):
    ck = digits_run / "epoch_003.pt"
    args = ["slice", ck, "--range", "-1:1:3", "--yrange", "-1:1:3", "--subset", 90, "--seed", 1]
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert run(*args, "--out", a).exit_code == 0
    assert run(*args, "--out", b).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    with h5py.File(a, "r") as f:
        assert int(f.attrs["eval_batch_size"]) == 90  # min(n, 256): a fixed rule, recorded
        assert f.attrs["eval_batch_rule"].startswith("fixed")
        assert "created" not in f.attrs
    res = run(*args, "--batch-size", 32, "--out", tmp_path / "c.h5")
    assert res.exit_code == 0
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert int(f.attrs["eval_batch_size"]) == 32 and f.attrs["eval_batch_rule"] == "given"


# ------------------------------------------------------------------ refused input (#19 items 6, 9, 10)
@pytest.mark.parametrize("size", ["0", "-3"])
def test_nonpositive_batch_size_refused(digits_run, tmp_path, size):
    res = digits_slice(digits_run, tmp_path / "s.h5", "--batch-size", size)
    one_line_error(res, "--batch-size")
    assert not (tmp_path / "s.h5").exists()
    res = run("interpolate", digits_run / "epoch_000.pt", digits_run / "epoch_003.pt", "--range", "0:1:2",
              "--batch-size", size, "--subset", 60)
    one_line_error(res, "--batch-size")


def test_interpolate_refuses_nan_weights_naming_the_tensor(digits_run, tmp_path):
    d = torch.load(digits_run / "epoch_003.pt", weights_only=True)
    name = next(n for n, t in d["model_state_dict"].items() if t.is_floating_point() and t.dim() >= 2)
    d["model_state_dict"][name][0].fill_(float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(d, bad)
    res = run("interpolate", digits_run / "epoch_000.pt", bad, "--range", "0:1:2", "--subset", 60)
    one_line_error(res, name, "non-finite", "nan.pt")


def test_out_in_a_missing_folder_is_created(digits_run, tmp_path):
    out = tmp_path / "new" / "deeper" / "s.h5"
    res = digits_slice(digits_run, out)
    assert res.exit_code == 0, res.output
    assert read_surface(out).computed.all()


class _Payload:
    def __reduce__(self):
        return (print, ("payload ran",))


def test_direction_file_with_python_objects_names_the_flag(digits_run, tmp_path):
    bad = tmp_path / "dirs.pt"
    torch.save({"features.0.weight": _Payload()}, bad)
    res = digits_slice(digits_run, tmp_path / "s.h5", "--direction", "file", "--direction-file", bad)
    one_line_error(res, "--trust-checkpoint", "dirs.pt")
    assert "payload ran" not in res.output
