"""Spike probe: detection on synthetic logs, the training hook, and a real digits run vs exact Hessians."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from cases import dense_hessian

from landscape import open_session
from landscape.models import ModelSpec
from landscape.probes.spikes import (
    DetectorConfig,
    SpikeProbeConfig,
    SpikeSaver,
    _line_minimum,
    detect_oscillation,
    detect_spikes,
    find_checkpoints,
    probe_spikes,
)
from landscape.results import dumps
from landscape.train import TrainConfig, TrainState, train


def _smooth(n: int = 60, seed: int = 0, noise: float = 0.01) -> list:
    g = torch.Generator().manual_seed(seed)
    base = 0.4 + 2.0 * torch.exp(-torch.arange(n) / 12.0)
    return (base * (1 + noise * torch.randn(n, generator=g))).tolist()


def test_planted_spike_is_found_and_nothing_else():
    vals = _smooth()
    vals[37] *= 1.8
    spikes = detect_spikes(list(range(60)), vals)
    assert [s.epoch for s in spikes] == [37]
    s = spikes[0]
    assert s.test_loss == vals[37] and s.baseline == pytest.approx(sorted(vals[29:37])[3:5][0], rel=0.05)
    assert s.score > 5
    assert detect_oscillation(list(range(60)), vals).segments == ()


@pytest.mark.parametrize("curve", ["decay", "rising", "flat", "noisy"])
def test_smooth_logs_give_none(curve):
    n = 80
    if curve == "decay":
        vals = _smooth(n, noise=0.0)
    elif curve == "rising":  # steady overfitting: test loss climbs linearly
        vals = [0.5 + 0.01 * i for i in range(n)]
    elif curve == "flat":
        vals = [0.7] * n
    else:
        vals = _smooth(n, seed=5, noise=0.02)
    assert detect_spikes(list(range(n)), vals) == ()
    assert detect_oscillation(list(range(n)), vals).segments == ()


def test_oscillation_segment_and_divergence():
    vals = _smooth(50, noise=0.0)
    for i in range(20, 30):
        vals[i] *= 1.3 if i % 2 else 0.8
    osc = detect_oscillation(list(range(50)), vals)
    assert len(osc.segments) == 1
    seg = osc.segments[0]
    assert 19 <= seg["start_epoch"] <= 21 and 28 <= seg["end_epoch"] <= 31 and seg["flips"] >= 7
    div = _smooth(20, noise=0.0) + [float("nan")]
    assert [s.epoch for s in detect_spikes(list(range(21)), div)] == [20]


@pytest.mark.parametrize("history", [[2.3], [2.3, 2.1]])
def test_nan_after_a_short_finite_history_is_a_spike(history):
    vals = history + [float("nan")]
    spikes = detect_spikes(list(range(len(vals))), vals)
    assert [s.epoch for s in spikes] == [len(history)] and spikes[0].score == float("inf")
    assert detect_spikes([0, 1], [float("nan"), float("nan")]) == ()  # nothing finite before: no baseline
    assert detect_spikes([0, 1], [2.3, 9.0]) == ()  # a finite rise still needs min_history values


def test_line_minimum_refines_a_parabola():
    alphas = [i / 10 for i in range(-10, 11)]
    assert _line_minimum(alphas, [(a - 0.234) ** 2 + 1 for a in alphas]) == pytest.approx(0.234, abs=1e-9)


def test_spike_saver_keeps_checkpoints_around_a_spike(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = TrainState(model, opt, TrainConfig(model="custom"), model_spec=ModelSpec("mlp:hidden=4", 2, (3,), 1.0))
    saver = SpikeSaver(tmp_path, keep=2, after=1)
    vals = _smooth(30, noise=0.0)
    vals[23] *= 2.0
    for epoch, v in enumerate(vals, start=1):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # marks which epoch a saved file holds
        state.epoch = epoch
        state.history.append({"epoch": epoch, "test_loss": v})
        saver(state)
    assert sorted(saver.saved) == [22, 23, 24, 25]
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == [f"epoch_{e:03d}.pt" for e in (22, 23, 24, 25)]
    ck = torch.load(tmp_path / "epoch_023.pt", weights_only=True)
    assert ck["epoch"] == 23 and float(ck["model_state_dict"]["weight"][0, 0]) == 23.0
    assert [s["epoch"] for s in json.loads((tmp_path / "spikes.json").read_text())] == [24]


def _write_log(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_real_adam_run_probe_matches_exact_hessian(tmp_path):
    """A real MSE + Adam (lr 0.1) run made with landscape train; its log gets one planted spike so
    the probe has an event; λ_max, gᵀHg/gᵀg and the slices are checked against exact references."""
    run = tmp_path / "run"
    train(TrainConfig(model="mlp:hidden=8", data="digits", loss="mse", optimizer="adam", lr=0.1, epochs=4,
                      batch_size=128, seed=0), run)
    assert sorted(find_checkpoints(run)) == [0, 1, 2, 3, 4]
    log = list(csv.DictReader(open(run / "log.csv")))
    # a longer synthetic history before the real epochs, with epoch 3 planted as a spike
    rows = [{"epoch": e, "train_loss": 0.1, "test_loss": 0.1 - 0.001 * e, "lr": 0.1} for e in range(-6, 0)]
    rows += [{"epoch": int(r["epoch"]), "train_loss": float(r["train_loss"]),
              "test_loss": (0.3 if int(r["epoch"]) == 3 else 0.095), "lr": 0.1} for r in log]
    _write_log(tmp_path / "log.csv", rows)
    rep = probe_spikes(run, log_path=tmp_path / "log.csv",
                       cfg=SpikeProbeConfig(detector=DetectorConfig(), points=5, tol=1e-6),
                       session_kwargs={"subset": 300})
    assert [s.epoch for s in rep.spikes] == [3.0]
    assert [(c.role, c.epoch) for c in rep.checkpoints] == [("before", 2), ("at", 3), ("after", 4)]
    at = rep.checkpoints[1]
    s = open_session(str(run / "epoch_003.pt"), subset=300)
    H = dense_hessian(s.train).float()
    lam = float(torch.linalg.eigvalsh(H.double())[-1])
    assert at.lambda_max == pytest.approx(lam, rel=1e-3)
    g = s.train.grad()
    assert at.directional_curvature == pytest.approx(float(g @ H @ g / (g @ g)), rel=1e-3)
    assert at.optimizer == "adam" and at.lr == 0.1 and at.preconditioned_ratio is not None
    assert at.ratio == pytest.approx(lam * 0.1 / 2, rel=1e-3)
    # the step line from epoch 2 to 3: α = 0 and 1 are the two checkpoints' losses
    step = at.step
    assert step["from_epoch"] == 2 and step["alpha"][1] == 0.0 and step["alpha"][3] == 1.0
    assert step["test_loss"][3] == pytest.approx(s.test.evaluate().loss, rel=1e-5)
    assert step["train_loss"][1] == pytest.approx(open_session(str(run / "epoch_002.pt"), subset=300).train.loss(), rel=1e-5)
    names = {v.hypothesis for v in rep.verdicts}
    assert {"stability_threshold", "directional_curvature", "train_test_shift"} <= names
    assert all(v.status in ("supported", "not supported", "inconclusive", "not measured") for v in rep.verdicts)
    d = json.loads(dumps(rep))
    assert set(d["spikes"][0]) >= {"epoch", "test_loss", "baseline", "score"}
    assert {"epoch", "lambda_max", "ratio", "train_loss", "test_loss", "grad_alignment",
            "directional_curvature"} <= set(d["checkpoints"][0])
    assert "oscillation" in d and d["verdicts"]
    assert math.isfinite(d["checkpoints"][1]["grad_alignment"])


def test_train_cli_save_around_spikes_smoke(tmp_path):
    from click.testing import CliRunner

    from landscape.cli import main

    res = CliRunner().invoke(main, ["train", "--model", "mlp:hidden=8", "--epochs", "2", "--save-every", "5",
                                    "--save-around-spikes", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "spikes during training: 0" in res.output


def test_log_with_only_a_header_is_named_as_such(tmp_path):
    from landscape.errors import LandscapeError
    from landscape.probes.spikes import probe_spikes

    (tmp_path / "log.csv").write_text("epoch,step,train_loss,train_acc,test_loss,test_acc,lr\n")
    with pytest.raises(LandscapeError, match="no rows yet"):
        probe_spikes(tmp_path)
