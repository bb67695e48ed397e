"""Issue #14: the study's run folders open as they are — no --model, no --loss, no --data — and
the numbers are checked against a reference computed here and against the run's own log."""

import json

import pytest
import torch
from click.testing import CliRunner
from study_fixture import make_study_run, their_loss

from landscape.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study_run(tmp_path_factory.mktemp("study"))


def _inspect(path, *args):
    res = CliRunner().invoke(main, ["inspect", str(path), "--json", "-", *args])
    assert res.exit_code == 0, res.output
    text = res.output
    return json.loads(text[text.index("{"):text.rindex("}") + 1]), text


def _reference(study, split):
    model = study.model.eval()
    with torch.no_grad():
        return float(their_loss("mse", model(study.data[f"x_{split}"]), study.data[f"y_{split}"]))


def test_inspect_matches_the_reference_and_the_log(study):
    d, _ = _inspect(study.last, "--normalize", "pytorch-cifar")
    assert d["n_params"] == study.n_params
    assert d["recognised"]["spec"] == "tv_resnet18:stem=cifar"
    assert d["optimizer"]["type"] == "adam" and d["optimizer"]["lr"] == pytest.approx(0.01)
    assert d["provenance"]["loss"] == "mse-softmax"
    assert d["provenance"]["n_train"] == len(study.data["y_train"]) == 64
    assert abs(d["train_loss"] - _reference(study, "train")) <= 1e-4
    assert abs(d["test_loss"] - _reference(study, "test")) <= 1e-4
    check = d["log_check"]
    assert check["consistent"] is True and check["split"] == "test" and check["epoch"] == 3
    assert check["rel_diff"] <= 1e-3
    assert "config.yaml" in d["sources"]["loss"] and d["sources"]["split"].startswith("run config")
    assert d["provenance"]["normalize"] == "pytorch-cifar"


def test_default_normalisation_fails_the_log_check_and_names_the_fix(study):
    res = CliRunner().invoke(main, ["inspect", str(study.last), "--json", "-"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output[res.output.index("{"):res.output.rindex("}") + 1])
    assert d["log_check"]["consistent"] is False
    assert d["provenance"]["normalize"] == "cifar10"
    assert "--normalize pytorch-cifar" in d["log_check"]["suggestions"]


def test_hessian_warns_once_and_uses_adams_threshold_from_the_checkpoint(study, tmp_path):
    out = tmp_path / "h.json"
    with pytest.warns(UserWarning) as caught:
        res = CliRunner().invoke(main, ["hessian", str(study.last), "--top-k", "1", "--subset", "8",
                                        "--json", str(out)])
    assert res.exit_code == 0, res.output
    warn = [str(w.message) for w in caught if str(w.message).startswith("the run's log")]
    assert len(warn) == 1 and "\n" not in warn[0] and "consistent with --normalize pytorch-cifar" in warn[0]
    st = json.loads(out.read_text())["stability"]
    assert st["optimizer"] == "adam"
    assert st["threshold"] == pytest.approx((2 + 2 * 0.9) / ((1 - 0.9) * 0.01))


def test_mse_without_a_log_asks_for_loss(study, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(study.root, bare)
    (bare / "metrics.csv").unlink()
    res = CliRunner().invoke(main, ["inspect", str(bare / "checkpoints" / study.last.name)])
    assert res.exit_code == 1
    assert "ambiguous" in res.output and "--loss mse-softmax" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["inspect", str(bare / "checkpoints" / study.last.name), "--loss", "mse-softmax",
                                    "--normalize", "pytorch-cifar"])
    assert res.exit_code == 0, res.output


def test_spike_only_in_the_log_is_reported_with_missing_checkpoints(tmp_path):
    run = make_study_run(tmp_path, epochs=30, spike_at=12, keep=3, steps=1, lr=0.001)
    res = CliRunner().invoke(main, ["probe", "spikes", str(run.root), "--no-hessian", "--points", "3",
                                    "--normalize", "pytorch-cifar", "--json", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "s.json").read_text())
    assert max(d["spikes"], key=lambda s: s["score"])["epoch"] == 12
    assert sorted(int(k) for k in d["provenance"]["checkpoints"]) == [28, 29, 30]
    event = next(e for e in d["events"] if e["epoch"] == 12)
    assert event["checkpoints"] == {} and event["missing"] == [11, 12, 13]
    note = next(n for n in d["notes"] if "epoch 12" in n)
    assert "28, 29, 30" in note and "max_checkpoints: 3" in note and "--save-around-spikes" in note


def test_report_reads_their_metrics(study, tmp_path):
    from landscape.report.run import run_section

    sec = run_section(study.root, label="study")
    text = " ".join(sec.blocks[0].lines)
    assert "1 epoch checkpoints" in text or "epoch checkpoints" in text
    assert "metrics.csv (long format)" in text
    assert any(b is not None and getattr(b, "name", "") == "curves" for b in sec.blocks)


def test_a_wrong_model_flag_names_the_recognised_layout(study):
    res = CliRunner().invoke(main, ["inspect", str(study.last), "--model", "resnet18", "--width", "0.0625"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "torchvision ResNet-18, CIFAR stem" in res.output and "--model tv_resnet18:stem=cifar" in res.output
