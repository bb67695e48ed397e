"""The report on real results made by the project's own commands from a real run (digits_run):
slices (h5 file and result object), an interpolation, a PCA slice with its trajectory, and the
spike probe. The figures must show exactly the numbers the producers stored."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from landscape.report import build_report, write_html
from landscape.results import jsonable
from tests.report.pages import fig_named, figures_of, parse_page


@pytest.fixture(scope="module")
def produced(digits_run, tmp_path_factory):
    from landscape.probes.spikes import SpikeProbeConfig, probe_spikes
    from landscape.slices import interpolate_checkpoints, slice_checkpoint

    d = tmp_path_factory.mktemp("produced")
    last, first = str(digits_run / "epoch_003.pt"), str(digits_run / "epoch_000.pt")
    common = {"subset": 64, "seed": 0, "eval_batch_size": 64}
    surface = slice_checkpoint(last, dirs=2, xrange=(-1.0, 1.0, 5), yrange=(-0.5, 0.5, 4),
                               out=str(d / "plane.h5"), **common)
    interp = interpolate_checkpoints(first, last, alphas=(-0.5, 1.5, 5), out=str(d / "interp.h5"), **common)
    pca = slice_checkpoint(None, dirs=2, direction="pca", trajectory=(str(digits_run),), xrange=("auto", 4),
                           yrange=("auto", 4), test=False, out=str(d / "pca.h5"), **common)
    # a smooth run: no events to probe (the probed-checkpoint layout is covered in tests/report/test_html.py)
    spikes = probe_spikes(digits_run, cfg=SpikeProbeConfig(hessian=False), session_kwargs={"subset": 64, "seed": 0})
    return {"dir": d, "surface": surface, "interp": interp, "pca": pca, "spikes": spikes, "run": digits_run}


def test_report_of_real_results(produced):
    d = produced["dir"]
    items = [str(d / "plane.h5"), produced["surface"], produced["interp"], str(d / "pca.h5"),
             produced["spikes"], str(produced["run"])]
    out = write_html(items, d / "real.html", title="real results")
    figs = figures_of(parse_page(out.read_text(encoding="utf-8")))
    kinds = [s.kind for s in build_report(items).sections]
    assert kinds == ["slice-2d", "slice-2d", "interpolation", "slice-2d", "probe-spikes", "run"]

    with h5py.File(d / "plane.h5", "r") as f:
        stored = np.asarray(f["test_loss"])  # [ix, iy]
    for name in ("/plane.h5: loss surface", "plane.h5): loss surface"):  # the file, the result object
        surf = fig_named(figs, name)
        z_test = np.array(surf["data"][1]["customdata"], dtype=float)  # stored values, also under log10
        np.testing.assert_allclose(z_test, stored.T, rtol=1e-12)
        assert surf["data"][2]["x"] == [0.0] and surf["data"][2]["y"] == [0.0]  # the checkpoint

    interp = fig_named(figs, "Interpolation")
    ys = interp["data"][0]["y"]
    assert len(ys) == 5 and ys == pytest.approx(produced["interp"].surface.values["train_loss"].tolist())
    assert sorted({s["x0"] for s in interp["layout"]["shapes"]}) == [0.0, 1.0]

    pca = fig_named(figs, "pca.h5: loss contours")
    traj = next(t for t in pca["data"] if t["name"] == "trajectory (projected)")
    with h5py.File(d / "pca.h5", "r") as f:
        np.testing.assert_allclose(np.c_[traj["x"], traj["y"]], np.asarray(f["trajectory"]))
        ev = np.asarray(f.attrs["explained_variance_ratio"], dtype=float)
    assert traj["text"][-1].endswith("epoch_003.pt")
    assert pca["layout"]["xaxis"]["title"]["text"] == f"PC1 ({100 * ev[0]:.1f}%)"

    report = jsonable(produced["spikes"])
    tl = fig_named(figs, "timeline")
    test = next(t for t in tl["data"] if t.get("name") == "test loss")
    assert test["y"] == pytest.approx(report["log"]["test_loss"])
    assert report["spikes"] == [] and "no spikes detected" in out.read_text(encoding="utf-8")


def test_analysis_command_html_option(produced, tmp_path):
    """`landscape interpolate --html` goes through write_html and writes a page with its figure."""
    from click.testing import CliRunner

    from landscape.cli import main

    run = produced["run"]
    res = CliRunner().invoke(main, ["interpolate", str(run / "epoch_000.pt"), str(run / "epoch_003.pt"),
                                    "--range", "0:1:3", "--subset", "32", "--json", str(tmp_path / "i.json"),
                                    "--html", str(tmp_path / "i.html")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    figs = figures_of(parse_page((tmp_path / "i.html").read_text(encoding="utf-8")))
    stored = json.loads((tmp_path / "i.json").read_text())
    assert figs[0]["data"][0]["y"] == pytest.approx([float(v) for v in stored["train_loss"]])
