"""2-D toy surfaces: closed-form gradients vs autograd, the basin-waterfall flip at the predicted
learning rate, per-step stability ratios, the CLI and the report section."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from landscape.errors import SpecError
from landscape.optim import OptimizerConfig
from landscape.toy import (
    SURFACES,
    adam_first_step_crossing,
    first_step,
    first_step_crossing,
    make_surface,
    run_trajectory,
    sgd_first_step_crossing,
)


@pytest.mark.parametrize("name", sorted(SURFACES))
def test_closed_form_gradients_match_autograd(name: str) -> None:
    s = make_surface(name)
    x0, x1, y0, y1 = s.domain
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(50, 2, generator=gen, dtype=torch.float64)
    pts = torch.stack((x0 + (x1 - x0) * pts[:, 0], y0 + (y1 - y0) * pts[:, 1]), dim=1).requires_grad_(True)
    (auto,) = torch.autograd.grad(s.value(pts).sum(), pts)
    torch.testing.assert_close(s.grad(pts.detach()), auto, rtol=1e-10, atol=1e-12)
    p = pts[7].detach()
    torch.testing.assert_close(s.hessian(p), torch.func.hessian(s.value)(p), rtol=1e-10, atol=1e-12)


def test_minima_and_parameters() -> None:
    r = make_surface("rosenbrock:a=2,b=10")
    assert r.minimum == (2.0, 4.0)
    m = torch.tensor(r.minimum, dtype=torch.float64)
    assert float(r.value(m)) == 0.0 and float(r.grad(m).norm()) == 0.0
    b = make_surface("beale")
    assert float(b.grad(torch.tensor([3.0, 0.5], dtype=torch.float64)).norm()) < 1e-12
    with pytest.raises(SpecError, match="no parameter"):
        make_surface("quadratic:l3=2")
    with pytest.raises(SpecError, match="unknown surface"):
        make_surface("himmelblau")


def test_basin_first_step_flips_at_the_predicted_lr() -> None:
    """Adam's first step −η g/(|g| + ε) crosses the crest exactly at the closed-form η*; SGD's
    (−η g) needs an η eight times larger; at η just above Adam's η* Adam escapes over the
    waterfall and SGD stays in the basin, just below it Adam stays too."""
    s = make_surface("basin")
    rc = s.crest_radius()
    eta_adam, eta_sgd = adam_first_step_crossing(s), sgd_first_step_crossing(s)
    assert eta_adam == pytest.approx(first_step_crossing(s, OptimizerConfig(name="adam", lr=1.0)), rel=1e-8)
    assert eta_sgd == pytest.approx(first_step_crossing(s, OptimizerConfig(name="sgd", lr=1.0)), rel=1e-8)
    assert eta_sgd > 5 * eta_adam
    for factor, beyond in ((1 - 1e-6, False), (1 + 1e-6, True)):
        theta1 = first_step(s, OptimizerConfig(name="adam", lr=factor * eta_adam), s.start)
        assert (float(theta1.norm()) > rc) is beyond
    above = run_trajectory(s, OptimizerConfig(name="adam", lr=1.001 * eta_adam), steps=60)
    below = run_trajectory(s, OptimizerConfig(name="adam", lr=0.99 * eta_adam), steps=60)
    sgd = run_trajectory(s, OptimizerConfig(name="sgd", lr=1.001 * eta_adam), steps=60)
    assert above.first_step_crossed and above.escaped
    assert not below.first_step_crossed and not below.escaped
    assert not sgd.first_step_crossed and not sgd.escaped
    assert max(sgd.ratio) < 1  # SGD at that η is inside its edge of stability in the basin


def test_adabound_upper_bound_caps_the_first_step_on_the_basin() -> None:
    """AdaBound's first step is clipped to U(1 − β₁)|g| ≈ 10|g| per coordinate (U = 100.1):
    with the default basin that never reaches the crest, whatever η."""
    s = make_surface("basin")
    assert first_step_crossing(s, OptimizerConfig(name="adabound", lr=1.0)) is None
    theta1 = first_step(s, OptimizerConfig(name="adabound", lr=50.0), s.start)
    g = s.grad(torch.tensor(s.start, dtype=torch.float64))
    torch.testing.assert_close(theta1, torch.tensor(s.start, dtype=torch.float64) - 100.1 * 0.1 * g)


def test_stability_ratio_on_the_quadratic() -> None:
    """SGD on ½(l1 x² + l2 y²): ratio = η·l2/2 at every step; it diverges just above 1."""
    s = make_surface("quadratic:l1=1,l2=100")
    for lr, diverges in ((2.04 / 100, True), (1.96 / 100, False)):
        t = run_trajectory(s, OptimizerConfig(name="sgd", lr=lr), steps=200)
        assert t.ratio[0] == pytest.approx(lr * 100 / 2)
        assert (abs(t.points[-1][1]) > 1.0) is diverges
    adam = run_trajectory(s, OptimizerConfig(name="adam", lr=0.05), steps=20)
    assert all(r == r for r in adam.ratio) and len(adam.ratio) == 20


def test_cli_json_and_html(tmp_path) -> None:
    from landscape.cli import main
    from landscape.report import build_report

    out = tmp_path / "toy.json"
    res = CliRunner().invoke(main, ["toy", "basin", "--optimizer", "adam", "--optimizer", "sgd", "--lr", "2.1",
                                    "--steps", "20", "--grid", "31", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "escaped" in res.output and "trapped in the basin" in res.output
    d = json.loads(out.read_text())
    assert d["kind"] == "toy" and len(d["trajectories"]) == 2 and len(d["grid_z"]) == 31
    assert d["trajectories"][0]["escaped"] is True and d["trajectories"][1]["escaped"] is False
    report = build_report(str(out))
    assert [f.name for _, f in report.figures] == ["toy-contour", "toy-surface", "toy-stability"]
    bad = CliRunner().invoke(main, ["toy", "saddle", "--lr", "0.1", "--start", "1"])
    assert bad.exit_code == 1 and "expected two numbers" in bad.output
