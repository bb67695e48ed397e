"""The Objective against a plain PyTorch loop, with unequal batches; the caller's model untouched."""

import copy

import pytest
import torch
from cases import CASES, dense_hessian, objective_for
from torch import nn

from landscape.objective import Objective


def _plain(model, x, y, loss):
    """Reference: the whole set in one forward pass with PyTorch's own loss modules."""
    model = copy.deepcopy(model).double().eval()
    x = x.double()
    out = model(x)
    if loss == "ce":
        value = nn.CrossEntropyLoss()(out, y)
    else:
        value = nn.MSELoss()(out, nn.functional.one_hot(y, out.shape[1]).double())
    grads = torch.autograd.grad(value, list(model.parameters()))
    acc = (out.argmax(1) == y).double().mean()
    return value.item(), acc.item(), torch.cat([g.reshape(-1) for g in grads])


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("batch_size", [5, 8, 1000])
def test_loss_grad_match_plain_pytorch(case, loss, batch_size):
    model, x, y = CASES[case]()
    obj = Objective(model, x, y, loss=loss, batch_size=batch_size, dtype=torch.float64)
    ref_loss, ref_acc, ref_grad = _plain(model, x, y, loss)
    ev = obj.evaluate()
    assert ev.loss == pytest.approx(ref_loss, rel=1e-12)
    assert ev.acc == pytest.approx(ref_acc)
    value, g = obj.value_and_grad()
    assert value.item() == pytest.approx(ref_loss, rel=1e-12)
    assert torch.allclose(g, ref_grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method", ["fwd", "rev"])
def test_hvp_matches_dense_hessian(case, method):
    obj = objective_for(case, batch_size=6)
    H = dense_hessian(obj)
    v = torch.randn(obj.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(obj.hvp(v, method=method), H @ v, rtol=1e-9, atol=1e-12)
    assert obj.hvp_count == 1


def test_mse_sum_scale_is_c_over_2_times_mse():
    mse, half = objective_for("mlp_tanh", loss="mse"), objective_for("mlp_tanh", loss="mse-sum")
    classes = 3
    assert torch.allclose(dense_hessian(half), dense_hessian(mse) * classes / 2, rtol=1e-10)


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()}, model.training,
            [p.requires_grad for p in model.parameters()], [p.grad for p in model.parameters()])


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_caller_model_unchanged(bn_mode):
    model, x, y = CASES["bn_cnn"]()
    model.train()
    before = _snapshot(model)
    obj = Objective(model, x, y, batch_size=7, bn_mode=bn_mode)
    obj.evaluate()
    obj.value_and_grad()
    obj.hvp(torch.ones(obj.dim))
    after = _snapshot(model)
    assert after[1] is True and after[2] == before[2] and all(g is None for g in after[3])
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])


def test_bn_train_mode_uses_batch_statistics():
    model, x, y = CASES["bn_cnn"]()
    obj_eval = Objective(model, x, y, batch_size=1000, dtype=torch.float64)
    obj_train = Objective(model, x, y, batch_size=1000, bn_mode="train", dtype=torch.float64)
    ref = copy.deepcopy(model).double().train()
    out = ref(x.double())
    expect = nn.CrossEntropyLoss()(out, y).item()
    assert obj_train.loss() == pytest.approx(expect, rel=1e-12)
    assert obj_eval.loss() != pytest.approx(expect, rel=1e-6)


def test_determinism_check_catches_dropout_left_on():
    x, y = torch.randn(50, 6), torch.randint(0, 3, (50,))

    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)

        def forward(self, inp):
            return self.fc(nn.functional.dropout(inp, 0.5, training=True))

    assert Objective(nn.Linear(6, 3), x, y).check_determinism()
    assert not Objective(Noisy(), x, y).check_determinism()


def test_test_split_shares_model():
    model, x, y = CASES["mlp_relu"]()
    obj = Objective(model, x, y, batch_size=4)
    other = obj.with_data(x[:10], y[:10])
    assert other.n == 10 and obj.n == len(y) and other.model is obj.model
