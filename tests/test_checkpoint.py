"""Every checkpoint format, prefix, optimizer family and the optimizer-state mapping."""

import pytest
import torch
from safetensors.torch import save_file

from landscape.checkpoint import (
    infer_optimizer_type,
    load_checkpoint,
    load_into,
    map_optimizer_state,
)
from landscape.errors import CheckpointError
from landscape.models import build_model
from landscape.params import ParamSpace


def _model():
    torch.manual_seed(0)
    return build_model("cnn", num_classes=10, input_shape=(1, 8, 8), width=0.25)


def _stepped(opt_cls, model, **kw):
    opt = opt_cls(model.parameters(), lr=0.01, **kw)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    opt.step()
    return opt


def _same(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", "net", "module", "weights"])
def test_wrapped_state_dicts(tmp_path, key):
    m = _model()
    p = tmp_path / "ck.pt"
    torch.save({key: m.state_dict(), "epoch": 7}, p)
    ck = load_checkpoint(p)
    _same(ck.state_dict, m.state_dict())
    assert ck.epoch == 7


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_prefixes_stripped(tmp_path, prefix):
    m = _model()
    p = tmp_path / "epoch_012.pt"
    torch.save({prefix + k: v for k, v in m.state_dict().items()}, p)
    ck = load_checkpoint(p)
    _same(ck.state_dict, m.state_dict())
    assert ck.epoch == 12 and ck.format == "state_dict"


def test_safetensors(tmp_path):
    m = _model()
    p = tmp_path / "w_step_300.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(p), metadata={"epoch": "3"})
    ck = load_checkpoint(p)
    _same(ck.state_dict, m.state_dict())
    assert ck.epoch == 3 and ck.step == 300 and ck.format == "safetensors"


def test_pickled_module_needs_trust(tmp_path):
    m = _model()
    p = tmp_path / "whole.pt"
    torch.save(m, p)
    with pytest.raises(CheckpointError, match="pass trust$"):
        load_checkpoint(p)
    ck = load_checkpoint(p, trust=True)
    assert ck.module is not None and ck.format == "module"
    _same(ck.state_dict, m.state_dict())


@pytest.mark.parametrize("key", ["optimizer", "optimizer_state_dict", "optim"])
@pytest.mark.parametrize("cls,kw,expect", [
    (torch.optim.SGD, {}, "sgd"),
    (torch.optim.SGD, {"momentum": 0.9}, "sgd"),
    (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}, "sgd"),
    (torch.optim.Adam, {"weight_decay": 5e-4}, "adam"),
    (torch.optim.Adam, {"amsgrad": True}, "adam"),
    (torch.optim.AdamW, {}, "adamw"),
    (torch.optim.RMSprop, {"momentum": 0.9, "centered": True}, "rmsprop"),
    (torch.optim.Adagrad, {}, "adagrad"),
    (torch.optim.Adadelta, {}, "adadelta"),
    (torch.optim.RAdam, {}, "radam"),
    (torch.optim.NAdam, {}, "nadam"),
])
def test_optimizer_state_mapping(tmp_path, key, cls, kw, expect):
    m = _model()
    opt = _stepped(cls, m, **kw)
    p = tmp_path / "ck.pt"
    torch.save({"model_state_dict": m.state_dict(), key: opt.state_dict()}, p)
    ck = load_checkpoint(p)
    space = ParamSpace.from_model(m)
    state = map_optimizer_state(ck.optimizer_raw, space)
    assert state.type == expect
    assert state.lr == 0.01
    if "momentum" in kw:
        assert state.momentum == 0.9
    assert state.nesterov == kw.get("nesterov", False)
    assert state.amsgrad == kw.get("amsgrad", False)
    names = [n for n, _ in m.named_parameters()]
    for name, param in zip(names, m.parameters()):
        for buf, value in opt.state[param].items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                assert torch.equal(state.buffers[name][buf], value), (name, buf)
    if expect in ("adam", "adamw"):
        assert state.step == 1 and state.betas == (0.9, 0.999)
        if kw.get("amsgrad"):
            assert "max_exp_avg_sq" in state.buffers[names[0]]


def test_empty_state_inferred_from_groups():
    m = _model()
    for cls, expect in [(torch.optim.Adam, "adam"), (torch.optim.SGD, "sgd"), (torch.optim.Adagrad, "adagrad")]:
        sd = cls(m.parameters(), lr=0.1).state_dict()
        assert infer_optimizer_type(sd)[0] == expect


def test_optimizer_mapping_mismatch_is_an_error():
    m = _model()
    opt = _stepped(torch.optim.Adam, m)
    sd = opt.state_dict()
    other = build_model("cnn", num_classes=10, input_shape=(1, 8, 8), width=0.5)
    with pytest.raises(CheckpointError, match="shape"):
        map_optimizer_state(sd, ParamSpace.from_model(other))
    sd["param_groups"][0]["params"] = sd["param_groups"][0]["params"][:-1]
    with pytest.raises(CheckpointError, match="covers"):
        map_optimizer_state(sd, ParamSpace.from_model(m))


def test_key_mismatch_lists_missing_unexpected_misshaped():
    m = _model()
    sd = dict(m.state_dict())
    sd.pop("classifier.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["classifier.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as exc:
        load_into(_model(), sd, where="x.pt")
    msg = str(exc.value)
    assert "missing: classifier.bias" in msg and "unexpected: extra.weight" in msg and "mis-shaped: classifier.weight" in msg
    assert "\n" not in msg


def test_bad_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    good = tmp_path / "good.pt"
    torch.save(_model().state_dict(), good)
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(trunc)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)
    lst = tmp_path / "list.pt"
    torch.save([1, 2, 3], lst)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(lst)


def test_nonfinite_weights_warn(tmp_path):
    m = _model()
    sd = m.state_dict()
    sd["classifier.weight"][0, 0] = float("nan")
    with pytest.warns(UserWarning, match="non-finite"):
        load_into(_model(), sd)
