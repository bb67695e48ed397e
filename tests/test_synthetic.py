"""Wilson et al. 2017 §3.3: the generator follows the paper's definition, the closed forms behave
as the paper proves, and `landscape train` reproduces the claim (full batch, from zero)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape.data import load_data
from landscape.errors import SpecError
from landscape.synthetic import (
    adaptive_limit,
    load_wilson2017,
    min_norm_solution,
    signs_pm,
    wilson2017,
    wilson2017_features,
)


def test_features_follow_the_papers_definition() -> None:
    rng = np.random.default_rng(3)
    y = np.where(rng.random(40) < 0.6, 1, -1)
    x = wilson2017_features(y)
    n = len(y)
    assert x.shape == (n, 6 * n)
    for i in range(n):  # 1-based: x_i1 = y_i, x_i2 = x_i3 = 1, ones at 4+5(i-1) .. 4+5(i-1)+2(1-y_i)
        expected = np.zeros(6 * n)
        expected[0] = y[i]
        expected[1] = expected[2] = 1
        first = 4 + 5 * i - 1  # 0-based column of 1-based index 4 + 5((i+1) - 1)
        expected[first:first + 2 * (1 - y[i]) + 1] = 1
        np.testing.assert_array_equal(x[i], expected)
    unique = x[:, 3:]
    assert (unique.sum(axis=0) <= 1).all()  # every unique feature belongs to one point only
    np.testing.assert_array_equal(unique.sum(axis=1), np.where(y > 0, 1, 5))


def test_label_frequency_and_split() -> None:
    xtr, ytr, xte, yte = wilson2017(n=3000, n_test=1000, p=0.6, seed=1)
    frac = ytr.mean()
    assert abs(frac - 0.6) < 4 * np.sqrt(0.6 * 0.4 / 3000)
    assert xtr.shape == (3000, 24000) and xte.shape == (1000, 24000)
    # test points' unique features are never on in the training set (new data, as in the paper)
    assert not ((xtr[:, 3:].sum(axis=0) > 0) & (xte[:, 3:].sum(axis=0) > 0)).any()
    np.testing.assert_array_equal(xtr[:, 0], signs_pm(ytr))


def test_closed_forms_adaptive_predicts_all_positive_min_norm_is_perfect() -> None:
    xtr, ytr, xte, yte = load_wilson2017(None)  # defaults: n = test = 200, p = 0.6, seed 0
    y = signs_pm(ytr)
    assert y.sum() > 0
    s = np.sign(xtr.T @ y)
    np.testing.assert_allclose(xtr @ s, 4 * y)  # the lemma's condition, c = 4
    w_ada = adaptive_limit(xtr, y)
    np.testing.assert_allclose(xtr @ w_ada, y, atol=1e-12)  # interpolates
    assert (xte @ w_ada > 0).all()  # τ(y + 2) > 0: every new point labelled positive
    w_gd = min_norm_solution(xtr, y)
    np.testing.assert_allclose(xtr @ w_gd, y, atol=1e-9)
    assert (np.sign(xte @ w_gd) == signs_pm(yte)).all()


def test_data_spec_and_errors() -> None:
    ds = load_data("wilson2017:n=30,test=10,p=0.7,seed=2")
    assert ds.x_train.shape == (30, 240) and ds.num_classes == 2
    with pytest.raises(SpecError, match="unknown option"):
        load_data("wilson2017:m=3")
    with pytest.raises(SpecError, match="p=0.4"):
        load_data("wilson2017:p=0.4")


@pytest.mark.parametrize("name,lr", [("sgd", 0.2), ("adam", 0.01), ("amsgrad", 0.01), ("adagrad", 0.1),
                                     ("rmsprop", 0.01), ("adabound", 0.01)])
def test_full_batch_limits_from_zero(name: str, lr: float) -> None:
    """The paper's least squares, full batch from w = 0: GD → minimum-norm interpolant, the
    adaptive methods → ∝ sign(Xᵀy) (cosine > 0.9999 after 150 steps)."""
    from landscape.losses import mean_loss
    from landscape.optim import OptimizerConfig, make_optimizer
    from landscape.synthetic import TiedLinear

    xtr, ytr, xte, yte = wilson2017(n=60, n_test=60, p=0.6, seed=1)
    y = signs_pm(ytr)
    x, t = torch.tensor(xtr, dtype=torch.float64), torch.tensor(ytr)
    model = TiedLinear(x.shape[1]).double()
    opt = make_optimizer(model.parameters(), OptimizerConfig(name=name, lr=lr))
    for _ in range(150):
        opt.zero_grad()
        mean_loss("mse-sum", model(x), t).backward()
        opt.step()
    w = model.weight.detach().numpy()
    ref = (min_norm_solution(xtr, y) if name == "sgd" else adaptive_limit(xtr, y)) / 2  # targets y/2
    assert w @ ref / (np.linalg.norm(w) * np.linalg.norm(ref)) > 0.9999
    assert (np.sign(xtr @ w) == y).all()
    test_pred = np.sign(xte @ w)
    if name == "sgd":
        assert (test_pred == signs_pm(yte)).all()
    else:
        assert (test_pred > 0).all()


def test_landscape_train_reproduces_the_claim(tmp_path) -> None:
    """Through `landscape train` (data spec, model factory, log): Adam fits the training set and
    labels every test point positive; SGD generalises."""
    from landscape.train import TrainConfig, read_log, train

    spec = "wilson2017:n=60,test=60,p=0.6,seed=1"
    frac_pos = (wilson2017(n=60, n_test=60, p=0.6, seed=1)[3] == 1).mean()
    for optimizer, lr in (("adam", 0.01), ("sgd", 0.2)):
        cfg = TrainConfig(model="landscape.synthetic:wilson_linear_720", data=spec, loss="mse-sum",
                          optimizer=optimizer, lr=lr, epochs=60, batch_size=60, save_every=60)
        train(cfg, tmp_path / optimizer)
        last = read_log(tmp_path / optimizer / "log.csv")[-1]
        assert last["train_acc"] == 1.0
        assert last["test_acc"] == (1.0 if optimizer == "sgd" else pytest.approx(frac_pos))
