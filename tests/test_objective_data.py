"""Bring your own data, loss and model: DataLoaders, criteria, callables and output_fn, plus the
one-line errors for data and models the Objective cannot measure."""

import pytest
import torch
import torch.nn.functional as F
from cases import CASES, dense_hessian, tiny_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape.errors import LandscapeError, SpecError
from landscape.objective import Objective

pytestmark = pytest.mark.usefixtures("one_thread")


def _loader(x, y, batch_size=8, **kw):
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, **kw)


@pytest.mark.parametrize("case, bn_mode", [("mlp_tanh", "eval"), ("bn_cnn", "train")])
def test_loader_objective_equals_tensor_objective(case, bn_mode):
    model, x, y = CASES[case]()
    ref = Objective(model, x, y, batch_size=8, bn_mode=bn_mode, dtype=torch.float64)
    obj = Objective(model, _loader(x, y), bn_mode=bn_mode, dtype=torch.float64)  # 37 or 29: uneven last batch
    assert obj.streamed and obj.n == ref.n
    assert obj.evaluate().loss == pytest.approx(ref.evaluate().loss, rel=1e-6, abs=1e-12)
    assert obj.evaluate().acc == ref.evaluate().acc
    v_ref, g_ref = ref.value_and_grad()
    v, g = obj.value_and_grad()
    assert abs(float(v - v_ref)) < 1e-6 and torch.allclose(g, g_ref, rtol=1e-6, atol=1e-10)
    u = torch.randn(obj.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(obj.hvp(u), ref.hvp(u), rtol=1e-6, atol=1e-10)
    # a plain list of batches is re-iterable too, and gathering the samples gives the tensors back
    listed = Objective(model, [(x[a:a + 10], y[a:a + 10]) for a in range(0, len(y), 10)], dtype=torch.float64)
    assert torch.equal(listed.y, y) and torch.allclose(listed.x, x.double())


def test_loader_batches_are_streamed_not_stored():
    model, x, y = CASES["mlp_tanh"]()
    obj = Objective(model, _loader(x, y, batch_size=10))
    assert obj._x is None and obj._stream._host is None
    obj.evaluate()
    obj.hvp(torch.ones(obj.dim))
    assert obj._stream._host is None  # nothing gathered unless an instrument asks for obj.x


def _ls_reference_hessian(model, x, y, smoothing):
    """torch.func.hessian of PyTorch's own CrossEntropyLoss(label_smoothing) over the whole set."""
    from landscape.params import ParamSpace

    model = model.double()
    space = ParamSpace.from_model(model)
    theta = space.flatten(dict(model.named_parameters())).detach()
    crit = nn.CrossEntropyLoss(label_smoothing=smoothing)

    def f(t):
        return crit(torch.func.functional_call(model, space.unflatten(t), (x.double(),)), y)

    return torch.func.hessian(f)(theta)


def test_label_smoothing_criterion_matches_dense_hessian():
    model, x, y = CASES["mlp_tanh"]()
    H = _ls_reference_hessian(tiny_mlp("tanh"), x, y, 0.1)
    obj = Objective(model, _loader(x, y, batch_size=6), loss=nn.CrossEntropyLoss(label_smoothing=0.1),
                    dtype=torch.float64)
    for j in range(0, obj.dim, 7):
        e = torch.zeros(obj.dim, dtype=torch.float64)
        e[j] = 1.0
        assert torch.allclose(obj.hvp(e), H[:, j], rtol=1e-9, atol=1e-12)
    assert not torch.allclose(H, dense_hessian(Objective(model, x, y, dtype=torch.float64)), atol=1e-4)


def test_callable_and_criterion_equal_the_names():
    model, x, y = CASES["mlp_relu"]()
    named = Objective(model, x, y, loss="ce", batch_size=5, dtype=torch.float64).evaluate().loss
    crit = Objective(model, x, y, loss=nn.CrossEntropyLoss(), batch_size=5, dtype=torch.float64).evaluate().loss
    fn = Objective(model, x, y, loss=lambda o, t: F.cross_entropy(o, t), batch_size=5,
                   dtype=torch.float64).evaluate().loss
    assert crit == pytest.approx(named, rel=1e-12) and fn == pytest.approx(named, rel=1e-12)
    # nn.MSELoss on one-hot float targets (mean over samples and classes) is the 'mse' name
    onehot = F.one_hot(y, 3).double()
    mse = Objective(model, x, onehot, loss=nn.MSELoss(), batch_size=5, dtype=torch.float64).evaluate()
    assert mse.loss == pytest.approx(Objective(model, x, y, loss="mse", batch_size=5,
                                               dtype=torch.float64).evaluate().loss, rel=1e-12)
    assert mse.acc == pytest.approx(Objective(model, x, y, dtype=torch.float64).evaluate().acc)


class DictNet(nn.Module):
    def __init__(self, as_tuple=False):
        super().__init__()
        self.body = tiny_mlp("tanh")
        self.as_tuple = as_tuple

    def forward(self, x):
        z = self.body(x)
        return (z, z.sum()) if self.as_tuple else {"feats": x, "scores": z}


def test_dict_and_tuple_models_with_output_fn():
    _, x, y = CASES["mlp_tanh"]()
    ref = Objective(tiny_mlp("tanh"), x, y, dtype=torch.float64)
    dict_model = DictNet()
    with pytest.raises(LandscapeError, match="output_fn"):
        Objective(dict_model, x, y)
    obj = Objective(dict_model, _loader(x, y), output_fn=lambda out: out["scores"], dtype=torch.float64)
    assert obj.evaluate().loss == pytest.approx(ref.evaluate().loss, rel=1e-12)
    u = torch.randn(obj.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(obj.hvp(u), ref.hvp(u), rtol=1e-9)
    tup = Objective(DictNet(as_tuple=True), x, y, dtype=torch.float64)  # default: the first tensor
    assert tup.evaluate().loss == pytest.approx(ref.evaluate().loss, rel=1e-12)


def test_shuffled_or_one_shot_data_is_refused():
    model, x, y = CASES["mlp_tanh"]()
    with pytest.raises(LandscapeError, match="not deterministic"):
        Objective(model, _loader(x, y, shuffle=True, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(SpecError, match="one-shot"):
        Objective(model, ((x[a:a + 8], y[a:a + 8]) for a in range(0, 37, 8)))

    class Augmenting:
        def __init__(self):
            self.calls = 0

        def __iter__(self):
            self.calls += 1
            # the first batch is the same on every pass; the second changes from pass 3 on
            yield x[:8], y[:8]
            yield x[8:] + (0.1 if self.calls > 2 else 0.0), y[8:]

    obj = Objective(model, Augmenting())
    with pytest.raises(LandscapeError, match="batch 1 on a second pass"):
        obj.evaluate()


@pytest.mark.parametrize("loss, match", [
    (nn.CrossEntropyLoss(reduction="sum"), "reduction='sum'"),
    (nn.CrossEntropyLoss(weight=torch.ones(3)), "class weights"),
    (lambda o, t: F.cross_entropy(o, t, reduction="sum"), "not a mean over the batch"),
    ("hinge", "unknown loss"),
])
def test_losses_that_cannot_be_split_over_batches_are_refused(loss, match):
    model, x, y = CASES["mlp_tanh"]()
    with pytest.raises(SpecError, match=match):
        Objective(model, x, y, loss=loss)


def test_one_line_errors_for_bad_models_and_data():
    model, x, y = CASES["mlp_tanh"]()
    frozen = tiny_mlp("tanh").requires_grad_(False)
    with pytest.raises(SpecError, match="no trainable parameters"):
        Objective(frozen, x, y)
    with pytest.raises(SpecError, match="empty"):
        Objective(model, x[:0], y[:0])
    with pytest.raises(SpecError, match="empty"):
        Objective(model, [])
    bad = y.clone()
    bad[5] = -100
    with pytest.raises(SpecError, match="-100.*silently ignore"):
        Objective(model, x, bad)
    bad[5] = 3
    with pytest.raises(SpecError, match="include 3 but the model has 3 outputs"):
        Objective(model, _loader(x, bad))
    with pytest.raises(SpecError, match="float.*integer class indices"):
        Objective(model, x, y.float(), loss="mse")
    xn = x.clone()
    xn[11, 2] = float("nan")
    with pytest.raises(SpecError, match="non-finite.*sample 3 of batch 1"):
        Objective(model, _loader(xn, y))
    with pytest.raises(SpecError, match="cannot run on this data"):
        Objective(model, torch.randn(5, 7), torch.zeros(5, dtype=torch.long))


def test_nonfinite_parameters_are_named_before_curvature():
    model, x, y = CASES["mlp_tanh"]()
    with torch.no_grad():
        model[2].weight[0, 0] = float("inf")
    obj = Objective(model, x, y)
    assert obj.evaluate().loss != obj.evaluate().loss  # the loss is allowed to be NaN
    with pytest.raises(LandscapeError, match="parameter '2.weight' holds 1 non-finite"):
        obj.hvp(torch.ones(obj.dim))
    with pytest.raises(LandscapeError, match="'2.weight'"):
        obj.grad()
    from landscape.hessian.operator import HessianOperator

    with pytest.raises(LandscapeError, match="'2.weight'"):
        HessianOperator(obj)


class DictBN(nn.Module):
    """The tiny BN-CNN returning a dict: the training-objective rebuild must keep output_fn and loss."""

    def __init__(self):
        super().__init__()
        from cases import tiny_bn_cnn

        self.inner = tiny_bn_cnn()

    def forward(self, x):
        return {"logits": self.inner(x)}


def test_curvature_verdict_keeps_the_users_loss_and_output():
    from landscape.hessian.verdict import curvature_verdict, training_objective

    _, x, y = CASES["bn_cnn"]()
    crit = nn.CrossEntropyLoss(label_smoothing=0.2)
    obj = Objective(DictBN(), _loader(x, y, batch_size=10), loss=crit, dtype=torch.float64)  # BN eval mode
    train_obj = training_objective(obj, batch_size=10)
    assert train_obj is not obj and train_obj.loss_fn is obj.loss_fn and train_obj.bn_mode == "train"
    ref = Objective(CASES["bn_cnn"]()[0], x, y, loss=crit, batch_size=10, bn_mode="train", dtype=torch.float64)
    assert train_obj.evaluate().loss == pytest.approx(ref.evaluate().loss, rel=1e-12)
    v = curvature_verdict(obj, None, lr=0.1, train_batch_size=10, tol=1e-6)
    # BatchNorm batch statistics over batches of 10: the dense reference column by column from the
    # tensor objective's products (dense_hessian would use one batch of all samples)
    H = torch.stack([ref.hvp(e) for e in torch.eye(ref.dim, dtype=torch.float64)], dim=1)
    lam = float(torch.linalg.eigvalsh((H + H.T) / 2)[-1])
    assert v.lambda_max == pytest.approx(lam, rel=1e-5)
