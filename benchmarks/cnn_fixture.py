"""The synthetic CIFAR-shaped problems the benchmarks share.

One definition each, so that benchmarks compare the same model on the same data:

- :func:`cnn_fixture` (``slice_speed.py``, ``slice_resume.py``): a registry ``cnn`` of the given
  width seeded with 0, random images and labels from a fixed generator, written as an npz data set
  and a landscape checkpoint in a fresh temporary folder;
- :func:`randomised_bn_problem` (``scale.py``, ``resnet_eigen.py``, ``first_pass.py``): a registry
  network with BatchNorm running statistics randomised as after some training, in eval mode, and
  random CIFAR-shaped images with labels.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from landscape.models import ModelSpec, build_model, model_from_spec  # noqa: E402


def randomised_bn_problem(name: str, n: int, seed: int, *,
                          images: bool = True) -> Tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """``(model, x, y)``: ``name`` (a registry model, or ``cnn`` at width 0.5) built after
    ``torch.manual_seed(seed)``, its BatchNorm running means drawn from N(0, 0.1²) and variances
    from U(0.5, 1.5), eval mode; then ``n`` random CIFAR-shaped images and labels from the same
    generator (``images=False``: empty ``x``/``y``, for callers bringing their own data)."""
    torch.manual_seed(seed)
    model = model_from_spec(ModelSpec("cnn", 10, (3, 32, 32), 0.5)) if name == "cnn" else build_model(name)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    model.eval()
    if not images:
        return model, torch.empty(0, 3, 32, 32), torch.empty(0, dtype=torch.long)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return model, x, y


def cnn_fixture(*, width: float, n: int, prefix: str) -> Tuple[Path, torch.nn.Module, torch.Tensor]:
    """``(folder, model, images)``: ``folder`` holds ``data.npz`` (n train images, 16 test) and ``ck.pt``."""
    spec = ModelSpec("cnn", 10, (3, 32, 32), width)
    torch.manual_seed(0)
    model = model_from_spec(spec).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    np.savez(tmp / "data.npz", x_train=x.numpy(), y_train=y.numpy(), x_test=x[:16].numpy(), y_test=y[:16].numpy())
    torch.save({"model_state_dict": model.state_dict(), "landscape": {"model": spec.to_json()}}, tmp / "ck.pt")
    return tmp, model, x
