"""Data loaders: CIFAR pickles, IDX, npz, the bundled digits, subsets, factories."""

import gzip
import pickle

import numpy as np
import pytest
import torch

from landscape.data import CIFAR10_MEAN, CIFAR10_STD, load_data
from landscape.errors import SpecError


def _write_cifar(root, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
        labels = list(rng.randint(0, 10, size=n))
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
        batches[name] = (data, labels)
    return batches


def test_cifar_pickle_reader(tmp_path):
    batches = _write_cifar(tmp_path)
    ds = load_data(f"cifar10:{tmp_path}")
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    raw, labels = batches["data_batch_1"]
    # first image, channel 0, pixel (0, 1): row-major R plane first, then normalised
    expect = (raw[0, 1] / 255.0 - CIFAR10_MEAN[0]) / CIFAR10_STD[0]
    assert ds.x_train[0, 0, 0, 1].item() == pytest.approx(expect, rel=1e-5)
    expect_g = (raw[0, 1024] / 255.0 - CIFAR10_MEAN[1]) / CIFAR10_STD[1]
    assert ds.x_train[0, 1, 0, 0].item() == pytest.approx(expect_g, rel=1e-5)
    assert ds.y_train[:4].tolist() == [int(v) for v in labels]
    assert ds.num_classes <= 10


def _idx(path, arr, gz):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, gz):
    rng = np.random.RandomState(1)
    sfx = ".gz" if gz else ""
    _idx(tmp_path / f"train-images-idx3-ubyte{sfx}", rng.randint(0, 256, (5, 28, 28)), gz)
    _idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", np.arange(5), gz)
    _idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", rng.randint(0, 256, (3, 28, 28)), gz)
    _idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", np.array([1, 2, 3]), gz)
    ds = load_data(f"mnist:{tmp_path}")
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.y_test.tolist() == [1, 2, 3]


def test_npz_and_factory(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x_train=np.zeros((6, 8, 8, 3), np.uint8), y_train=np.arange(6) % 2,
             x_test=np.full((2, 8, 8, 3), 255, np.uint8), y_test=np.array([0, 1]))
    ds = load_data(f"npz:{p}")
    assert ds.x_train.shape == (6, 3, 8, 8) and ds.x_test.max().item() == 1.0
    f = tmp_path / "mydata.py"
    f.write_text("import torch\ndef make():\n    return torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]), torch.ones(2, 2), torch.tensor([1, 0])\n")
    assert load_data(f"{f}:make").input_shape == (2,)


def test_bundled_digits_and_subset():
    ds = load_data()
    assert ds.spec == "digits" and ds.x_train.shape == (1000, 1, 8, 8) and ds.x_test.shape == (797, 1, 8, 8)
    assert ds.num_classes == 10
    assert abs(ds.x_train.mean().item()) < 1e-4 and abs(ds.x_train.std().item() - 1) < 1e-3
    a, b, c = ds.subset(100, seed=3), ds.subset(100, seed=3), ds.subset(100, seed=4)
    assert len(a.y_train) == 100 and len(a.y_test) == 100
    assert torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_train, c.x_train)


@pytest.mark.parametrize("spec,msg", [
    ("cifar10:/no/such/dir", "does not exist"),
    ("cifar10", "needs a path"),
    ("imagenet:/x", "unknown data spec"),
    ("nofile.py:make", "not found"),
])
def test_bad_data_specs(spec, msg):
    with pytest.raises(SpecError, match=msg):
        load_data(spec)
