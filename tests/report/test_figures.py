"""Static figures (`landscape figure`) from real small results made with the CLI on the digits:
every kind to PDF, PNG and SVG, PNGs not blank, one SVG's structure checked against what was
asked, and byte-identical output on a second run."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from landscape.cli import main


def run_cli(*args: str) -> str:
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def results(tmp_path_factory, one_thread):
    """A tiny tracked run, a 2-D and a 1-D slice, an interpolation, a Hessian with a density, a
    sharpness comparison and the first-step probe, all made by the project's own commands."""
    d = tmp_path_factory.mktemp("figure_inputs")
    run = d / "run"
    run_cli("train", "--model", "mlp:hidden=16", "--epochs", "2", "--lr", "0.1", "--track-sharpness", "4",
            "--track-subset", "64", "--track-batches", "2", "--out", run)
    ck0, ck1, ck2 = (run / f"epoch_00{i}.pt" for i in range(3))
    common = ("--subset", "64")
    run_cli("slice", ck2, "--range", "-1:1:6", "--yrange", "-0.5:0.5:4", *common, "--out", d / "plane.h5")
    run_cli("slice", ck2, "--dirs", "1", "--range", "-1:1:7", *common, "--out", d / "line.h5")
    run_cli("interpolate", ck0, ck2, *common, "--out", d / "interp.h5")
    run_cli("hessian", ck2, "--top-k", "3", "--density", "--density-steps", "12", "--density-runs", "1",
            "--trace", "--trace-matvecs", "9", *common, "--json", d / "hessian.json")
    run_cli("sharpness", ck1, ck2, "--measures", "lambda_max,average_sharpness,worst_case_sharpness",
            "--samples", "3", "--steps", "2", "--restarts", "1", *common, "--json", d / "sharpness.json")
    run_cli("probe", "adam-first-step", "--model", "mlp:hidden=16", "--lr", "0.1", "--lr", "0.001",
            "--steps", "2", "--subset", "64", "--json", d / "first_step.json")
    return d


KINDS = [("plane.h5", "contour", ("train loss", "test loss")),
         ("plane.h5", "surface", ("train loss", "test loss")),
         ("line.h5", "line", ("loss", "accuracy")),
         ("interp.h5", "line", ("loss", "accuracy")),
         ("hessian.json", "density", ("density",)),
         ("run", "eos", ("sharpness",)),
         ("first_step.json", "first-step", ("lr 0.1", "lr 0.001"))]


def png_pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=float)


@pytest.mark.parametrize("name,kind,panels", KINDS, ids=[f"{k}-{n}" for n, k, _ in KINDS])
def test_every_kind_to_pdf_png_svg(results, tmp_path, name, kind, panels):
    from landscape.report.figures import FigureOptions, render_figure

    for fmt in ("pdf", "png", "svg"):
        out = tmp_path / f"fig.{fmt}"
        res = render_figure([str(results / name)], str(out), options=FigureOptions(kind=kind, size=(4.0, 3.0),
                                                                                   dpi=60))
        assert res.kind == kind and res.panels == panels and res.format == fmt
        data = out.read_bytes()
        assert len(data) > 2000
        if fmt == "pdf":
            assert data.startswith(b"%PDF") and b"/FontFile2" in data  # TrueType embedded (fonttype 42)
            assert b"CreationDate" not in data
        elif fmt == "svg":
            assert b"<svg" in data[:500] and b"<dc:date>" not in data
        else:
            px = png_pixels(out)
            assert px.shape == (180, 240)  # 4 x 3 inches at 60 dpi
            assert px.var() > 100.0, "blank PNG"


def test_svg_structure_matches_the_options(results, tmp_path):
    out = tmp_path / "c.svg"
    text = run_cli("figure", results / "plane.h5", "--levels", "7", "--only", "test", "--out", out)
    assert "wrote" in text and "contour: test loss" in text
    svg = out.read_text(encoding="utf-8")
    comments = re.findall(r"<!-- (.*?) -->", svg)  # matplotlib writes each text as a comment
    assert "x (direction 0)" in comments and "y (direction 1)" in comments and "test loss" in comments
    assert "train loss" not in comments
    group = re.search(r'<g id="contourf-test">(.*?)</g>', svg, re.S)
    assert group is not None and 'id="contourf-train"' not in svg
    # a continuous surface takes every value between its min and max: one filled path per band
    assert group.group(1).count("<path") == 7
    assert svg.count('id="checkpoint-marker') == 1


def test_levels_are_log_spaced_unless_linear(results, tmp_path):
    import h5py

    from landscape.report.figures import FigureOptions, render_figure

    with h5py.File(results / "plane.h5", "r") as f:
        lo = min(float(np.nanmin(f["train_loss"])), float(np.nanmin(f["test_loss"])))
        hi = max(float(np.nanmax(f["train_loss"])), float(np.nanmax(f["test_loss"])))
    log = render_figure([str(results / "plane.h5")], str(tmp_path / "a.png"), options=FigureOptions(levels=4, dpi=40))
    np.testing.assert_allclose(log.levels, np.geomspace(lo, hi, 5))
    lin = render_figure([str(results / "plane.h5")], str(tmp_path / "b.png"),
                        options=FigureOptions(levels=4, linear=True, zmax=(lo + hi) / 2, dpi=40))
    np.testing.assert_allclose(lin.levels, np.linspace(lo, (lo + hi) / 2, 5))


def test_output_is_reproducible(results, tmp_path):
    for fmt in ("pdf", "svg", "png"):
        digests = []
        for i in range(2):
            out = tmp_path / f"r{i}.{fmt}"
            run_cli("figure", results / "plane.h5", "--style", "slides", "--title", "a title", "--out", out)
            digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
        assert digests[0] == digests[1], fmt


def test_bad_input_is_one_line_error(results, tmp_path):
    runner = CliRunner()
    cases = [
        (["figure", str(results / "plane.h5"), "--out", str(tmp_path / "x.jpg")], "must be .pdf, .png or .svg"),
        (["figure", str(results / "plane.h5"), "--kind", "density", "--out", str(tmp_path / "x.png")], "does not fit"),
        (["figure", str(results / "plane.h5"), "--size", "3", "--out", str(tmp_path / "x.png")], "--size"),
        (["figure", str(results / "sharpness.json"), "--out", str(tmp_path / "x.png")], "no figure for this result"),
        (["figure", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.png")], "no such file"),
    ]
    for args, msg in cases:
        res = runner.invoke(main, args)
        assert res.exit_code != 0 and msg in res.output and "Traceback" not in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# tables


def balanced(text: str) -> bool:
    depth = 0
    for i, ch in enumerate(text):
        if ch in "{}" and i and text[i - 1] == "\\":
            continue  # \{ and \} are literal braces
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_latex_sharpness_table_matches_json(results, tmp_path):
    import json

    out = tmp_path / "s.tex"
    run_cli("table", results / "sharpness.json", "--latex", "--out", out)
    tex = out.read_text(encoding="utf-8")
    assert balanced(tex)
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1
    for word in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(word) == 1
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    d = json.loads((results / "sharpness.json").read_text())
    measures = d["config"]["measures"]
    assert len(body) == len(measures) + 6  # one row per measure, then loss, accuracy and their gaps
    rows = {line.split(" & ")[0]: line.rstrip(" \\").split(" & ")[1:] for line in body}
    assert set(rows) >= {"$\\lambda_{\\max}$", "worst-case (SAM)", "average (Gaussian)", "gap loss (test - train)"}
    for j, rec in enumerate(d["checkpoints"]):
        assert float(rows["$\\lambda_{\\max}$"][j]) == float(f"{rec['lambda_max']['value']:.4g}")
        assert float(rows["worst-case (SAM)"][j]) == float(f"{rec['worst_case_sharpness']['value']:.4g}")
        val, err = rows["average (Gaussian)"][j].split(" \\pm ")
        assert float(val) == float(f"{rec['average_sharpness']['value']:.4g}")
        assert float(err) == float(f"{rec['average_sharpness']['stderr']:.2g}")
        assert float(rows["gap loss (test - train)"][j]) == float(f"{rec['gap']['loss']:.4g}")
        assert float(rows["test accuracy"][j]) == float(f"{rec['test']['acc']:.4g}")


def test_markdown_and_csv_tables(results, tmp_path):
    import csv
    import io
    import json

    md = run_cli("table", results / "sharpness.json", results / "hessian.json")
    assert "| measure |" in md and "| checkpoint | λ1 | λ2 | λ3 | trace |" in md
    h = json.loads((results / "hessian.json").read_text())
    row = next(line for line in md.splitlines() if line.startswith("| ") and "epoch_002" in line and "λ" not in line
               and line.count("|") == 8)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert [float(c) for c in cells[1:4]] == [float(f"{v:.4g}") for v in h["eigenvalues"]]
    assert cells[4] == f"{h['trace']:.4g} ± {h['trace_stderr']:.2g}"
    assert float(cells[5]) == h["stability"]["threshold"]
    text = run_cli("table", results / "hessian.json", "--csv")
    lines = list(csv.DictReader(io.StringIO(text)))
    lam1 = next(r for r in lines if r["column"] == "λ1")
    assert float(lam1["value"]) == h["eigenvalues"][0]  # full precision in CSV
    tr = next(r for r in lines if r["column"] == "trace")
    assert float(tr["stderr"]) == h["trace_stderr"]


def test_first_step_causes_table(results, tmp_path):
    import json

    d = json.loads((results / "first_step.json").read_text())
    res = CliRunner().invoke(main, ["table", str(results / "first_step.json"), "--latex"])
    causes = [(r, c) for r in d["runs"] for c in r.get("causes") or []]
    if not causes:  # a probe that records no causes: skipped, and said so
        assert res.exit_code == 1 and "records no causes" in res.output
    else:
        assert res.exit_code == 0 and balanced(res.output)
        body = res.output.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
        assert len(body) == len(causes)  # one row per cause and learning rate
        for line, (run, c) in zip(body, causes):
            cells = line.rstrip(" \\").split(" & ")
            assert cells[0] == c["name"].replace("_", "\\_") and float(cells[1]) == run["lr"]
            assert cells[-2] == ("yes" if c["supported"] else "no")  # evidence is the last column
    for r in d["runs"]:
        r.pop("loss", None)
        r["causes"] = [{"name": "sign-like step", "supported": True, "evidence": "‖Δ‖ = 47× SGD's, |g| < 1e-3"},
                       {"name": "dead ReLUs", "supported": False, "evidence": "0% & 50%"}]
    p = tmp_path / "fs.json"
    p.write_text(json.dumps(d))
    tex = run_cli("table", p, "--latex")
    assert balanced(tex) and "sign-like step & 0.1 & yes" in tex and "0\\% \\& 50\\%" in tex
    assert "\\textbar{}g\\textbar{} \\textless{} 1e-3" in tex and "$\\|\\Delta\\|$" in tex
    body = tex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert len(body) == 2 * len(d["runs"])


# ---------------------------------------------------------------------------------------------
# VTK


def test_vtp_round_trip(results, tmp_path):
    import h5py

    from landscape.report.vtk import read_vtp

    out = tmp_path / "s.vtp"
    text = run_cli("export-vtk", results / "plane.h5", "--out", out, "--zmax", "2.3", "--log")
    assert "24 points, 15 quadrilaterals" in text
    v = read_vtp(str(out))
    with h5py.File(results / "plane.h5", "r") as f:
        x, y, z = np.asarray(f["xcoordinates"]), np.asarray(f["ycoordinates"]), np.asarray(f["train_loss"])
        test = np.asarray(f["test_loss"])
    X, Y = np.meshgrid(x, y, indexing="ij")
    np.testing.assert_array_equal(v.points[:, 0], X.ravel())
    np.testing.assert_array_equal(v.points[:, 1], Y.ravel())
    np.testing.assert_allclose(v.points[:, 2], np.log(np.minimum(z, 2.3) + 0.1).ravel(), rtol=1e-15)
    np.testing.assert_array_equal(v.point_data["train_loss"], z.ravel())
    np.testing.assert_array_equal(v.point_data["test_loss"], test.ravel())
    assert len(v.polys) == 5 * 3 and all(len(q) == 4 for q in v.polys)
    # each quadrilateral is a grid cell: its corners span one x step and one y step
    for q, avg in zip(v.polys, v.cell_data["averaged z"]):
        corners = v.points[list(q)]
        assert len(set(corners[:, 0])) == 2 and len(set(corners[:, 1])) == 2
        assert avg == pytest.approx(corners[:, 2].mean(), rel=1e-12)


def test_vtp_leaves_out_uncomputed_cells(tmp_path):
    import h5py

    from landscape.report.vtk import export_vtp, read_vtp

    p = tmp_path / "partial.h5"
    z = np.arange(12, dtype=float).reshape(4, 3) + 1.0
    done = np.ones((4, 3), bool)
    done[3, 2] = False
    with h5py.File(p, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = np.linspace(0, 1, 4), np.linspace(0, 1, 3)
        f["train_loss"], f["computed"] = np.where(done, z, np.nan), done
        f.attrs["format"] = "landscape-surface-1"
    res = export_vtp(str(p), str(tmp_path / "p.vtp"))
    assert res.n_points == 12 and res.n_polys == 3 * 2 - 1
    v = read_vtp(str(tmp_path / "p.vtp"))
    assert v.point_data["computed"].tolist() == done.ravel().astype(int).tolist()
    assert 11 not in {i for q in v.polys for i in q}


def test_rendering_leaves_the_callers_matplotlib_settings_alone(results, tmp_path):
    import matplotlib

    from landscape.report.figures import FigureOptions, render_figure

    backend = matplotlib.get_backend()
    with matplotlib.rc_context({"font.size": 31.0, "pdf.fonttype": 3}):
        render_figure([str(results / "plane.h5")], str(tmp_path / "a.pdf"), options=FigureOptions(dpi=40))
        assert matplotlib.rcParams["font.size"] == 31.0 and matplotlib.rcParams["pdf.fonttype"] == 3
    assert matplotlib.get_backend() == backend
    # and the user's settings do not leak into the figure: same bytes as without them
    render_figure([str(results / "plane.h5")], str(tmp_path / "b.pdf"), options=FigureOptions(dpi=40))
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


def test_pca_trajectory_accuracy_panels_and_empty_range(results, tmp_path):
    import h5py

    from landscape.errors import LandscapeError
    from landscape.report.figures import FigureOptions, render_figure

    run_cli("slice", results / "run" / "epoch_002.pt", "--direction", "pca", "--trajectory", results / "run",
            "--range", "-1:1:4", "--subset", "64", "--no-test", "--out", tmp_path / "pca.h5")
    out = tmp_path / "pca.svg"
    res = render_figure([str(tmp_path / "pca.h5")], str(out), options=FigureOptions(levels=5))
    svg = out.read_text(encoding="utf-8")
    assert res.panels == ("train loss",) and 'id="trajectory"' in svg
    with h5py.File(tmp_path / "pca.h5", "r") as f:
        ev = np.asarray(f.attrs["explained_variance_ratio"], dtype=float)
    assert f"PC1 ({100 * ev[0]:.1f}%)" in svg  # the axis says how much of the trajectory it explains

    acc = render_figure([str(results / "plane.h5")], str(tmp_path / "acc.png"),
                        options=FigureOptions(quantity="acc", levels=4, dpi=40))
    with h5py.File(results / "plane.h5", "r") as f:
        a = np.concatenate([np.asarray(f["train_acc"]).ravel(), np.asarray(f["test_acc"]).ravel()])
    np.testing.assert_allclose(acc.levels, np.linspace(a.min(), a.max(), 5))  # accuracy: even levels
    with pytest.raises(LandscapeError, match="colour range .* is empty"):
        render_figure([str(results / "plane.h5")], str(tmp_path / "x.png"), options=FigureOptions(zmax=1e-3))
