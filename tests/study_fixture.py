"""Run folders in the format of the Adam-vs-SGD study's training code, built from its published facts
(issue #14): ``config.yaml``, ``base_config.yaml``, ``metrics.csv`` (long format) and
``checkpoints/epoch_XXX.pt`` = ``{"epoch", "model_state", "optimizer_state"}``; the model a
torchvision-layout ResNet-18 with the CIFAR stem (narrow here, to stay fast); loss ``mse`` =
``nn.MSELoss()(softmax(logits), one_hot)``; pytorch-cifar normalisation; the training set split with
``random_split(..., generator=torch.Generator().manual_seed(seed))``.

Everything the reference needs is computed here with plain torch, independently of landscape's
readers: the CIFAR pickles are written and read back with numpy, normalised by hand, split with
random_split on a plain TensorDataset.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset, random_split

from landscape.models.resnet_cifar_wide import tv_resnet18

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
N_PER_BATCH, N_TEST, VAL_SPLIT, SPLIT_SEED = 16, 40, 16, 42
WIDTH = 1 / 16


def write_fake_cifar(root: Path, seed: int = 0) -> Path:
    """``cifar-10-batches-py/`` with five tiny training batches and a test batch (pickle format)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = N_TEST if name == "test_batch" else N_PER_BATCH
        entry = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    return root


def read_fake_cifar(root: Path) -> Dict[str, torch.Tensor]:
    """Train and test tensors as torchvision's ToTensor + Normalize(pytorch-cifar stats) give them."""
    folder = root / "cifar-10-batches-py"

    def load(names: List[str]):
        xs, ys = [], []
        for name in names:
            with open(folder / name, "rb") as f:
                entry = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(entry[b"data"]).reshape(-1, 3, 32, 32))
            ys += entry[b"labels"]
        x = torch.from_numpy(np.concatenate(xs)).float() / 255.0
        return (x - MEAN) / STD, torch.tensor(ys)

    x_tr, y_tr = load([f"data_batch_{i}" for i in range(1, 6)])
    x_te, y_te = load(["test_batch"])
    train, val = random_split(TensorDataset(x_tr, y_tr), [len(y_tr) - VAL_SPLIT, VAL_SPLIT],
                              generator=torch.Generator().manual_seed(SPLIT_SEED))
    tr_idx, va_idx = torch.tensor(train.indices), torch.tensor(val.indices)
    return {"x_train": x_tr[tr_idx], "y_train": y_tr[tr_idx], "x_val": x_tr[va_idx], "y_val": y_tr[va_idx],
            "x_test": x_te, "y_test": y_te}


def their_loss(name: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if name == "mse":
        return nn.MSELoss()(torch.softmax(logits, dim=-1), F.one_hot(y, logits.shape[-1]).float())
    return nn.CrossEntropyLoss()(logits, y)


@dataclass
class StudyRun:
    root: Path
    cifar: Path
    data: Dict[str, torch.Tensor]
    model: nn.Module  # the model at the last checkpoint
    n_params: int
    last: Path


def make_study_run(base: Path, *, loss: str = "mse", epochs: int = 3, lr: float = 0.01, keep: int = 5,
                   spike_at: int | None = None, seed: int = 0, steps: int = 8) -> StudyRun:
    """Train a tiny torchvision-layout ResNet-18 with Adam for ``epochs`` epochs (``steps`` each) and
    write the run folder as the study's code does; ``spike_at`` replaces that epoch's logged test
    loss by ten times its value (a spike only the log shows)."""
    cifar = write_fake_cifar(base / "data")
    data = read_fake_cifar(cifar)
    root = base / "output" / "runs" / f"20250101-120000_ResNet18_adam_{loss}_lr{lr}"
    (root / "checkpoints").mkdir(parents=True)
    torch.manual_seed(seed)
    model = tv_resnet18(num_classes=10, width=WIDTH)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    rows = ["run_name,epoch,split,loss,accuracy"]
    gen = torch.Generator().manual_seed(seed)
    saved: List[Path] = []
    for epoch in range(1, epochs + 1):
        model.train()
        for _ in range(steps):
            idx = torch.randperm(len(data["y_train"]), generator=gen)[:32]
            opt.zero_grad()
            batch_loss = their_loss(loss, model(data["x_train"][idx]), data["y_train"][idx])
            batch_loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            rows.append(f"{root.name},{epoch},train,{float(batch_loss):.8f},0.1")
            for split in ("val", "test"):
                out = model(data[f"x_{split}"])
                value = float(their_loss(loss, out, data[f"y_{split}"]))
                if split == "test" and epoch == spike_at:
                    value *= 10
                acc = float((out.argmax(-1) == data[f"y_{split}"]).float().mean())
                rows.append(f"{root.name},{epoch},{split},{value:.8f},{acc:.4f}")
        if epoch > epochs - keep:
            path = root / "checkpoints" / f"epoch_{epoch:03d}.pt"
            torch.save({"epoch": epoch, "model_state": model.state_dict(), "optimizer_state": opt.state_dict()}, path)
            saved.append(path)
    (root / "metrics.csv").write_text("\n".join(rows) + "\n")
    (root / "config.yaml").write_text(
        f"model: ResNet18\nloss_function: {'mse' if loss == 'mse' else 'cross_entropy'}\nlearning_rate: {lr}\n"
        f"optimizer:\n  name: adam\n  lr: {lr}\n  betas: [0.9, 0.999]\n  eps: 1.0e-08\n  momentum: 0.9\n"
        "  nesterov: false\n  weight_decay: 0.0\nbatch_size: 32\nseed: 42\n"
        f"data_config:\n  data_root: {cifar}\n  batch_size: 32\n  num_workers: 2\n  val_split: {VAL_SPLIT}\n"
        f"  seed: {SPLIT_SEED}\n  download: false\nepochs: {epochs}\nrun_name: {root.name}\nmax_checkpoints: {keep}\n")
    (root / "base_config.yaml").write_text("epochs: 800\nmax_checkpoints: 5\n")
    n_params = sum(p.numel() for p in model.parameters())
    return StudyRun(root, cifar, data, model, n_params, saved[-1])
