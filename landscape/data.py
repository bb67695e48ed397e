"""Datasets as in-memory tensors: CIFAR pickles, MNIST IDX, npz, the bundled digits, user factories.

A :class:`Dataset` holds the whole train and test split as tensors in a fixed order. Instruments
evaluate on these tensors directly (no DataLoader per evaluation), so every evaluation of the
loss sees exactly the same samples in the same batches.

Specs (``--data``):

- ``digits`` (default): the bundled UCI digits in ``data/digits.npz`` (1,000 train / 797 test, 8×8).
- ``cifar10:ROOT``, ``cifar100:ROOT``: the python-pickle batches (``cifar-10-batches-py/``).
- ``mnist:ROOT``, ``fashion-mnist:ROOT``: IDX files, gzipped or not.
- ``npz:PATH``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``.
- ``wilson2017[:n=200,test=200,p=0.6,seed=0]``: Wilson et al. 2017's constructed problem
  (:mod:`landscape.synthetic`).
- ``file.py:factory`` / ``package.module:factory``: returns ``(x_train, y_train, x_test, y_test)``,
  a dict with those keys, or a pair of torch Datasets ``(train, test)``.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import SpecError, SpecOptionError
from .specs import is_factory_spec, resolve_factory, split_spec

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
MNIST_MEAN_STD = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
PYTORCH_CIFAR_STD = (0.2023, 0.1994, 0.2010)  # kuangliu/pytorch-cifar's values (not the true std)

# --normalize presets: name -> (means, stds); "none" leaves pixels in [0, 1].
NORMALIZE_PRESETS: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "pytorch-cifar": (CIFAR10_MEAN, PYTORCH_CIFAR_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "mnist": ((MNIST_MEAN_STD["mnist"][0],), (MNIST_MEAN_STD["mnist"][1],)),
    "fashion-mnist": ((MNIST_MEAN_STD["fashion-mnist"][0],), (MNIST_MEAN_STD["fashion-mnist"][1],)),
}

DEFAULT_DATA = "digits"


@dataclass(frozen=True)
class Dataset:
    """A train and a test split as tensors (``x``: float32 ``(N, C, H, W)`` or ``(N, D)``)."""

    spec: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    normalize: str = "none"  # the preset name or the literal MEANS/STDS applied to the pixels
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    default_normalize: Optional[Tuple[str, Tuple[float, ...], Tuple[float, ...]]] = None  # the usual one
    x_val: Optional[torch.Tensor] = None  # a validation split carved from the training set
    y_val: Optional[torch.Tensor] = None
    split_note: Optional[str] = None

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def split(self, which: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """``("train"|"val"|"test")`` -> ``(x, y)``."""
        if which == "train":
            return self.x_train, self.y_train
        if which == "test":
            return self.x_test, self.y_test
        if which == "val" and self.x_val is not None and self.y_val is not None:
            return self.x_val, self.y_val
        raise ValueError(which)

    def carve_validation(self, n_val: int, *, seed: int) -> Dataset:
        """The training split a run trained on when it held out ``n_val`` samples with
        ``torch.utils.data.random_split(train, [N - n_val, n_val],
        generator=torch.Generator().manual_seed(seed))``: its first part (in data order) stays
        the training set, the second becomes ``x_val``/``y_val``."""
        n = len(self.y_train)
        if not 0 < n_val < n:
            raise SpecError(f"the run holds out {n_val} validation samples but the training set has {n}")
        from torch.utils.data import random_split

        train_part, val_part = random_split(range(n), [n - n_val, n_val],
                                            generator=torch.Generator().manual_seed(seed))
        tr = torch.tensor(sorted(train_part.indices), dtype=torch.long)
        va = torch.tensor(sorted(val_part.indices), dtype=torch.long)
        note = (f"training split: {n - n_val} of {n} training samples (random_split with seed {seed}; "
                f"the other {n_val} are the run's validation set)")
        return replace(self, x_train=self.x_train[tr], y_train=self.y_train[tr],
                       x_val=self.x_train[va], y_val=self.y_train[va], split_note=note)

    def renormalized(self, normalize: Optional[str]) -> Dataset:
        """The same samples under another ``--normalize`` (undoing the current one); ``"default"``
        is the data set's usual preprocessing."""
        if normalize == "default" and self.default_normalize is not None:
            name, mean, std = self.default_normalize
        else:
            name, mean, std = parse_normalize(None if normalize == "default" else normalize, channels=_channels(self))
        if name == self.normalize:
            return self

        def redo(x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            if x is None:
                return None
            raw = x if self.mean is None else x * _per_channel(self.std, x) + _per_channel(self.mean, x)
            return raw if mean is None else (raw - _per_channel(mean, raw)) / _per_channel(std, raw)

        return replace(self, x_train=redo(self.x_train), x_test=redo(self.x_test), x_val=redo(self.x_val),
                       normalize=name, mean=mean, std=std)

    def subset(self, n: Optional[int], *, seed: int = 0) -> Dataset:
        """A fixed random subset of at most ``n`` samples of each split (seeded, order kept)."""
        if n is None or n <= 0:
            return self
        gen = torch.Generator().manual_seed(seed)

        def pick(x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            if n >= len(y):
                return x, y
            idx = torch.randperm(len(y), generator=gen)[:n].sort().values
            return x[idx], y[idx]

        xtr, ytr = pick(self.x_train, self.y_train)
        xte, yte = pick(self.x_test, self.y_test)
        return replace(self, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)


def repo_data_dir() -> Path:
    """The bundled ``data/`` folder (override with ``LANDSCAPE_DATA_DIR``)."""
    env = os.environ.get("LANDSCAPE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def load_data(spec: Optional[str] = None, *, normalize: Optional[str] = None) -> Dataset:
    """Load the dataset named by ``spec`` (see module docstring).

    ``normalize``: ``None`` for the data set's usual preprocessing (CIFAR-10: the true per-channel
    std; digits: standardised by the training set's mean and std), a preset of
    :data:`NORMALIZE_PRESETS`, ``none`` or literal ``MEANS/STDS`` (``--normalize``)."""
    spec = spec or DEFAULT_DATA
    head, arg = split_spec(spec)
    loaders = {
        "digits": lambda a: _load_digits(a),
        "cifar10": lambda a: _load_cifar(_need(spec, a), 10),
        "cifar100": lambda a: _load_cifar(_need(spec, a), 100),
        "mnist": lambda a: _load_mnist(_need(spec, a), "mnist"),
        "fashion-mnist": lambda a: _load_mnist(_need(spec, a), "fashion-mnist"),
        "npz": lambda a: _load_npz(Path(_need(spec, a))),
    }
    default: Optional[Tuple[str, Sequence[float], Sequence[float]]] = None
    if head in loaders:
        x_tr, y_tr, x_te, y_te, default = loaders[head](arg)
    elif head.startswith("wilson2017"):
        from .synthetic import load_wilson2017

        x_tr, y_tr, x_te, y_te = load_wilson2017(arg)
    elif is_factory_spec(head):
        x_tr, y_tr, x_te, y_te = _from_factory(spec)
    else:
        raise SpecError(
            f"unknown data spec {spec!r}; use digits, cifar10:ROOT, cifar100:ROOT, mnist:ROOT, "
            "fashion-mnist:ROOT, npz:PATH, wilson2017[:n=...] or file.py:factory"
        )
    ds = _make_dataset(spec, x_tr, y_tr, x_te, y_te)
    if default is not None:
        ds = replace(ds, default_normalize=(default[0], tuple(map(float, default[1])), tuple(map(float, default[2]))))
    if normalize is None and default is not None:
        name, mean, std = default[0], tuple(map(float, default[1])), tuple(map(float, default[2]))
    else:
        name, mean, std = parse_normalize(normalize, channels=_channels(ds))
    if mean is None:
        return replace(ds, normalize=name)
    return replace(ds, x_train=(ds.x_train - _per_channel(mean, ds.x_train)) / _per_channel(std, ds.x_train),
                   x_test=(ds.x_test - _per_channel(mean, ds.x_test)) / _per_channel(std, ds.x_test),
                   normalize=name, mean=mean, std=std)


def parse_normalize(text: Optional[str], *, channels: int) -> Tuple[str, Optional[Tuple[float, ...]],
                                                                    Optional[Tuple[float, ...]]]:
    """``--normalize`` -> ``(name, means, stds)``: a preset, ``none`` (``None, None``) or literal
    ``0.4914,0.4822,0.4465/0.2023,0.1994,0.2010`` (one value per input channel)."""
    if text is None or text.strip().lower() in ("", "none"):
        return "none", None, None
    key = text.strip().lower()
    if key in NORMALIZE_PRESETS:
        mean, std = NORMALIZE_PRESETS[key]
        name = key
    else:
        head, sep, tail = text.partition("/")
        try:
            if not sep:
                raise ValueError
            mean = tuple(float(v) for v in head.split(","))
            std = tuple(float(v) for v in tail.split(","))
        except ValueError:
            raise SpecOptionError("{normalize} {text!r}: use a preset ({presets}, none) or MEANS/STDS such as "
                                  "0.4914,0.4822,0.4465/0.2023,0.1994,0.2010", text=text,
                                  presets=", ".join(NORMALIZE_PRESETS)) from None
        name = f"{','.join(f'{v:g}' for v in mean)}/{','.join(f'{v:g}' for v in std)}"
    if len(mean) != len(std) or len(mean) not in (1, channels):
        raise SpecOptionError("{normalize} {text}: {n_mean} means and {n_std} stds for data with "
                              "{channels} channel(s)", text=text, n_mean=len(mean), n_std=len(std), channels=channels)
    if any(v <= 0 for v in std):
        raise SpecOptionError("{normalize} {text}: standard deviations must be positive", text=text)
    return name, tuple(mean), tuple(std)


def _channels(ds: Dataset) -> int:
    return int(ds.input_shape[0]) if len(ds.input_shape) == 3 else 1


def _per_channel(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """``values`` shaped to broadcast over the channel axis of ``like`` (``(N, C, ...)``)."""
    shape = (1, -1) + (1,) * (like.dim() - 2) if like.dim() > 2 else (1, -1)
    t = torch.tensor(values, dtype=like.dtype)
    return t.reshape(shape) if t.numel() > 1 else t.reshape(())


def _need(spec: str, arg: Optional[str]) -> str:
    if not arg:
        raise SpecError(f"data spec {spec!r} needs a path, e.g. {spec}:/data/cifar")
    if not Path(arg).exists():
        raise SpecError(f"data path does not exist: {arg}")
    return arg


def _make_dataset(spec: str, x_tr: Any, y_tr: Any, x_te: Any, y_te: Any) -> Dataset:
    tensors = [torch.as_tensor(np.asarray(a)) for a in (x_tr, y_tr, x_te, y_te)]
    x_tr, y_tr, x_te, y_te = tensors
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise SpecError(f"train and test inputs differ in shape: {tuple(x_tr.shape)} vs {tuple(x_te.shape)}")
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise SpecError("inputs and labels differ in length")
    y_tr, y_te = y_tr.long(), y_te.long()
    num_classes = int(max(y_tr.max(), y_te.max())) + 1
    return Dataset(spec, x_tr.float().contiguous(), y_tr, x_te.float().contiguous(), y_te, num_classes)


def _load_digits(arg: Optional[str]) -> Tuple[np.ndarray, ...]:
    path = Path(arg) if arg else repo_data_dir() / "digits.npz"
    if not path.is_file():
        raise SpecError(f"bundled digits not found at {path}")
    with np.load(path) as z:
        x_tr = z["x_train"].astype(np.float32) / 16.0
        x_te = z["x_test"].astype(np.float32) / 16.0
        mean, std = float(x_tr.mean()), float(x_tr.std())  # default: the training set's statistics
        return x_tr, z["y_train"], x_te, z["y_test"], ("digits", [mean], [std])


def _cifar_dir(root: str) -> Path:
    for cand in (Path(root), Path(root) / "cifar-10-batches-py", Path(root) / "cifar-100-python"):
        if (cand / "test_batch").is_file() or (cand / "test").is_file():
            return cand
    raise SpecError(f"no CIFAR python batches under {root} (expected data_batch_1..5 and test_batch)")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR python batches that admits only what the format holds.

    A CIFAR batch is a dict of bytes/str keys to bytes, lists of ints and one uint8 numpy array.
    Plain ``pickle.load`` would run any callable a crafted ``data_batch_1`` names; here every
    global outside numpy's array reconstruction is refused, so a malicious file is an error.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of the CIFAR format")
        return super().find_class(module, name)


def read_cifar_batch(path: Path, label_key: bytes = b"labels") -> Tuple[np.ndarray, np.ndarray]:
    """One CIFAR python-pickle batch -> ``(uint8 images (N, 3, 32, 32), int64 labels)``.

    Read with :class:`_CifarUnpickler`, never plain pickle: the file cannot run code.
    """
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="bytes").load()
    except Exception as exc:
        raise SpecError(f"cannot read CIFAR batch {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(entry, dict):
        raise SpecError(f"cannot read CIFAR batch {path}: expected a dict, found {type(entry).__name__}")
    entry = {(k.encode() if isinstance(k, str) else k): v for k, v in entry.items()}
    if b"data" not in entry or label_key not in entry:
        raise SpecError(f"cannot read CIFAR batch {path}: missing {b'data'!r} or {label_key!r}")
    raw, labels = entry[b"data"], entry[label_key]
    if not (isinstance(raw, np.ndarray) and raw.dtype == np.uint8) and not isinstance(raw, (bytes, list)):
        raise SpecError(f"cannot read CIFAR batch {path}: 'data' is not a uint8 array")
    if not isinstance(labels, (list, np.ndarray)) or not all(isinstance(v, (int, np.integer)) for v in labels):
        raise SpecError(f"cannot read CIFAR batch {path}: labels are not a list of integers")
    try:
        data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, bytes) else np.asarray(raw, dtype=np.uint8)
        data = data.reshape(-1, 3, 32, 32)
    except (ValueError, OverflowError) as exc:
        raise SpecError(f"cannot read CIFAR batch {path}: {exc}") from None
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(data):
        raise SpecError(f"cannot read CIFAR batch {path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def _load_cifar(root: str, classes: int) -> Tuple[np.ndarray, ...]:
    folder = _cifar_dir(root)
    if classes == 10:
        train_files = sorted(folder.glob("data_batch_*"))
        test_files, key, preset = [folder / "test_batch"], b"labels", "cifar10"
    else:
        train_files, test_files = [folder / "train"], [folder / "test"]
        key, preset = b"fine_labels", "cifar100"
    if not train_files or not all(p.is_file() for p in train_files + test_files):
        raise SpecError(f"incomplete CIFAR folder {folder}")
    tr = [read_cifar_batch(p, key) for p in train_files]
    te = [read_cifar_batch(p, key) for p in test_files]
    x_tr = np.concatenate([a for a, _ in tr]).astype(np.float32) / 255.0
    x_te = np.concatenate([a for a, _ in te]).astype(np.float32) / 255.0
    return (x_tr, np.concatenate([b for _, b in tr]), x_te, np.concatenate([b for _, b in te]),
            (preset, *NORMALIZE_PRESETS[preset]))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise SpecError(f"{path} is not an IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find_idx(root: Path, stem: str) -> Path:
    for folder in (root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise SpecError(f"{stem}[.gz] not found under {root}")


def _load_mnist(root: str, kind: str) -> Tuple[np.ndarray, ...]:
    base = Path(root)
    x_tr = read_idx(_find_idx(base, "train-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    y_tr = read_idx(_find_idx(base, "train-labels-idx1-ubyte")).astype(np.int64)
    x_te = read_idx(_find_idx(base, "t10k-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0
    y_te = read_idx(_find_idx(base, "t10k-labels-idx1-ubyte")).astype(np.int64)
    return x_tr, y_tr, x_te, y_te, (kind, *NORMALIZE_PRESETS[kind])


def _load_npz(path: Path) -> Tuple[np.ndarray, ...]:
    try:
        with np.load(path) as z:
            arrays = [z[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except KeyError as exc:
        raise SpecError(f"{path} lacks array {exc}; need x_train, y_train, x_test, y_test") from None
    except Exception as exc:
        raise SpecError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    x_tr, y_tr, x_te, y_te = arrays
    if x_tr.dtype == np.uint8:
        x_tr, x_te = x_tr.astype(np.float32) / 255.0, x_te.astype(np.float32) / 255.0
    return _channels_first(x_tr), y_tr, _channels_first(x_te), y_te, None


def _channels_first(x: np.ndarray) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def _from_factory(spec: str) -> Tuple[Any, ...]:
    factory = resolve_factory(spec)
    try:
        out = factory()
    except Exception as exc:
        raise SpecError(f"data factory {spec} failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(out, dict):
        return tuple(out[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    if isinstance(out, (tuple, list)) and len(out) == 4:
        return tuple(out)
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return (*_stack(out[0]), *_stack(out[1]))
    raise SpecError(f"data factory {spec} must return (x_train, y_train, x_test, y_test) or (train, test) Datasets")


def _stack(ds: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*[ds[i] for i in range(len(ds))])
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys)
