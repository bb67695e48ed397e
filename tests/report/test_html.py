"""The HTML report (landscape.report.html and the `report` command): structure, offline-ness,
traces, escaping, type detection, CLI.

Inputs are synthesised in the documented layouts by tests/report/pages.py (slice HDF5 of issue 4, the
JSON keys of issues 3, 5 and 6), plus a real run made with ``landscape train`` (the ``digits_run`` fixture).
"""

import json
import math

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from landscape.errors import LandscapeError
from landscape.report import build_report, write_html
from tests.report.pages import (
    fig_named,
    figures_of,
    hessian_json,
    parse_page,
    sharpness_json,
    slice_arrays,
    title_of,
    write_inputs,
    write_slice_1d,
    write_slice_2d,
)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    paths = write_inputs(d)
    out = write_html([str(p) for p in paths.values()], d / "report.html", title="all inputs")
    text = out.read_text(encoding="utf-8")
    return {"text": text, "parsed": parse_page(text), "paths": paths, "dir": d}


# ---------------------------------------------------------------------------------------------
# tests


def test_page_is_offline_and_embeds_plotly_once(page):
    text, p = page["text"], page["parsed"]
    assert text.startswith("<!DOCTYPE html>")
    for tag, attrs in p.tags:
        assert "src" not in attrs, f"<{tag}> loads {attrs['src']}"
        if "href" in attrs:
            assert attrs["href"].startswith("#"), f"<{tag}> links out to {attrs['href']}"
        assert tag not in ("link", "iframe", "img", "object", "embed"), f"unexpected <{tag}>"
    css = text.split("<style>")[1].split("</style>")[0]
    assert "@import" not in css and "url(" not in css and "@font-face" not in css
    big = [s for s in p.scripts if len(s["text"]) > 1_000_000]
    assert len(big) == 1, "plotly.js must be inlined exactly once"
    assert text.count("plotly.js v") == 1
    assert text.count("function(root, factory)") <= 1
    # one JSON block per figure, drawn by one render script
    figs = figures_of(p)
    n_div = sum(1 for tag, a in p.tags if tag == "div" and a.get("class") == "plot")
    assert len(figs) == n_div == 21  # 4 + 1 + 1 + 4 + 1 + 3 + 3 + 2 + 2, see the builders
    templates = json.loads(next(s["text"] for s in p.scripts if s["attrs"].get("id") == "landscape-templates"))
    assert len(templates) == 1 and all(f.get("template") == 0 for f in figs)
    assert all("template" not in f["layout"] for f in figs)


def test_types_detected_from_content(page):
    sections = {s.source: s.kind for s in build_report([str(p) for p in page["paths"].values()]).sections}
    kinds = {k: sections[str(p)] for k, p in page["paths"].items()}
    assert kinds == {"slice2d": "slice-2d", "slice1d": "slice-1d", "interp": "interpolation",
                     "hessian": "hessian", "sharpness": "sharpness", "sharpness_run": "sharpness",
                     "first_step": "probe-first-step", "spikes": "probe-spikes", "run": "run"}


def test_slice_2d_traces_and_log_toggle(page):
    figs = figures_of(page["parsed"])
    ref = slice_arrays()
    x, y, train, test = ref
    surf = fig_named(figs, "input_slice2d.dat: loss surface")
    types = [t["type"] for t in surf["data"]]
    assert types == ["surface", "surface", "scatter3d", "scatter3d"]
    assert surf["data"][0]["coloraxis"] == surf["data"][1]["coloraxis"] == "coloraxis"  # shared scale
    z = np.array(surf["data"][0]["z"], dtype=float)  # plotly: z[iy][ix]; None (gap) -> nan
    assert z.shape == (len(y), len(x))
    assert np.isnan(z[-1, -1]) and np.isnan(z[-2, -1])  # uncomputed points are gaps, not zeros
    np.testing.assert_allclose(z[:-2, :], train.T[:-2, :])
    zt = np.array(surf["data"][1]["z"], dtype=float)
    np.testing.assert_allclose(zt[0, :], test.T[0, :])
    # the checkpoint marker sits at the origin at the loss there (grid point nearest (0, 0))
    ix, iy = np.argmin(np.abs(x)), np.argmin(np.abs(y))
    assert surf["data"][2]["x"] == [0.0] and surf["data"][2]["z"][0] == pytest.approx(train[ix, iy])
    cmin, cmax = surf["layout"]["coloraxis"]["cmin"], surf["layout"]["coloraxis"]["cmax"]
    assert cmin == pytest.approx(min(train.min(), test[~np.isnan(test)].min()))
    # log10 button swaps z for log10(z) in every panel and the marker
    menu = surf["layout"]["updatemenus"][0]
    assert [b["label"] for b in menu["buttons"]] == ["linear", "log10"]
    data_upd, layout_upd, idx = menu["buttons"][1]["args"]
    assert idx == [0, 1, 2, 3]
    logz = np.array(data_upd["z"][0], dtype=float)
    np.testing.assert_allclose(logz[:-2], np.log10(train.T[:-2]))
    assert layout_upd["coloraxis.cmax"] == pytest.approx(np.log10(cmax))
    contour = fig_named(figs, "input_slice2d.dat: loss contours")
    assert [t["type"] for t in contour["data"]] == ["contour", "contour", "scatter", "scatter"]
    c0, c1 = contour["data"][0]["contours"], contour["data"][1]["contours"]
    assert c0 == c1  # same levels for train and test
    heat = fig_named(figs, "input_slice2d.dat: loss heatmap")
    assert [t["type"] for t in heat["data"]][:2] == ["heatmap", "heatmap"]
    acc = fig_named(figs, "accuracy heatmap")
    assert [t["name"] for t in acc["data"][:2]] == ["train acc", "test acc"]


def test_wide_loss_range_starts_on_log_scale(tmp_path):
    x, y, train, test = slice_arrays()
    big = {"xcoordinates": x.tolist(), "ycoordinates": y.tolist(), "train_loss": (train * 0 + 0.01 + 50 * train ** 2).tolist()}
    fig = build_report(big).sections[0].figures[0].figure
    assert fig.layout.updatemenus[0].active == 1
    z = np.array(fig.data[0].z, dtype=float)
    np.testing.assert_allclose(z, np.log10(0.01 + 50 * train.T ** 2))
    assert fig.layout.coloraxis.cmax == pytest.approx(np.log10(np.max(0.01 + 50 * train ** 2)))
    linear = fig.layout.updatemenus[0].buttons[0].args[0]["z"][0]
    np.testing.assert_allclose(np.array(linear, dtype=float), 0.01 + 50 * train.T ** 2)


def test_transposed_axis_order_attribute_is_honoured(tmp_path):
    write_slice_2d(tmp_path / "t.h5", transposed=True)
    ref = write_slice_2d(tmp_path / "n.h5")
    a = build_report(str(tmp_path / "t.h5")).sections[0].figures[0].figure
    b = build_report(str(tmp_path / "n.h5")).sections[0].figures[0].figure
    za, zb = np.array(a.data[0].z, dtype=float), np.array(b.data[0].z, dtype=float)
    np.testing.assert_array_equal(np.isnan(za), np.isnan(zb))
    np.testing.assert_allclose(za[~np.isnan(za)], zb[~np.isnan(zb)])
    assert za.shape == (len(ref["y"]), len(ref["x"]))


def test_line_slices_and_interpolation(page):
    figs = figures_of(page["parsed"])
    one = fig_named(figs, "1-D slice")
    names = [t["name"] for t in one["data"]]
    assert names == ["train loss", "test loss", "train acc", "test acc"]
    assert one["data"][0]["y"][10] == pytest.approx(0.1)
    interp = fig_named(figs, "Interpolation")
    assert interp["data"][0]["x"][0] == pytest.approx(-0.5)
    assert interp["data"][3]["y"][-1] is None  # "NaN" in the JSON result -> a gap
    shapes = interp["layout"]["shapes"]
    assert sorted({s["x0"] for s in shapes}) == [0.0, 1.0]  # both end points marked
    notes = [a["text"] for a in interp["layout"]["annotations"]]
    assert any("A: a/epoch_010.pt" in t for t in notes) and any("B: b/epoch_010.pt" in t for t in notes)


def test_hessian_figures(page):
    figs = figures_of(page["parsed"])
    h = hessian_json()
    eig = fig_named(figs, "top eigenvalues")
    bars = [t for t in eig["data"] if t["type"] == "bar"]
    assert bars[0]["y"] == h["eigenvalues"] and bars[0]["error_y"]["array"] == h["residuals"]
    assert bars[1]["y"] == [h["smallest_eigenvalue"]]
    assert bars[2]["y"] == h["preconditioned_eigenvalues"]
    gauge = fig_named(figs, "input_hessian.dat: stability")["data"][0]
    assert gauge["type"] == "indicator"
    assert gauge["value"] == pytest.approx(0.05 * 41.5)
    assert gauge["gauge"]["threshold"]["value"] == pytest.approx(0.05 * 76.0)  # 2 + 2β at β = 0.9
    assert "(2+2β)/η on H" in gauge["title"]["text"]
    assert ">70.5 ± 2.5<" in page["text"] and ">0.9276<" in page["text"]  # batch sharpness and its ratio
    dens = fig_named(figs, "spectral density")
    assert dens["data"][0]["x"] == h["density"]["grid"] and dens["layout"]["yaxis"]["type"] == "log"
    assert dens["layout"]["yaxis"]["range"] == pytest.approx([np.log10(5.0) - 6, np.log10(5.0) + 0.3])
    per = fig_named(figs, "per-layer")
    assert per["data"][0]["y"] == ["conv1.weight", "fc.weight"] and per["data"][0]["x"] == [12.5, 33.0]


def test_sharpness_table_and_figures(page):
    text, figs = page["text"], figures_of(page["parsed"])
    assert "gap (test − train) loss" in text
    assert ">0.39<" in text and ">0.23<" in text  # 0.40 − 0.01 and 0.25 − 0.02
    assert "ε-sharpness (Keskar)" in text and ">0.04 ± 0.004<" in text
    rel = fig_named(figs, "input_sharpness.dat: measures side by side")
    assert [t["name"] for t in rel["data"]] == ["adam/epoch_000.pt", "sgd/epoch_000.pt"]
    lam_idx = rel["data"][0]["x"].index("λ_max")
    assert rel["data"][0]["y"][lam_idx] == pytest.approx(1.0) and rel["data"][1]["y"][lam_idx] == pytest.approx(0.2)
    eos = fig_named(figs, "input_sharpness_run.dat: sharpness against the stability threshold by epoch")
    assert eos["data"][0]["name"] == "λ₁(P⁻¹H)"  # Adam: the preconditioned sharpness
    assert eos["data"][0]["y"] == [500.0, 5000.0, 20000.0, 45000.0]
    assert eos["data"][-1]["y"] == [38000.0] * 4


def test_probe_figures(page):
    text, figs = page["text"], figures_of(page["parsed"])
    fs = fig_named(figs, "lr 0.1")
    bars = [t for t in fs["data"] if t["type"] == "bar"]
    assert [b["name"] for b in bars] == ["Adam step", "SGD step"]
    assert bars[0]["y"] == [0.35, 0.7, 3.5]
    curves = [t for t in fs["data"] if t["type"] == "scatter"]
    assert curves[0]["y"] == pytest.approx([48.1, 48.1 * 0.9, 48.1 * 0.8])
    assert "850× SGD" in text
    by_lr = fig_named(figs, "loss after one step by learning rate")
    assert by_lr["data"][0]["x"] == [0.1, 0.001]
    tl = fig_named(figs, "timeline")
    spike = next(t for t in tl["data"] if t.get("name") == "detected spike")
    assert spike["x"] == [12] and spike["y"] == [3.0]
    test = next(t for t in tl["data"] if t.get("name") == "test loss")
    assert len(test["x"]) == 30 and test["y"][12] == 3.0  # the whole log, not only the checkpoints
    ratio = next(t for t in tl["data"] if t.get("name") == "ratio")
    assert ratio["x"] == [11, 12, 13] and ratio["y"] == [0.75, 1.2, 0.825]
    assert any(s.get("type") == "rect" and s["x0"] == 20 for s in tl["layout"]["shapes"])  # oscillation
    assert ("edge_of_stability @ epoch 12: supported — λ_max crosses its threshold "
            "(ratio at 1.2, ratio before 0.75)") in text
    assert "<th>epoch 12 (at event 12)</th>" in text and "<td>lambda max</td><td>30</td><td>48</td><td>33</td>" in text
    sl = fig_named(figs, "along the step and v₁")
    assert len(sl["data"]) == 12  # 2 rows × 3 checkpoints × (train, test)
    mins = sorted({round(s["x0"], 6) for s in sl["layout"]["shapes"]})
    assert mins == [0.5, 0.6, 0.9]  # train minimum, test minima along v₁ and along the step


def test_run_folder_curves_and_edge_of_stability(page):
    figs = figures_of(page["parsed"])
    cur = fig_named(figs, "run_folder: training curves")
    tr = next(t for t in cur["data"] if t["name"] == "train loss")
    assert tr["y"] == pytest.approx([2.0 / (e + 1) for e in range(6)])
    eos = fig_named(figs, "run_folder: λ_max against the stability threshold")
    lam = [3.0, 9.0, 18.0, 21.0, 19.5, 20.5]
    assert [t["name"] for t in eos["data"]] == ["batch sharpness", "λ_max", "stability threshold"]
    assert eos["data"][0]["y"] == [v + 5 for v in lam] and eos["data"][1]["y"] == lam
    assert eos["data"][0]["x"] == [1, 5, 9, 13, 17, 21]  # by step: several rows share an epoch
    assert "the threshold applies to batch sharpness" in page["text"]
    assert "above it at 4 of 6 points" in page["text"]


def test_real_run_folder(digits_run, tmp_path):
    from landscape.train import read_log

    out = write_html(str(digits_run), tmp_path / "run.html")
    figs = figures_of(parse_page(out.read_text(encoding="utf-8")))
    assert len(figs) == 1
    log = read_log(digits_run / "log.csv")
    test = next(t for t in figs[0]["data"] if t["name"] == "test loss")
    assert test["y"] == pytest.approx([r["test_loss"] for r in log])
    text = out.read_text(encoding="utf-8")
    assert "model: " in text and "data: digits" in text  # provenance from the run's checkpoint


def test_provenance_under_each_figure(page):
    text = page["text"]
    n_fig = len(figures_of(page["parsed"]))
    assert text.count('<p class="prov">') >= n_fig
    assert "checkpoint: runs/adam/epoch_010.pt · checkpoint_sha256: abababababababab… · model: cnn" in text
    assert "seed: 7" in text and "landscape_version: 0.1.0" in text


def test_malicious_names_are_escaped(tmp_path):
    evil = '<img src=x onerror=alert(1)>&"\''
    path = tmp_path / f"{evil}.json"
    d = hessian_json()
    d["per_layer"] = {"<b>layer</b>": 1.0}
    d["stability"]["optimizer"] = "<script>alert(2)</script>"
    path.write_text(json.dumps(d))
    out = write_html([str(path)], tmp_path / "evil.html", title="</title><script>alert(3)</script>")
    text = out.read_text(encoding="utf-8")
    p = parse_page(text)
    assert not [t for t, _ in p.tags if t in ("img", "b")]
    assert "<img" not in text and "alert(3)</script>" not in text and "<script>alert" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#x27;.json" in text  # shown, escaped
    n_scripts = sum(1 for t, _ in p.tags if t == "script")
    assert n_scripts == len(figures_of(p)) + 3  # plotly.js, templates, render script
    figs = figures_of(p)
    # inside figures, plotly's pseudo-HTML is escaped too (shown literally, not interpreted)
    assert "&lt;img src=x onerror=alert(1)&gt;" in title_of(figs[0])
    per = fig_named(figs, "per-layer")
    assert per["data"][0]["y"] == ["&lt;b&gt;layer&lt;/b&gt;"]


def test_result_objects_and_dicts(tmp_path):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class FakeResult:
        eigenvalues: tuple
        residuals: tuple

        def to_json(self):
            return {"eigenvalues": list(self.eigenvalues), "residuals": list(self.residuals), "trace": math.nan}

    out = write_html(FakeResult((3.0, 1.0), (1e-4, 1e-4)), tmp_path / "obj.html")
    figs = figures_of(parse_page(out.read_text(encoding="utf-8")))
    assert figs[0]["data"][0]["y"] == [3.0, 1.0]
    rep = build_report([hessian_json(), sharpness_json()], title="t")
    assert [s.kind for s in rep.sections] == ["hessian", "sharpness"]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ('{"foo": 1}', "cannot tell what this result is"),
    ("not json, not hdf5", "neither an HDF5 slice file nor a JSON result"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "input.bin"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LandscapeError, match=message):
        build_report(str(path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LandscapeError, match="not a run folder"):
        build_report(str(tmp_path / "empty"))


def test_cli_report_and_png_skip(tmp_path, monkeypatch):
    import sys

    from landscape.cli import main

    write_slice_1d(tmp_path / "s.h5")
    (tmp_path / "h.json").write_text(json.dumps(hessian_json()))
    monkeypatch.setitem(sys.modules, "kaleido", None)  # as if kaleido were not installed
    res = CliRunner().invoke(main, ["report", str(tmp_path / "s.h5"), str(tmp_path / "h.json"),
                                    "--out", str(tmp_path / "r.html"), "--title", "cli",
                                    "--png-dir", str(tmp_path / "png")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "2 section(s)" in res.output
    assert "skipping PNG export" in res.output and "kaleido" in res.output
    assert (tmp_path / "r.html").stat().st_size > 1_000_000
    res = CliRunner().invoke(main, ["report", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.html")])
    assert res.exit_code == 1 and "no such file" in res.output


def test_sharpness_json_of_landscape_sharpness(tmp_path):
    """The nested layout `landscape sharpness --json` writes: measures as dicts, train/test dicts."""
    def rec(label, eps, train, test, opt):
        return {"checkpoint": f"{label}/epoch_008.pt", "label": f"{label}/epoch_008 ({opt})", "epoch": 8,
                "train": {"loss": train, "acc": 1.0, "n": 256}, "test": {"loss": test, "acc": 0.97, "n": 256},
                "gap": {"loss": test - train, "acc": -0.03}, "optimizer": {"type": opt, "lr": 0.05},
                "eps_sharpness": {"value": eps, "eps": 1e-3}, "average_sharpness": {"value": 1e-4, "stderr": 1e-5},
                "pac_bayes_mag_sigma": {"value": 0.5}, "provenance": {"checkpoint": f"{label}/epoch_008.pt"}}

    d = {"kind": "sharpness", "config": {"eps": 1e-3},
         "checkpoints": [rec("sgd", 8.95, 0.05, 0.085, "sgd"), rec("adam", 11.07, 0.35, 0.353, "adam")]}
    sec = build_report(d).sections[0]
    table = next(b for b in sec.blocks if hasattr(b, "columns"))
    assert table.columns == ("measure", "sgd/epoch_008 (sgd)", "adam/epoch_008 (adam)")
    rows = {r[0]: r[1:] for r in table.rows}
    assert rows["ε-sharpness (Keskar)"] == ("8.95", "11.07")
    assert rows["average (Gaussian)"] == ("0.0001 ± 1e-05", "0.0001 ± 1e-05")
    assert rows["PAC-Bayes σ (magnitude-aware)"] == ("0.5", "0.5")
    assert rows["gap (test − train) loss"] == ("0.035", "0.003")
    assert rows["optimizer"] == ("sgd (lr 0.05)", "adam (lr 0.05)")


def test_crafted_slice_file_declaring_a_huge_dataset_is_refused_unread(tmp_path):
    """A file may declare a dataset of many GiB (chunked, never written): report checks shapes first."""

    from landscape.errors import LandscapeError
    from landscape.report.slices import read_slice_h5

    path = tmp_path / "crafted.h5"
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = np.linspace(-1, 1, 5)
        f["ycoordinates"] = np.linspace(-1, 1, 4)
        f["train_loss"] = np.ones((5, 4))
        f.create_dataset("test_loss", shape=(100_000, 100_000), dtype="f8", chunks=(100, 100))  # 75 GiB
    with pytest.raises(LandscapeError, match="test_loss.*refusing to read"):
        read_slice_h5(path)
    with h5py.File(path, "a") as f:
        del f["test_loss"]
        f.create_dataset("xcoordinates2", data=np.zeros(3))
        del f["xcoordinates"]
        f.create_dataset("xcoordinates", shape=(10**7,), dtype="f8", chunks=(1000,))
    with pytest.raises(LandscapeError, match="coordinates must be 1-D with at most"):
        read_slice_h5(path)


@pytest.mark.parametrize("doc", [
    {"lambda_max": 3.2},
    {"config": {"measures": ["lambda_max"]},
     "checkpoints": [{"checkpoint": "a.pt", "lambda_max": 3.2, "train": {"loss": 0.1}}]},
])
def test_sharpness_json_with_only_lambda_max_opens(doc):
    """A sharpness result of `--measures lambda_max` (older files carry no `kind`) is a sharpness
    section, not 'cannot tell what this result is'; a Hessian result stays a Hessian section."""
    from landscape.report import section_from_mapping

    sec = section_from_mapping(doc, source="s.json", label="s.json")
    assert sec.kind == "sharpness", sec.kind
    from landscape.report.sharpness import is_sharpness

    assert is_sharpness(doc)
    assert not is_sharpness({"eigenvalues": [3.2], "lambda_max": 3.2})
