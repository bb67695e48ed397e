"""Every registry model runs on CIFAR-shaped input and has its published parameter count."""

import pytest
import torch

from landscape.errors import SpecError
from landscape.models import REGISTRY, build_model

PUBLISHED = {  # millions of parameters, 10 classes
    "resnet20": 0.27, "resnet32": 0.46, "resnet56": 0.85, "resnet18": 11.2,
    "densenet121": 6.96, "vgg16": 14.7,
}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_forward_on_cifar_shape(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=(3, 32, 32)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name,millions", sorted(PUBLISHED.items()))
def test_parameter_counts_match_published(name, millions):
    n = sum(p.numel() for p in build_model(name).parameters())
    assert abs(n / 1e6 - millions) / millions < 0.01, n


def test_small_inputs_and_options():
    m = build_model("mlp:hidden=7-5,act=tanh", num_classes=4, input_shape=(1, 8, 8))
    assert [p.shape[0] for p in m.parameters() if p.dim() == 2] == [7, 5, 4]
    out = build_model("resnet20", num_classes=10, input_shape=(1, 8, 8))(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10)
    assert sum(p.numel() for p in build_model("resnet20", width=2.0).parameters()) > 1e6


def test_user_factories(tmp_path):
    f = tmp_path / "mynet.py"
    f.write_text("import torch.nn as nn\ndef make(num_classes=10):\n    return nn.Linear(4, num_classes)\n"
                 "def bad():\n    return 3\n")
    assert build_model(f"{f}:make", num_classes=3).out_features == 3
    assert build_model("torch.nn:Identity") is not None
    with pytest.raises(SpecError, match="not an nn.Module"):
        build_model(f"{f}:bad")
    with pytest.raises(SpecError, match="no attribute"):
        build_model(f"{f}:missing")
    with pytest.raises(SpecError, match="not found"):
        build_model("nowhere.py:make")
    with pytest.raises(SpecError, match="unknown model"):
        build_model("resnet999")
