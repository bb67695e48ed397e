"""Smoke version of the demo: a tiny end-to-end run of every step, checked against its own files.

The demo's summary must be derived from the results: the tests recompute its statements from the
written JSON / h5 / log files and check the text agrees, and check that editing a result changes
the summary (no canned text).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from landscape.demo import DemoConfig, RunSpec, run_demo, summarise
from landscape.errors import LandscapeError

TINY = dataclasses.replace(
    DemoConfig.quick(), width=0.25, epochs=2, subset=96, sharp_subset=64, grid=3, interp_points=3,
    runs=(RunSpec("adam_ce_lr0.001", "adam", 0.001), RunSpec("sgd_ce_lr0.1", "sgd", 0.1, momentum=0.9),
          RunSpec("adam_smse_lr0.1", "adam", 0.1, loss="mse-softmax")),
    sharp_steps=2, sharp_samples=2, trace_matvecs=6, probe_steps=2, probe_subset=128, spike_points=3, hessian_batch=1024,
    hessian_subset=128, probe_hessian=False, eig_tol=1e-2,
    sharp_measures="lambda_max,eps,average,pac_bayes,stability")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def demo(tmp_path_factory, one_thread):  # noqa: ARG001 - one intra-op thread while the demo runs
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out, TINY)


def test_every_step_wrote_its_files(demo):
    out = demo.out
    for r in TINY.runs:
        run = out / "runs" / r.name
        assert (run / "log.csv").exists()
        assert (run / f"epoch_{TINY.epochs:03d}.pt").exists() and (run / "epoch_000.pt").exists()
        h = json.loads((out / "results" / f"hessian_{r.name}.json").read_text())
        assert h["stability"]["optimizer"] == r.optimizer and h["stability"]["lr"] == pytest.approx(r.lr)
        assert json.loads((out / "results" / f"inspect_{r.name}.json").read_text())["epoch"] == TINY.epochs
    res = out / "results"
    for name in ("sharpness.json", "adam_first_step.json", "spikes.json", "interpolation.h5",
                 f"slice_{TINY.adam_end}.h5", f"slice_{TINY.sgd_end}.h5"):
        assert (res / name).exists(), name
    sharp = json.loads((res / "sharpness.json").read_text())
    assert [Path(c["checkpoint"]).parent.name for c in sharp["checkpoints"]] == [TINY.adam_end, TINY.sgd_end]
    fs = json.loads((res / "adam_first_step.json").read_text())
    assert sorted((r["loss"], r["lr"]) for r in fs["runs"]) == [("ce", 0.001), ("ce", 0.1), ("mse-softmax", 0.001),
                                                                 ("mse-softmax", 0.1)]
    assert all(len(r["causes"]) == 6 for r in fs["runs"])
    page = (out / "report.html").read_text(encoding="utf-8")
    assert demo.report == out / "report.html" and page.count("<script") >= 2
    assert (out / "summary.txt").read_text(encoding="utf-8").strip() == demo.summary.strip()


def test_summary_matches_the_results(demo):
    text = demo.summary
    # runs table: the final test accuracies of the logs
    for r in TINY.runs:
        acc = demo.results["logs"][r.name][-1]["test_acc"]
        assert re.search(rf"{re.escape(r.name)} .*test acc {acc:.3f}", text), r.name
    # edge of stability: each run's ratio from its Hessian JSON, and the verdict follows the stated rule
    for r in TINY.runs:
        st = json.loads((demo.out / "results" / f"hessian_{r.name}.json").read_text())["stability"]
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(r.name) and "ratio" in ln)
        assert f"{st['ratio']:.3g}" in line
        expect = "past the threshold" if st["ratio"] > 1 else ("at the edge" if st["ratio"] >= 0.8 else "below the edge")
        assert line.rstrip().endswith(expect)
    # sharper minimum: recompute the λ_max comparison from sharpness.json
    sharp = json.loads((demo.out / "results" / "sharpness.json").read_text())["checkpoints"]
    la, ls = sharp[0]["lambda_max"]["value"], sharp[1]["lambda_max"]["value"]
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("lambda_max"))
    assert line.rstrip().endswith(TINY.adam_end if la > ls else TINY.sgd_end)
    # Adam at high lr: the first-step probe's numbers and its mechanism sentence appear for every run
    fs = json.loads((demo.out / "results" / "adam_first_step.json").read_text())
    for run in fs["runs"]:
        assert f"loss {run['adam']['loss_before']:.4g} → {run['adam']['loss_after']:.4g}" in text
        assert run["mechanism"] in text
    hi = next(r for r in fs["runs"] if r["loss"] == "mse-softmax" and r["lr"] == 0.1)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("→ mechanism"))
    supported = [c for c in hi["causes"] if c["supported"] and c["name"] != "no_recovery"]
    for c in supported:
        assert c["name"].replace("_", " ") in line
    if not supported:
        assert "none of the measured causes" in line
    assert str(demo.report) in text


def test_summary_changes_with_the_numbers(demo):
    """Flip the stability ratio of one run and the trained flag of another: the text follows."""
    import copy

    results = copy.copy(demo.results)
    name = TINY.runs[0].name
    rep = results["hessian"][name]
    st = dataclasses.replace(rep.stability, ratio=1.7)
    results["hessian"] = {**results["hessian"], name: dataclasses.replace(rep, stability=st)}
    logs = copy.deepcopy(results["logs"])
    logs[TINY.high_lr_adam][-1]["test_acc"] = 0.99
    results["logs"] = logs
    text = summarise(TINY, results)
    assert re.search(rf"{re.escape(name)} .*ratio +1\.7 +past the threshold", text)
    assert f"at or past the edge of stability: {name}" in text
    assert f"Adam at a high learning rate ({TINY.high_lr_adam}, Adam lr 0.1, softmax-MSE): it trained" in text
    assert text != summarise(TINY, demo.results)


def test_summary_states_the_mechanism_from_the_causes(demo):
    """Mark softmax saturation supported (with its numbers) and recovery failed in the probe's
    lr 0.1 softmax-MSE run: the summary's mechanism line names it; unsupported causes are not named."""
    fs = demo.results["first_step"]
    runs = []
    for run in fs.runs:
        if run.loss == "mse-softmax" and run.lr == 0.1:
            causes = []
            for c in run.causes:
                c = dict(c)
                c["supported"] = c["name"] in ("softmax_saturation", "no_recovery")
                if c["name"] == "softmax_saturation":
                    c["numbers"] = {**c["numbers"], "saturation_end": 0.97}
                causes.append(c)
            run = dataclasses.replace(run, causes=tuple(causes),
                                      adam=dataclasses.replace(run.adam, recovered=False))
        runs.append(run)
    results = {**demo.results, "first_step": dataclasses.replace(fs, runs=tuple(runs))}
    text = summarise(TINY, results)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("→ mechanism"))
    assert "softmax saturation (97% of samples with max p > 1 − 1e-4" in line
    assert "curvature overshoot" not in line and "output collapse" not in line
    assert "Adam does not train again within 2 steps" in line


def test_refuses_a_foreign_folder_and_replaces_its_own(tmp_path, demo):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(LandscapeError, match="not written by `landscape demo`"):
        run_demo(foreign, TINY)
    assert (foreign / "thesis.tex").read_text() == "keep me"
    bad = dataclasses.replace(TINY, adam_end="nope")
    with pytest.raises(LandscapeError, match="no run named 'nope'"):
        run_demo(tmp_path / "x", bad)


def test_cli_demo_help_and_one_line_error(tmp_path):
    from landscape.cli import main

    res = CliRunner().invoke(main, ["demo", "--help"])
    assert res.exit_code == 0 and "--quick" in res.output and "--out" in res.output
    (tmp_path / "notes.txt").write_text("x")
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--quick"])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [f"error: {tmp_path} exists and was not written by "
                                               "`landscape demo`; choose another --out"]
