"""Architectures recognised from a state dict; checkpoints recognised by content; legacy files."""

import json

import pytest
import torch
from click.testing import CliRunner
from study_fixture import write_fake_cifar

from landscape.checkpoint import load_checkpoint
from landscape.cli import main
from landscape.errors import CheckpointError, SpecError
from landscape.models import ModelSpec, build_model, model_from_spec
from landscape.models.recognise import CANDIDATES, recognise
from landscape.session import open_session

pytestmark = pytest.mark.usefixtures("one_thread")

# Published / torchvision parameter counts with 10 classes (full width).
PARAMS = {"resnet18": 11_173_962, "tv_resnet18:stem=cifar": 11_173_962, "resnet20": 269_722,
          "resnet32": 464_154, "resnet56": 853_018, "densenet121": 6_956_298,
          "tv_vgg11_bn": 128_812_810, "resnet50": 23_520_842}


@pytest.mark.parametrize("cand", CANDIDATES, ids=lambda c: c.spec)
def test_full_width_round_trips_on_the_meta_device(cand):
    with torch.device("meta"):
        net = build_model(cand.spec, num_classes=10, input_shape=(3, 32, 32))
    r = recognise(net.state_dict())
    assert r.spec == cand.spec and r.width == 1.0 and r.num_classes == 10
    assert r.n_params == sum(p.numel() for p in net.parameters()) == PARAMS.get(cand.spec, r.n_params)


# Narrow versions (fast on the CPU) that are really evaluated: same parameter count and outputs.
NARROW = {"densenet121": 0.125, "tv_vgg19_bn": 0.0625, "resnet110": 0.25}


@pytest.mark.parametrize("cand", CANDIDATES, ids=lambda c: c.spec)
def test_narrow_models_round_trip_to_identical_outputs(cand):
    width = NARROW.get(cand.spec.split(":")[0], 0.125)
    torch.manual_seed(0)
    net = build_model(cand.spec, num_classes=7, input_shape=(3, 32, 32), width=width).eval()
    r = recognise(net.state_dict())
    assert (r.spec, r.num_classes, r.in_channels, r.width) == (cand.spec, 7, 3, width)
    rebuilt = model_from_spec(ModelSpec(r.spec, r.num_classes, (3, 32, 32), r.width)).eval()
    rebuilt.load_state_dict(net.state_dict())
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in net.parameters()) == r.n_params
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))


def test_mlp_and_a_foreign_state_dict():
    net = build_model("mlp:hidden=12-6", num_classes=10, input_shape=(1, 8, 8))
    r = recognise(net.state_dict())
    assert r.spec == "mlp:hidden=12-6" and r.in_features == 64 and "relu assumed" in r.notes[0]
    with pytest.raises(SpecError, match=r"closest: .*; pass model NAME"):
        recognise({"encoder.weight": torch.zeros(4, 3), "conv1.weight": torch.zeros(64, 3, 3, 3)})


def test_layouts_are_told_apart():
    """The study's ResNet18 (torchvision keys, CIFAR stem) is not landscape's resnet18 (pytorch-cifar
    keys), and the ImageNet stem is told from the CIFAR one by conv1's 7×7 kernel."""
    for spec, expect in (("tv_resnet18:stem=cifar", "CIFAR stem: 3×3 conv1, no max-pool"),
                         ("tv_resnet18:stem=imagenet", "ImageNet stem"), ("resnet18", "pytorch-cifar"),
                         ("densenet121", "DenseNet-121")):
        with torch.device("meta"):
            r = recognise(build_model(spec).state_dict())
        assert r.spec == spec and expect in r.description
    with torch.device("meta"):
        keys = build_model("densenet121").state_dict()
    assert "dense1.0.bn1.weight" in keys and "trans3.conv.weight" in keys and "linear.weight" in keys


def _small(seed=0):
    torch.manual_seed(seed)
    return build_model("resnet20", num_classes=10, width=0.25)


def test_weights_found_wherever_they_sit(tmp_path):
    net = _small()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    p = tmp_path / "ck.pt"
    torch.save({"net": net.state_dict(), "acc": 91.0, "epoch": 4, "my_opt": opt.state_dict()}, p)
    ck = load_checkpoint(p)
    assert ck.key == "net" and ck.epoch == 4 and ck.optimizer_raw is not None
    torch.save({"wrapper": {"weights_v2": net.state_dict()}, "sched": {"last_epoch": 3}}, p)
    assert load_checkpoint(p).key == "wrapper/weights_v2"


def test_several_candidates_need_checkpoint_key(tmp_path):
    p = tmp_path / "ck.pt"
    torch.save({"model_state": _small(0).state_dict(), "ema": _small(1).state_dict()}, p)
    with pytest.raises(CheckpointError, match=r"model_state, ema.*checkpoint_key KEY"):
        load_checkpoint(p)
    ema = load_checkpoint(p, key="ema")
    assert torch.equal(ema.state_dict["conv1.weight"], _small(1).state_dict()["conv1.weight"])
    res = CliRunner().invoke(main, ["inspect", str(p)])
    assert res.exit_code == 1 and "--checkpoint-key" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["inspect", str(p), "--checkpoint-key", "ema", "--json", "-"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output[res.output.index("{"):res.output.rindex("}") + 1])
    assert d["architecture"] == "resnet20" and d["recognised"]["width"] == 0.25


def test_legacy_checkpoint_without_num_batches_tracked(tmp_path):
    """Like the pretrained CIFAR ResNet .th files: {'state_dict' (DataParallel keys, no
    num_batches_tracked), 'best_prec1'}, saved in the old (non-zip) serialisation."""
    net = _small().eval()
    legacy = {"module." + k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    p = tmp_path / "resnet20-12fa3bb2.th"
    torch.save({"state_dict": legacy, "best_prec1": 91.7}, p, _use_new_zipfile_serialization=False)
    cifar = write_fake_cifar(tmp_path / "data")
    with pytest.warns(UserWarning, match="legacy checkpoint.*num_batches_tracked") as caught:
        s = open_session(str(p), data=f"cifar10:{cifar}", need_data=True)
    assert sum("legacy" in str(w.message) for w in caught) == 1
    assert s.model_spec.spec == "resnet20" and s.recognition.width == 0.25
    x = s.data.x_test[:4]
    with torch.no_grad():
        assert torch.allclose(s.model.eval()(x), net(x))
