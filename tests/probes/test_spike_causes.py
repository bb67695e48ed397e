"""Spike probe: non-landscape causes (BN statistics, CE overconfidence, logging, period-2, slingshot)."""

from __future__ import annotations

import pytest
import torch

from landscape.objective import Objective
from landscape.probes.spike_causes import (
    alternating,
    bn_statistics_verdict,
    last_layer_weight,
    logging_verdict,
    oscillation_verdict,
    overconfidence_verdict,
    per_example,
    recompute_bn_statistics,
    slingshot_verdict,
    top_share,
)
from landscape.probes.spikes import HYPOTHESES
from tests.cases import make_data, tiny_bn_cnn


def _bn_setup():
    model = tiny_bn_cnn()
    x_tr, y_tr = make_data(29, (1, 5, 5), seed=0)
    x_te, y_te = make_data(23, (1, 5, 5), seed=1)
    train = Objective(model, x_tr, y_tr, batch_size=64, dtype=torch.float64)
    test = Objective(model, x_te, y_te, batch_size=64, dtype=torch.float64)
    return model, train, test, x_tr


def test_recompute_matches_the_bn_input_statistics() -> None:
    model, train, _, x_tr = _bn_setup()
    stats = recompute_bn_statistics(model, train)
    conv_out = model.double().conv(x_tr.double()).detach()
    assert torch.allclose(stats["bn.running_mean"], conv_out.mean(dim=(0, 2, 3)), atol=1e-10)
    assert torch.allclose(stats["bn.running_var"], conv_out.var(dim=(0, 2, 3), unbiased=True), atol=1e-10)


def test_bn_recompute_removes_a_planted_spike() -> None:
    model, train, test, _ = _bn_setup()
    baseline = test.with_buffers(recompute_bn_statistics(model, train)).evaluate().loss
    with torch.no_grad():  # plant the spike: running statistics that lag far behind the weights
        model.bn.running_mean.sub_(1.0)
        model.bn.running_var.mul_(1e-3)
    saved = model.bn.running_var.clone()
    train_c = Objective(model, train.x, train.y, dtype=torch.float64)
    test_c = Objective(model, test.x, test.y, dtype=torch.float64)
    spike = test_c.evaluate().loss
    assert spike > 1.2 * baseline
    recomputed = test_c.with_buffers(recompute_bn_statistics(model, train_c)).evaluate().loss
    assert recomputed == pytest.approx(baseline, rel=1e-10)
    assert torch.equal(model.bn.running_var, saved)  # the caller's model is untouched
    v = bn_statistics_verdict(epoch=5, spike_loss=spike, baseline=baseline, recomputed_loss=recomputed)
    assert v.status == "supported" and v.numbers["share_removed"] == pytest.approx(1.0, abs=1e-8)
    still = bn_statistics_verdict(epoch=5, spike_loss=spike, baseline=baseline, recomputed_loss=spike * 0.98)
    assert still.status == "not supported"


def test_per_example_and_top_share() -> None:
    _, _, test, _ = _bn_setup()
    pe = per_example(test)
    assert float(pe["loss"].sum()) / test.n == pytest.approx(test.evaluate().loss, rel=1e-10)
    losses = torch.tensor([10.0] + [0.1] * 99, dtype=torch.float64)
    assert top_share(losses) == pytest.approx(10.0 / 19.9)
    assert last_layer_weight(tiny_bn_cnn().state_dict()) == "fc.weight"


def test_overconfidence_verdicts() -> None:
    before = {"test_loss": 0.3, "test_error": 0.05, "top1_share": 0.1, "logit_norm": 5.0}
    at = {"test_loss": 0.9, "test_error": 0.055, "top1_share": 0.45, "logit_norm": 9.0}
    assert overconfidence_verdict(epoch=3, loss_name="ce", before=before, at=at).status == "supported"
    worse = {**at, "test_error": 0.2}
    assert overconfidence_verdict(epoch=3, loss_name="ce", before=before, at=worse).status == "not supported"
    spread = {**at, "top1_share": 0.05, "logit_norm": 4.0}
    assert overconfidence_verdict(epoch=3, loss_name="ce", before=before, at=spread).status == "not supported"
    assert overconfidence_verdict(epoch=3, loss_name="mse", before={}, at={}).status == "not supported"


def test_logging_verdicts() -> None:
    assert logging_verdict(epoch=4, logged_train=0.2, evaluated_train=0.9, evaluated_before=0.18).status == "supported"
    assert logging_verdict(epoch=4, logged_train=0.2, evaluated_train=0.21, evaluated_before=0.19).status == "not supported"
    assert logging_verdict(epoch=4, logged_train=None, evaluated_train=0.2, evaluated_before=0.2).status == "not measured"


def test_period2_and_slingshot_verdicts() -> None:
    assert alternating([1.0, -0.8, 0.9], [2.0, 2.0, 2.0])
    assert not alternating([1.0, 0.8, -0.9], [2.0, 2.0, 2.0])
    assert not alternating([0.01, -0.01], [2.0, 2.0])  # negligible projections
    assert oscillation_verdict(epoch=7, projections=[0.5, -0.4, 0.6], norms=[1, 1, 1]).status == "supported"
    assert oscillation_verdict(epoch=7, projections=[0.5, 0.4], norms=[1, 1]).status == "not supported"
    grow = {"before": 10.0, "at": 12.0, "after": 12.5}
    assert slingshot_verdict(epoch=2, norms=grow, adaptive=True).status == "supported"
    assert slingshot_verdict(epoch=2, norms=grow, adaptive=False).status == "inconclusive"
    assert slingshot_verdict(epoch=2, norms={"before": 10.0, "at": 10.1}, adaptive=True).status == "not supported"


def test_registered() -> None:
    assert {"bn_statistics", "ce_overconfidence", "logging_artefact", "period2_oscillation",
            "last_layer_norm"} <= set(HYPOTHESES)
