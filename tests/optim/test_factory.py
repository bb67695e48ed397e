"""The optimizer factory (landscape.optim.factory): every family trains and is recognised from its
saved state, unknown names are one-line errors, and `landscape train`'s schedules and switching."""

from __future__ import annotations

import pytest
import torch

from landscape.checkpoint import map_optimizer_state
from landscape.optim import FAMILIES, OptimizerConfig, make_optimizer, optimizer_type
from landscape.params import ParamSpace


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))


EXPECTED_TYPE = {"sgd": "sgd", "adagrad": "adagrad", "rmsprop": "rmsprop", "adadelta": "adadelta",
                 "adam": "adam", "amsgrad": "adam", "adamw": "adamw", "radam": "radam",
                 "adabound": "adabound", "amsbound": "amsbound", "swats": "adam"}


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_trains_and_is_recognised_from_its_state(name: str, tmp_path) -> None:
    model = _tiny_model()
    opt = make_optimizer(model.parameters(), OptimizerConfig(name=name, lr=0.01, momentum=0.5))
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert optimizer_type(opt) == EXPECTED_TYPE[name]
    path = tmp_path / "opt.pt"
    torch.save(opt.state_dict(), path)
    raw = torch.load(path, weights_only=True)
    state = map_optimizer_state(raw, ParamSpace.from_model(model))
    assert state.type == EXPECTED_TYPE[name]
    if name == "amsgrad":
        assert state.amsgrad
    if name in ("adabound", "amsbound", "adam", "adamw", "radam", "swats"):
        assert state.step == 2


def test_unknown_family_is_a_one_line_error() -> None:
    from landscape.errors import SpecError

    with pytest.raises(SpecError, match="unknown optimizer"):
        make_optimizer(_tiny_model().parameters(), OptimizerConfig(name="lion"))


def test_train_with_plateau_schedule_and_switch(tmp_path) -> None:
    from landscape.checkpoint import load_checkpoint
    from landscape.session import open_session
    from landscape.train import TrainConfig, read_log, train

    cfg = TrainConfig(model="mlp:hidden=16", data="digits", optimizer="adabound", lr=1e-3, epochs=4,
                      batch_size=250, scheduler="plateau", plateau_metric="test_loss", plateau_mode="max",
                      plateau_patience=0, plateau_factor=0.5, switch_to_sgd=3, switch_lr=0.05,
                      switch_momentum=0.9)
    train(cfg, tmp_path)
    log = read_log(tmp_path / "log.csv")
    # mode max on a falling test loss: no improvement after epoch 1, patience 0 -> halves
    assert [r["lr"] for r in log[1:4]] == pytest.approx([1e-3, 1e-3, 5e-4])
    assert log[4]["lr"] == pytest.approx(0.05)  # the SGD learning rate after the switch
    assert load_checkpoint(tmp_path / "epoch_003.pt").meta["optimizer_type"] == "adabound"
    s = open_session(str(tmp_path / "epoch_004.pt"))
    assert s.optimizer.type == "sgd" and s.optimizer.momentum == 0.9
    s2 = open_session(str(tmp_path / "epoch_001.pt"))
    assert s2.optimizer.type == "adabound" and float(s2.optimizer.hyper["final_lr"]) == 0.1
