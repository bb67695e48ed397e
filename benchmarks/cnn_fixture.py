"""The synthetic CIFAR-shaped checkpoint that the slice benchmarks share.

One definition, so that ``slice_speed.py`` and ``slice_resume.py`` time the same model on the same
data: a registry ``cnn`` of the given width seeded with 0, random images and labels from a fixed
generator, written as an npz data set and a landscape checkpoint in a fresh temporary folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Tuple

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from landscape.models import ModelSpec, model_from_spec  # noqa: E402


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
