"""`train --out` never mixes two runs: refuse, --overwrite or --resume (issue #19 item 3), and a
checkpoint that cannot be written leaves no temporary file (item 10)."""

import pytest
import torch
from click.testing import CliRunner

from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.train import TrainConfig, train

ARGS = ["--model", "mlp:hidden=12", "--scheduler", "step", "--step-size", "1", "--step-gamma", "0.5",
        "--optimizer", "adam", "--lr", "0.01"]


def run(*args):
    return CliRunner().invoke(main, ["train", *ARGS, *map(str, args)])


def _weights(path):
    return torch.load(path, weights_only=True)["model_state_dict"]


def test_a_folder_holding_a_run_is_refused(tmp_path):
    out = tmp_path / "r"
    assert run("--epochs", 1, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = run("--epochs", 1, "--optimizer", "sgd", "--out", out)
    assert res.exit_code == 1 and "already holds a run" in res.output and "--overwrite" in res.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched


def test_overwrite_removes_only_the_run_files(tmp_path):
    out = tmp_path / "r"
    assert run("--epochs", 3, "--out", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    res = run("--epochs", 1, "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["epoch_000.pt", "epoch_001.pt", "log.csv", "notes.txt"]
    assert len((out / "log.csv").read_text().splitlines()) == 3


@pytest.mark.parametrize("stop,extra", [(1, []), (1, ["--switch-to-sgd", "1", "--switch-lr", "0.05"]),
                                        (2, ["--switch-to-sgd", "1", "--switch-lr", "0.05"])])
def test_resume_continues_bit_identically(tmp_path, stop, extra):
    full, part = tmp_path / "full", tmp_path / "part"
    assert run("--epochs", 3, "--out", full, *extra).exit_code == 0
    assert run("--epochs", stop, "--out", part, *extra).exit_code == 0
    res = run("--epochs", 3, "--out", part, "--resume", *extra)
    assert res.exit_code == 0 and f"resumed at epoch {stop}" in res.output, res.output
    assert (part / "log.csv").read_text() == (full / "log.csv").read_text()  # lr schedule replayed too
    a, b = _weights(full / "epoch_003.pt"), _weights(part / "epoch_003.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(full / "epoch_003.pt", weights_only=True)["optimizer_state_dict"]
    sb = torch.load(part / "epoch_003.pt", weights_only=True)["optimizer_state_dict"]
    assert sa["param_groups"] == sb["param_groups"]


@pytest.mark.parametrize("extra,needle", [(["--lr", "0.02"], "differs in lr"),
                                          (["--epochs", "1"], "already trained to epoch 1")])
def test_resume_checks_the_configuration(tmp_path, extra, needle):
    out = tmp_path / "r"
    assert run("--epochs", 1, "--out", out).exit_code == 0
    res = CliRunner().invoke(main, ["train", *ARGS, "--epochs", "2", "--out", str(out), "--resume", *extra])
    assert res.exit_code == 1 and needle in res.output, res.output


def test_resume_needs_a_run_and_excludes_overwrite(tmp_path):
    res = run("--epochs", 1, "--out", tmp_path / "empty", "--resume")
    assert res.exit_code == 1 and "nothing to resume" in res.output
    res = run("--epochs", 1, "--out", tmp_path / "x", "--resume", "--overwrite")
    assert res.exit_code == 2 and "exclude each other" in res.output


def test_failed_checkpoint_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    import landscape.monitor as monitor

    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        real_save(obj, f, *a, **k)  # a partial file appears, then the write fails
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(monitor.torch, "save", full_disk)
    out = tmp_path / "r"
    with pytest.raises(LandscapeError, match=r"cannot write checkpoint .*epoch_000.pt \(is the disk full\?\)"):
        train(TrainConfig(model="mlp:hidden=8", epochs=1), out)
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.pt"))
