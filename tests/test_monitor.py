"""landscape.Monitor inside a hand-written training loop: spike checkpoints, sharpness against dense
float64 Hessians (SGD: H; Adam: P⁻¹H), and the guarantee that it never changes the training."""

import json
import math

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape import Monitor
from landscape.cli import main
from landscape.data import load_data
from landscape.errors import LandscapeError, SpecError
from landscape.hessian.tracking import read_sharpness
from landscape.models import build_model
from landscape.params import ParamSpace

SPEC = "mlp:hidden=8,act=tanh"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    ds = load_data("digits")
    return ds.x_train[:240], ds.y_train[:240], ds.x_test[:200], ds.y_test[:200], ds


def _model(ds, seed=0):
    torch.manual_seed(seed)
    return build_model(SPEC, num_classes=ds.num_classes, input_shape=ds.input_shape)


def _dense_hessian(model, x, y):
    """torch.func.hessian of PyTorch's own mean cross-entropy over (x, y), float64."""
    model = model.double()
    space = ParamSpace.from_model(model)
    theta = space.flatten(dict(model.named_parameters())).detach()

    def f(t):
        return nn.functional.cross_entropy(torch.func.functional_call(model, space.unflatten(t), (x.double(),)), y)

    return torch.func.hessian(f)(theta), space


def _loop(model, opt, loader, epochs, *, mon=None, snap_at=(), spike_at=None, x_test=None, y_test=None,
          dropout_rng=False):
    """A user's plain training loop; returns the weights/optimizer state at the steps in snap_at."""
    crit = nn.CrossEntropyLoss()
    snaps, step = {}, 0
    for epoch in range(epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = crit(model(xb), yb)
            loss.backward()
            opt.step()
            step += 1
            if mon is not None:
                mon.step(loss=loss.item())
            if step in snap_at:
                snaps[step] = ({k: v.clone() for k, v in model.state_dict().items()},
                               {k: {n: t.clone() for n, t in s.items()} for k, s in opt.state_dict()["state"].items()})
        if mon is not None:
            model.eval()
            with torch.no_grad():
                tl = float(crit(model(x_test), y_test))
            mon.epoch(epoch, test_loss=tl * (10.0 if epoch == spike_at else 1.0))
    return snaps


def test_hand_written_loop_keeps_spike_checkpoints_and_tracks_exact_sharpness(tmp_path, digits):
    x, y, xt, yt, ds = digits
    model = _model(ds)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(TensorDataset(x, y), batch_size=40, shuffle=True, generator=torch.Generator().manual_seed(1))
    out = tmp_path / "run"
    # keep=1: the epoch before a spike stays in memory, so epoch_{k-1,k,k+1}.pt are written
    # the registry spec is recognised (build_model tags the model); only the data spec is passed
    mon = Monitor(model, opt, train=loader, loss=nn.CrossEntropyLoss(), out=out, every=12, subset=96, keep=1,
                  data="digits")
    k = 6
    snaps = _loop(model, opt, loader, 9, mon=mon, snap_at=(12,), spike_at=k, x_test=xt, y_test=yt)
    mon.close()
    assert sorted(p.name for p in out.glob("*.pt")) == [f"epoch_{e:03d}.pt" for e in (k - 1, k, k + 1)]
    assert [s["epoch"] for s in json.loads((out / "spikes.json").read_text())] == [k]
    ck = torch.load(out / f"epoch_{k:03d}.pt", weights_only=True)
    assert ck["epoch"] == k and ck["step"] == (k + 1) * 6 and ck["landscape"]["loss"] == "ce"
    assert ck["landscape"]["model"]["spec"] == SPEC and ck["landscape"]["optimizer_type"] == "sgd"
    log = (out / "log.csv").read_text().splitlines()
    assert log[0] == "epoch,step,train_loss,train_acc,test_loss,test_acc,lr" and len(log) == 10
    # sharpness.csv at step 12 equals a dense float64 Hessian of the same subset at those weights
    cols = read_sharpness(out / "sharpness.csv")
    assert cols["step"][:2] == [1.0, 12.0]
    ref = _model(ds)
    ref.load_state_dict(snaps[12][0])
    H, _ = _dense_hessian(ref, *mon.subset)
    assert cols["lambda_max"][1] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-3)
    assert cols["threshold"][1] == pytest.approx((2 + 2 * 0.9) / 0.05)
    # later commands read the folder without model/data flags
    res = CliRunner().invoke(main, ["probe", "spikes", str(out), "--subset", "100", "--points", "3", "--no-hessian",
                                    "--json", str(tmp_path / "spikes_probe.json")])
    assert res.exit_code == 0, res.output
    probe = json.loads((tmp_path / "spikes_probe.json").read_text())
    assert [s["epoch"] for s in probe["spikes"]] == [k]


def test_adam_preconditioned_sharpness_matches_dense_p_inverse_h(tmp_path, digits):
    x, y, xt, yt, ds = digits
    model = _model(ds, seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(x, y), batch_size=60)
    mon = Monitor(model, opt, train=loader, loss="ce", out=tmp_path, every=5, subset=80, spikes=False)
    snaps = _loop(model, opt, loader, 2, mon=mon, snap_at=(5,), x_test=xt, y_test=yt)
    weights, state = snaps[5]
    ref = _model(ds)
    ref.load_state_dict(weights)
    H, space = _dense_hessian(ref, *mon.subset)
    b1, b2 = opt.param_groups[0]["betas"]
    eps = opt.param_groups[0]["eps"]
    P = []
    for i in range(len(space.names)):
        t = float(state[i]["step"])
        v = state[i]["exp_avg_sq"].double().reshape(-1)
        P.append((1 - b1 ** t) * (torch.sqrt(v / (1 - b2 ** t)) + eps))
    d = torch.cat(P).rsqrt()
    lam_pre = float(torch.linalg.eigvalsh(d[:, None] * H * d[None, :])[-1])
    cols = read_sharpness(tmp_path / "sharpness.csv")
    assert cols["step"][1] == 5.0
    assert cols["preconditioned_lambda_max"][1] == pytest.approx(lam_pre, rel=1e-3)
    assert cols["threshold"][1] == pytest.approx((2 + 2 * b1) / ((1 - b1) * 0.01))
    assert cols["lambda_max"][1] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-3)


class DropNet(nn.Module):
    """Dropout and BatchNorm: training draws random numbers and updates buffers every step."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(16, 10))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_monitor_never_changes_training(tmp_path, digits, opt_name):
    x, y, xt, yt, _ = digits

    def run(with_monitor):
        torch.manual_seed(5)
        model = DropNet()
        opt = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt_name == "sgd"
               else torch.optim.Adam(model.parameters(), lr=0.01))
        loader = DataLoader(TensorDataset(x, y), batch_size=48, shuffle=True)  # draws from the global RNG
        mon = Monitor(model, opt, train=loader, out=tmp_path / str(with_monitor), every=2, subset=64,
                      test=(xt, yt)) if with_monitor else None
        crit = nn.CrossEntropyLoss()
        grads = []
        for epoch in range(2):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = crit(model(xb), yb)
                loss.backward()
                before = [p.grad.clone() for p in model.parameters()]
                opt.step()
                if mon is not None:
                    mon.step(loss=loss.item())
                grads.append(all(torch.equal(a, p.grad) for a, p in zip(before, model.parameters())))
            if mon is not None:
                mon.epoch(epoch)
        return model.state_dict(), opt.state_dict()["state"], torch.get_rng_state(), all(grads), mon

    plain, watched = run(False), run(True)
    assert all(torch.equal(plain[0][k], watched[0][k]) for k in plain[0])  # weights and BN buffers
    assert all(torch.equal(plain[1][i][n], watched[1][i][n]) for i in plain[1] for n in plain[1][i]
               if isinstance(plain[1][i][n], torch.Tensor))
    assert torch.equal(plain[2], watched[2]) and watched[3]
    mon = watched[4]
    from landscape.objective import Objective

    final = Objective(mon.model, xt, yt).evaluate()  # the cached test objective follows weights and BN buffers
    assert mon.history[-1]["test_loss"] == pytest.approx(final.loss, rel=1e-6)
    assert mon.history[-1]["test_acc"] == final.acc
    assert [r["step"] for r in mon.sharpness_rows] == [1, 2, 4, 6, 8, 10] and all(math.isfinite(r["lambda_max"]) for r in mon.sharpness_rows)
    assert [r["epoch"] for r in mon.history] == [0, 1] and all(0 <= r["test_acc"] <= 1 for r in mon.history)


def test_monitor_refuses_bad_arguments(tmp_path, digits):
    x, y, *_ = digits
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(SpecError, match="train="):
        Monitor(model, opt, out=tmp_path)
    with pytest.raises(SpecError, match="subset"):
        Monitor(model, opt, train=(x, y), out=tmp_path, subset=0)
    with pytest.raises(SpecError, match="every"):
        Monitor(model, opt, train=(x, y), out=tmp_path, every=-1)
    with pytest.raises(SpecError, match="optimizer"):
        Monitor(model, model, train=(x, y), out=tmp_path)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(SpecError, match="tensorboard package"):
            Monitor(model, opt, train=(x, y), out=tmp_path, every=0, tensorboard=tmp_path / "tb")
    mon = Monitor(model, opt, out=tmp_path, every=0)
    mon.close()
    with pytest.raises(LandscapeError, match="closed"):
        mon.step()


def test_wrapped_models_are_unwrapped(tmp_path, digits):
    x, y, *_ = digits
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = Monitor(nn.DataParallel(model), opt, train=(x, y), out=tmp_path, every=0)
    assert mon.model is model and set(mon.payload()["model_state_dict"]) == {"1.weight", "1.bias"}


def test_an_existing_run_is_refused_or_replaced(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    Monitor(model, opt, out=tmp_path, every=0).save()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LandscapeError, match="already holds a run"):
        Monitor(model, opt, out=tmp_path, every=0)
    assert (tmp_path / "epoch_000.pt").exists()
    Monitor(model, opt, out=tmp_path, every=0, existing="overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "notes.txt"]
