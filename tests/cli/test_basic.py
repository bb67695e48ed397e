"""`landscape inspect` / `train` and one-line errors for bad input (no tracebacks)."""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from landscape.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_inspect_json_keys(digits_run):
    res = run("inspect", str(digits_run / "epoch_003.pt"), "--json", "-")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    for key in ("n_params", "optimizer", "epoch", "train_loss", "train_acc", "test_loss", "test_acc"):
        assert key in d
    assert d["epoch"] == 3 and d["optimizer"]["type"] == "sgd" and d["optimizer"]["momentum"] == 0.9
    assert set(d["optimizer"]) >= {"type", "lr", "momentum", "nesterov", "betas", "eps", "weight_decay", "step"}
    assert d["optimizer"]["lr"] == 0.05 and d["train_acc"] > 0.5


def test_train_writes_checkpoints_and_log(tmp_path):
    out = tmp_path / "run"
    res = run("train", "--model", "mlp:hidden=16", "--optimizer", "adam", "--lr", "0.01", "--epochs", "2",
              "--save-steps", "0,1,3", "--out", str(out))
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt", "log.csv",
                     "step_000000.pt", "step_000001.pt", "step_000003.pt"]
    lines = (out / "log.csv").read_text().splitlines()
    assert lines[0] == "epoch,step,train_loss,train_acc,test_loss,test_acc,lr" and len(lines) == 4
    ck = torch.load(out / "epoch_002.pt", weights_only=True)
    assert ck["landscape"]["model"]["spec"] == "mlp:hidden=16" and ck["landscape"]["optimizer_type"] == "adam"
    res = run("inspect", str(out / "step_000001.pt"), "--json", "-")
    assert json.loads(res.output)["optimizer"]["step"] == 1


@pytest.fixture()
def bad_inputs(tmp_path, digits_run):
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes((digits_run / "epoch_001.pt").read_bytes()[:300])
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    ck = str(digits_run / "epoch_001.pt")
    return {
        "missing file": (["inspect", str(tmp_path / "nope.pt")], "not found"),
        "truncated": (["inspect", str(trunc)], "corrupt"),
        "not a checkpoint": (["inspect", str(text)], "cannot read"),
        "key mismatch": (["inspect", ck, "--model", "resnet20"], "does not match the model"),
        "missing factory": (["inspect", ck, "--model", "nowhere.py:make"], "not found"),
        "missing data": (["inspect", ck, "--data", "cifar10:/no/such"], "does not exist"),
        "bad loss": (["inspect", ck, "--loss", "hinge"], "Invalid value"),
    }


def test_bad_input_one_line_nonzero(bad_inputs):
    for name, (args, needle) in bad_inputs.items():
        res = run(*args)
        assert res.exit_code != 0, name
        lines = [ln for ln in res.output.strip().splitlines() if not ln.startswith("warning:")]
        assert len(lines) == 1 and lines[0].startswith("error:"), (name, res.output)
        assert needle in lines[0], (name, lines[0])
        assert "Traceback" not in res.output


def test_real_process_no_traceback_and_debug(tmp_path):
    cmd = [sys.executable, "-m", "landscape", "inspect", str(tmp_path / "missing.pt")]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 1 and p.stderr.strip().startswith("error: checkpoint not found")
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run(cmd + ["--debug"], capture_output=True, text=True)
    assert p.returncode != 0 and "Traceback" in p.stderr
