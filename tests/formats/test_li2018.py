"""Li et al.'s own files: a surface written the way their plot_surface.py writes it (non-square
grid, meshgrid fill order, accuracies in percent, -1 for uncomputed points) opens in `figure` and
`report` the right way round, and their direction files (weights and states order) give the same
surface in `slice --direction file` as this package's own direction file with the same vectors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.formats import li2018


def run_cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def loss_at(x, y):
    return 0.3 + (x - 0.2) ** 2 + 4 * (y + 0.1) ** 2  # not symmetric in x and y: a swap would show


def write_li_surface(path, x, y, *, missing=()):
    """As their crunch(): arrays allocated (len(x), len(y)) with -1, then losses.ravel()[i] filled
    for the i-th point of np.meshgrid(x, y); accuracies in percent."""
    loss = -np.ones((len(x), len(y)))
    acc = -np.ones((len(x), len(y)))
    xm, ym = np.meshgrid(x, y)
    for i, (a, b) in enumerate(zip(xm.ravel(), ym.ravel())):
        if i in missing:
            continue
        loss.ravel()[i] = loss_at(a, b)
        acc.ravel()[i] = 100.0 * (0.9 - 0.1 * loss_at(a, b))
    with h5py.File(path, "w") as f:
        f["dir_file"] = "model_300.t7_weights_xignore=biasbn_xnorm=filter.h5"
        f["xcoordinates"], f["ycoordinates"] = x, y
        f["train_loss"], f["train_acc"] = loss, acc
        f["test_loss"], f["test_acc"] = loss + 0.05, acc - 2.0


def test_li_surface_reads_right_way_round(tmp_path):
    from landscape.report.slices import read_slice_h5

    x, y = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3)
    path = tmp_path / "li_surface.h5"
    write_li_surface(path, x, y, missing=(14,))  # the last point (x[4], y[2]) not computed yet
    data = read_slice_h5(path)
    X, Y = np.meshgrid(x, y, indexing="ij")
    expect = loss_at(X, Y)
    expect[4, 2] = np.nan
    assert data.values["train_loss"].shape == (5, 3)
    np.testing.assert_allclose(data.values["train_loss"], expect, rtol=1e-15)
    np.testing.assert_allclose(data.values["train_acc"], 0.9 - 0.1 * expect, rtol=1e-12)
    np.testing.assert_allclose(data.values["test_acc"], 0.9 - 0.1 * expect - 0.02, rtol=1e-12)
    assert data.computed.sum() == 14 and not data.computed[4, 2]
    assert data.attrs["format"] == "li2018"
    notes = " ".join(data.attrs["read_notes"])
    assert "Li et al. (2018) surface file" in notes and "converted from percent" in notes and "1 of 15" in notes


def test_li_surface_in_figure_and_report(tmp_path):
    from landscape.report import build_report
    from landscape.report.common import TextBlock

    x, y = np.linspace(-1, 1, 6), np.linspace(-0.5, 0.5, 4)
    path = tmp_path / "li.h5"
    write_li_surface(path, x, y)
    out = run_cli("figure", path, "--linear", "--levels", "5", "--out", tmp_path / "li.png")
    assert "read as a Li et al. (2018) surface file" in out and "converted from percent" in out
    from landscape.report.figures import FigureOptions, render_figure

    res = render_figure([str(path)], str(tmp_path / "li.svg"), options=FigureOptions(linear=True, levels=5))
    X, Y = np.meshgrid(x, y, indexing="ij")
    lo = min(loss_at(X, Y).min(), loss_at(X, Y).min() + 0.05)
    hi = loss_at(X, Y).max() + 0.05
    np.testing.assert_allclose([res.levels[0], res.levels[-1]], [lo, hi], rtol=1e-12)

    rep = build_report([str(path)])
    (sec,) = rep.sections
    text = " ".join(line for b in sec.blocks if isinstance(b, TextBlock) for line in b.lines)
    assert "Li et al. (2018) surface file" in text
    contour = next(b.figure for b in sec.figures if b.name == "contour-loss")
    z = np.array(contour.data[0].z, dtype=float)  # plotly rows are y: z[iy][ix]
    np.testing.assert_allclose(z, loss_at(X, Y).T, rtol=1e-12)
    heat = next(b.figure for b in sec.figures if b.name == "heatmap-acc")
    acc = np.array(heat.data[0].z, dtype=float)
    assert np.nanmax(acc) <= 1.0


def test_li_surface_to_vtp_and_1d_files(tmp_path):
    from landscape.report.slices import read_slice_h5
    from landscape.report.vtk import read_vtp

    x, y = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)
    path = tmp_path / "li.h5"
    write_li_surface(path, x, y)
    out = run_cli("export-vtk", path, "--out", tmp_path / "li.vtp", "--quantity", "test_acc")
    assert "read as a Li et al. (2018) surface file" in out and "12 points, 6 quadrilaterals" in out
    v = read_vtp(str(tmp_path / "li.vtp"))
    X, Y = np.meshgrid(x, y, indexing="ij")
    np.testing.assert_allclose(v.points[:, 2], (0.9 - 0.1 * loss_at(X, Y) - 0.02).ravel(), rtol=1e-12)
    np.testing.assert_array_equal(v.points[:, :2], np.c_[X.ravel(), Y.ravel()])

    one = tmp_path / "li_1d.h5"
    with h5py.File(one, "w") as f:  # their 1-D files: xcoordinates only, -1 where not computed
        f["xcoordinates"] = x
        f["train_loss"] = np.array([0.5, 0.25, -1.0, 0.75])
        f["train_acc"] = np.array([80.0, 90.0, -1.0, 70.0])
    data = read_slice_h5(one)
    assert data.ndim == 1 and data.attrs["format"] == "li2018"
    np.testing.assert_array_equal(data.values["train_acc"], [0.8, 0.9, np.nan, 0.7])
    assert data.computed.tolist() == [True, True, False, True]


def test_our_own_files_are_not_taken_for_li(tmp_path):
    path = tmp_path / "ours.h5"
    with h5py.File(path, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = np.zeros(3), np.zeros(2)
        f["train_loss"], f["computed"] = np.ones((3, 2)), np.ones((3, 2), bool)
        f.attrs["format"] = "landscape-surface-1"
    with h5py.File(path, "r") as f:
        assert not li2018.is_li_surface(tuple(f.keys()), dict(f.attrs))


def test_direction_mapping_checks_count_and_shapes():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    params = [(n, tuple(p.shape)) for n, p in net.named_parameters()]
    states = [(n, tuple(t.shape)) for n, t in net.state_dict().items()]
    weights = [np.random.randn(*s) for _, s in params]
    named, kind = li2018.map_direction_tensors(weights, params=params, states=states)
    assert kind == "weights" and list(named) == [n for n, _ in params]
    st = [np.zeros(s, dtype=np.int64) if n.endswith("num_batches_tracked") else np.random.randn(*s)
          for n, s in states]
    named, kind = li2018.map_direction_tensors(st, params=params, states=states)
    assert kind == "states" and "1.running_mean" in named and "1.num_batches_tracked" not in named
    np.testing.assert_array_equal(named["2.weight"], st[-2])
    bad = list(weights)
    bad[0] = np.zeros((4, 4))
    with pytest.raises(LandscapeError, match=r"tensor 0 has shape \(4, 4\), but 0.weight"):
        li2018.map_direction_tensors(bad, params=params, states=states)
    with pytest.raises(LandscapeError, match="5 tensors, the model has 6 parameters or 9 state_dict entries"):
        li2018.map_direction_tensors(weights[:5], params=params, states=states)


@pytest.fixture(scope="module")
def bn_run(tmp_path_factory, one_thread):
    d = tmp_path_factory.mktemp("li_dirs")
    run_cli("train", "--model", "cnn:bn=true", "--width", "0.25", "--epochs", "1", "--out", d / "run")
    return d


def _li_direction_file(path, rows):
    with h5py.File(path, "w") as f:
        for key, tensors in zip(("xdirection", "ydirection"), rows):
            g = f.create_group(key)
            for i, t in enumerate(tensors):
                g.create_dataset(str(i), data=t)


@pytest.mark.parametrize("layout", ["weights", "states"])
def test_li_direction_file_gives_the_same_surface(bn_run, layout):
    from landscape.session import open_session

    d = bn_run
    ck = d / "run" / "epoch_001.pt"
    common = ("--range", "-1:1:3", "--yrange", "-1:1:2", "--subset", "32", "--norm", "none")
    ours = d / f"ours_{layout}.h5"
    if not (d / "random.h5").exists():
        run_cli("slice", ck, *common, "--out", d / "random.h5")
    # the random slice's directions, as named tensors; buffers move too in the states layout
    model = open_session(str(ck), subset=32).model
    with h5py.File(d / "random.h5", "r") as f:
        rows = [{n: np.asarray(f["directions"][str(i)][n]) for n in f["directions"][str(i)]} for i in range(2)]
    sd = model.state_dict()
    if layout == "states":
        for r in rows:
            for n, t in sd.items():
                if n not in r and t.is_floating_point():
                    r[n] = 0.01 * np.random.default_rng(0).standard_normal(tuple(t.shape))
        li_rows = [[r[n] if n in r else np.zeros(tuple(t.shape), dtype=np.int64) for n, t in sd.items()] for r in rows]
    else:
        li_rows = [[r[n] for n, _ in model.named_parameters()] for r in rows]
    with h5py.File(ours, "w") as f:  # this package's layout with the same vectors
        for i, r in enumerate(rows):
            g = f.create_group(f"directions/{i}")
            for n, t in r.items():
                g[n] = t
    li_file = d / f"li_{layout}.h5"
    _li_direction_file(li_file, li_rows)
    a = run_cli("slice", ck, *common, "--direction", "file", "--direction-file", ours, "--out", d / f"a_{layout}.h5")
    b = run_cli("slice", ck, *common, "--direction", "file", "--direction-file", li_file, "--out", d / f"b_{layout}.h5")
    assert "Li et al." not in a
    assert f"read as a Li et al. (2018) direction file ({layout} order)" in b
    with h5py.File(d / f"a_{layout}.h5", "r") as fa, h5py.File(d / f"b_{layout}.h5", "r") as fb:
        for q in ("train_loss", "test_loss", "train_acc"):
            np.testing.assert_array_equal(np.asarray(fa[q]), np.asarray(fb[q]))
        if layout == "weights":
            with h5py.File(d / "random.h5", "r") as fr:
                np.testing.assert_allclose(np.asarray(fb["train_loss"]), np.asarray(fr["train_loss"]), rtol=1e-6)
