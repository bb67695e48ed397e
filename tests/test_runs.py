"""landscape.runs: one scan of a run folder, used by every command that reads a folder.

The fixture names its checkpoints ep5, ep10, ep20 (alphabetical order: ep10, ep20, ep5) and stores
no epoch inside them, so only parsing the names orders them right."""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from landscape.cli import main
from landscape.models import ModelSpec, model_from_spec
from landscape.runs import open_run, position_from_name, read_run_log, run_root_of

pytestmark = pytest.mark.usefixtures("one_thread")

SPEC = ModelSpec("mlp:hidden=6", 10, (1, 8, 8), 1.0)


def _save(path: Path, seed: int, **extra) -> None:
    torch.manual_seed(seed)
    net = model_from_spec(SPEC)
    torch.save({"model_state_dict": net.state_dict(),
                "landscape": {"model": SPEC.to_json(), "data": "digits", "loss": "ce"}, **extra}, path)


@pytest.fixture(scope="module")
def ep_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ep_run")
    for seed, epoch in enumerate((5, 10, 20)):
        _save(root / f"ep{epoch}.pt", seed)
    with open(root / "log.csv", "w") as f:
        f.write("epoch,step,train_loss,train_acc,test_loss,test_acc,lr\n")
        for e, loss in ((5, 2.0), (10, 1.5), (20, 1.0)):
            f.write(f"{e},{e * 8},{loss},0.5,{loss + 0.1},0.4,0.1\n")
    return root


def test_names_parse_to_epoch_and_step():
    assert position_from_name("ep5.pt") == (5, None)
    assert position_from_name("epoch_012.pt") == (12, None)
    assert position_from_name("model-ep20.pth") == (20, None)
    assert position_from_name("step_000500.pt") == (None, 500)  # the "ep" of "step" is no epoch
    assert position_from_name("epoch=3-step=900.ckpt") == (3, 900)
    assert position_from_name("checkpoint.pth.tar") == (None, None)
    assert position_from_name("resnet20-12fa3.th") == (None, None)


def test_run_orders_by_parsed_epoch(ep_run):
    run = open_run(ep_run)
    assert [p.name for p in run.ordered] == ["ep5.pt", "ep10.pt", "ep20.pt"]
    assert list(run.by_epoch) == [5, 10, 20]
    assert run.last.name == "ep20.pt"
    assert run.log is not None and run.log.format == "landscape"
    assert run.log.column("test_loss") == [2.1, 1.6, 1.1]


def test_position_read_from_content_and_unknown_files(tmp_path):
    for seed, epoch in enumerate((2, 9)):
        _save(tmp_path / f"ep{epoch}.pt", seed)
    _save(tmp_path / "latest.pt", 3, epoch=30)  # no number in the name: read from the file
    _save(tmp_path / "best.pt", 4)  # no number anywhere: unordered
    run = open_run(tmp_path)
    assert [p.name for p in run.ordered] == ["ep2.pt", "ep9.pt", "latest.pt"]
    assert [p.name for p in run.unordered] == ["best.pt"]


def test_step_files_beside_epoch_files_and_step_only_runs(tmp_path):
    for n in (0, 1, 2):
        _save(tmp_path / f"epoch_{n:03d}.pt", n)
    for s in (5, 40, 100):
        _save(tmp_path / f"step_{s:06d}.pt", s)
    assert [p.name for p in open_run(tmp_path).ordered] == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt"]
    steps = tmp_path / "steps"
    steps.mkdir()
    for s in (100, 5, 40):
        _save(steps / f"step{s}.pt", s)
    assert [p.name for p in open_run(steps).ordered] == ["step5.pt", "step40.pt", "step100.pt"]


def test_checkpoints_subfolder_and_run_root(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    for seed, epoch in enumerate((8, 10, 9)):
        _save(tmp_path / "checkpoints" / f"epoch_{epoch:03d}.pt", seed)
    (tmp_path / "config.yaml").write_text("model: ResNet18\nloss_function: mse\n")
    run = open_run(tmp_path)
    assert list(run.by_epoch) == [8, 9, 10]
    assert run.config is not None and run.config.values["loss_function"] == "mse"
    assert run_root_of(tmp_path / "checkpoints" / "epoch_009.pt") == tmp_path.resolve()


def test_long_and_wide_logs(tmp_path):
    long = tmp_path / "metrics.csv"
    long.write_text("run_name,epoch,split,loss,accuracy\n"
                    "r,1,train,2.0,0.3\nr,1,val,1.9,0.31\nr,1,test,1.8,0.32\n"
                    "r,2,train,1.5,0.5\nr,2,val,1.4,0.51\nr,2,test,1.3,0.52\n")
    log = read_run_log(long)
    assert log.format == "long"
    assert log.column("epoch") == [1.0, 2.0]
    assert log.column("val_loss") == [1.9, 1.4] and log.column("test_acc") == [0.32, 0.52]
    wide = tmp_path / "history.csv"
    wide.write_text("epoch,Train_Loss,valid_loss,val_accuracy\n1,2.0,1.9,0.3\n")
    log = read_run_log(wide)
    assert log.format == "wide" and log.rows[0]["val_loss"] == 1.9 and log.rows[0]["val_acc"] == 0.3
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="not a run log"):
        read_run_log(tmp_path / "notes.csv")


def test_every_folder_reader_orders_5_10_20(ep_run):
    from landscape.demo import _last_checkpoint
    from landscape.directions import trajectory_files
    from landscape.probes.spikes import find_checkpoints
    from landscape.sharpness.measure import run_checkpoints

    names = ["ep5.pt", "ep10.pt", "ep20.pt"]
    assert [p.name for p in find_checkpoints(ep_run).values()] == names
    assert [p.name for p in run_checkpoints(ep_run)] == names
    assert [Path(p).name for p in trajectory_files([str(ep_run)])] == names
    assert _last_checkpoint(ep_run).name == "ep20.pt"


def test_report_run_section_orders_epochs(ep_run):
    from landscape.report.run import run_section

    sec = run_section(ep_run, label="ep")
    assert "3 epoch checkpoints (epochs 5–20)" in sec.blocks[0].lines


def test_sharpness_run_command_orders_5_10_20(ep_run, tmp_path):
    out = tmp_path / "s.json"
    res = CliRunner().invoke(main, ["sharpness", str(ep_run), "--measures", "lambda_max", "--subset", "64",
                                    "--json", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert [Path(c["provenance"]["checkpoint"]).name for c in d["checkpoints"]] == ["ep5.pt", "ep10.pt", "ep20.pt"]


def test_pca_slice_centre_is_last_epoch(ep_run, tmp_path):
    out = tmp_path / "pca.json"
    res = CliRunner().invoke(main, ["slice", "--direction", "pca", "--trajectory", str(ep_run), "--dirs", "2",
                                    "--range", "-1:1:3", "--yrange", "-1:1:3", "--subset", "32", "--no-test",
                                    "--out", str(tmp_path / "pca.h5"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    prov = json.loads(out.read_text())["provenance"]
    assert Path(prov["checkpoint"]).name == "ep20.pt" and prov["epoch"] == 20


def test_session_at_loads_data_once(ep_run, monkeypatch):
    import landscape.session as session

    calls = []
    real = session.load_data
    monkeypatch.setattr(session, "load_data", lambda spec=None, **kw: calls.append(spec) or real(spec, **kw))
    run = open_run(ep_run)
    losses = [run.session_at(p, subset=16).train.evaluate().loss for p in run.ordered]
    assert len(calls) == 1 and len(set(losses)) == 3


def test_normalize_recorded_in_slice_files_and_part_of_the_resume_key(ep_run, tmp_path):
    import h5py

    out = tmp_path / "s.h5"
    args = ["slice", str(ep_run / "ep20.pt"), "--dirs", "1", "--range", "-1:1:3", "--subset", "16",
            "--no-test", "--no-log-check", "--out", str(out)]
    res = CliRunner().invoke(main, [*args, "--normalize", "none"])
    assert res.exit_code == 0, res.output
    with h5py.File(out, "r") as f:
        assert f.attrs["normalize"] == "none"
    res = CliRunner().invoke(main, [*args, "--normalize", "0.5/0.25"])
    assert res.exit_code != 0 and "--overwrite" in res.output


def test_spike_probe_loads_the_runs_data_once(ep_run, monkeypatch):
    import landscape.session as session
    from landscape.probes.spikes import SpikeProbeConfig, probe_spikes

    calls = []
    real = session.load_data
    monkeypatch.setattr(session, "load_data", lambda spec=None, **kw: calls.append(spec) or real(spec, **kw))
    rep = probe_spikes(ep_run, cfg=SpikeProbeConfig(at=(10,), hessian=False, points=3),
                       session_kwargs={"subset": 16, "check_log": False})
    assert [p.epoch for p in rep.checkpoints] == [5, 10, 20]
    assert len(calls) == 1
