"""Untrusted files never run code (issue #19, security items).

Each test plants a payload that would create a marker file if it ran, opens the file the way a
user would, and checks for a one-line error and the marker's absence; with ``--trust-checkpoint``
(where trusting is allowed) the same file is honoured, which shows the payload was reachable.
"""

import json
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape.cli import main
from landscape.data import load_data
from landscape.errors import SpecError

PAYLOAD = '''
from pathlib import Path
Path({marker!r}).write_text("ran")
import torch
def make(num_classes=10):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, num_classes))
def load():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(8, 1, 8, 8, generator=g), torch.arange(8) % 10,
            torch.randn(8, 1, 8, 8, generator=g), torch.arange(8) % 10)
'''


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(res, *needles):
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1, res.output
    for needle in needles:
        assert needle in res.output, res.output


@pytest.fixture()
def helper(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "helper.py"
    path.write_text(PAYLOAD.format(marker=str(marker)))
    return path, marker


def _landscape_checkpoint(tmp_path, meta):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    path = tmp_path / "x.pt"
    torch.save({"state_dict": net.state_dict(), "landscape": meta}, path)
    return path


@pytest.mark.parametrize("relative", [False, True])
def test_recorded_model_file_spec_needs_trust(tmp_path, helper, monkeypatch, relative):
    path, marker = helper
    spec = "helper.py:make" if relative else f"{path}:make"
    monkeypatch.chdir(tmp_path)
    ck = _landscape_checkpoint(tmp_path, {"model": {"spec": spec, "num_classes": 10,
                                                     "input_shape": [1, 8, 8]}})
    res = run("inspect", ck, "--data", "digits")
    _one_line_error(res, spec, "--trust-checkpoint")
    assert not marker.exists()
    res = run("inspect", ck, "--data", "digits", "--trust-checkpoint", "--json", "-")
    assert res.exit_code == 0, res.output
    assert marker.exists()


def test_recorded_data_spec_needs_trust(tmp_path, helper):
    path, marker = helper
    spec = f"{path}:load"
    ck = _landscape_checkpoint(tmp_path, {"data": spec})
    res = run("inspect", ck, "--model", "mlp:hidden=8")
    _one_line_error(res, spec, "--trust-checkpoint")
    assert not marker.exists()
    # the same spec given on the command line is the user's own choice and is honoured
    res = run("inspect", ck, "--model", "mlp:hidden=8", "--data", spec, "--json", "-")
    assert marker.exists()


def test_safetensors_metadata_data_spec_needs_trust(tmp_path, helper):
    from safetensors.torch import save_file

    path, marker = helper
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    ck = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(ck),
              metadata={"data": f"{path}:load", "model": f"{path}:make"})
    res = run("inspect", ck)
    _one_line_error(res, "--trust-checkpoint")
    assert not marker.exists()


def test_recorded_dotted_module_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "MARKER"
    pkg = tmp_path / "evilpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ck = _landscape_checkpoint(tmp_path, {"model": {"spec": "evilpkg.x:y", "num_classes": 10}})
    res = run("inspect", ck, "--data", "digits")
    _one_line_error(res, "evilpkg.x:y", "--trust-checkpoint")
    assert not marker.exists()


def test_recorded_torchvision_spec_needs_trust(tmp_path):
    ck = _landscape_checkpoint(tmp_path, {"model": {"spec": "torchvision:resnet18", "num_classes": 10}})
    _one_line_error(run("inspect", ck, "--data", "digits"), "torchvision:resnet18", "--trust-checkpoint")


def test_recorded_registry_spec_still_opens(digits_run):
    res = run("inspect", digits_run / "epoch_001.pt", "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["n_params"] > 0


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _cifar_folder(root, poison=None):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.randint(0, 256, size=(4, 3072)).astype(np.uint8),
                 b"labels": [int(v) for v in rng.randint(0, 10, size=4)], b"batch_label": name.encode()}
        if name == "data_batch_1" and poison is not None:
            entry[b"extra"] = poison
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    return folder


def test_cifar_batch_with_payload_is_refused(tmp_path):
    marker = tmp_path / "MARKER"
    _cifar_folder(tmp_path, poison=_Payload(str(marker)))
    with pytest.raises(SpecError, match="data_batch_1.*refusing to load"):
        load_data(f"cifar10:{tmp_path}")
    assert not marker.exists()
    ck = _landscape_checkpoint(tmp_path, {})
    res = run("inspect", ck, "--model", "mlp:hidden=8", "--data", f"cifar10:{tmp_path}")
    _one_line_error(res, "refusing")
    assert not marker.exists()


def test_cifar_payload_through_checkpoint_metadata(tmp_path):
    marker = tmp_path / "MARKER"
    _cifar_folder(tmp_path, poison=_Payload(str(marker)))
    ck = _landscape_checkpoint(tmp_path, {"data": f"cifar10:{tmp_path}"})
    res = run("inspect", ck, "--model", "mlp:hidden=8", "--trust-checkpoint")
    _one_line_error(res, "refusing")
    assert not marker.exists()


def test_clean_cifar_protocol2_still_reads(tmp_path):
    _cifar_folder(tmp_path)
    ds = load_data(f"cifar10:{tmp_path}")
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.y_test.shape == (4,)
