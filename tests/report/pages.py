"""Helpers of the report tests: inputs synthesised in the documented layouts (slice HDF5 of issue 4,
the JSON keys of issues 3, 5 and 6, a run folder) and a parser for the page's figures."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List

import h5py
import numpy as np

# ---------------------------------------------------------------------------------------------
# synthetic inputs in the documented layouts


def slice_arrays(nx: int = 13, ny: int = 9):
    x, y = np.linspace(-1, 1, nx), np.linspace(-0.5, 1.5, ny)  # non-square, asymmetric on purpose
    X, Y = np.meshgrid(x, y, indexing="ij")
    train = 0.2 + X ** 2 + 3 * Y ** 2  # under two decades: the linear colour scale comes first
    test = 0.25 + (X - 0.3) ** 2 + 3 * Y ** 2
    return x, y, train, test


def write_slice_2d(path: Path, *, transposed: bool = False) -> Dict[str, np.ndarray]:
    x, y, train, test = slice_arrays()
    computed = np.ones(train.shape, bool)
    computed[-1, -2:] = False  # two points still missing (resumable file)
    vals = {"train_loss": train, "test_loss": test, "train_acc": 1 - train / 20, "test_acc": 1 - test / 20}
    with h5py.File(path, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = x, y
        for k, v in vals.items():
            v = np.where(computed, v, np.nan)
            f[k] = v.T if transposed else v
        f["computed"] = computed.T if transposed else computed
        f.attrs["axis_order"] = "[iy, ix]" if transposed else "[ix, iy]"
        f.attrs["checkpoint"] = "runs/adam/epoch_010.pt"
        f.attrs["checkpoint_sha256"] = "ab" * 32
        f.attrs["model"], f.attrs["data"], f.attrs["loss"], f.attrs["seed"] = "cnn", "digits", "ce", 7
        f.attrs["norm"] = "filter"
        f.attrs["landscape_version"] = "0.1.0"
        f.create_group("directions/0")["fc.weight"] = np.zeros((3, 4))
    return {"x": x, "y": y, "computed": computed, **vals}


def write_slice_1d(path: Path) -> None:
    x = np.linspace(-1, 1, 21)
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        f["train_loss"], f["test_loss"] = 0.1 + x ** 2, 0.2 + (x - 0.1) ** 2
        f["train_acc"], f["test_acc"] = 1 - x ** 2 / 4, 0.9 - x ** 2 / 4
        f["computed"] = np.ones(21, bool)
        f.attrs["checkpoint"] = "run/epoch_003.pt"


def hessian_json() -> dict:
    return {
        "eigenvalues": [41.5, 20.25, 9.0, 4.5, 2.0], "residuals": [1e-3, 2e-3, 5e-3, 1e-2, 3e-2],
        "converged": True, "smallest_eigenvalue": -0.75, "trace": 120.0, "trace_stderr": 3.5,
        "density": {"grid": [-1.0, 0.0, 10.0, 20.0, 42.0], "values": [0.01, 5.0, 0.1, 0.01, 0.001]},
        "per_layer": {"conv1.weight": 12.5, "fc.weight": 33.0},
        "preconditioned_eigenvalues": [900.0, 400.0],
        "stability": {"optimizer": "sgd (momentum 0.9)", "lr": 0.05, "threshold": 76.0, "sharpness": 41.5,
                      "ratio": 41.5 / 76.0, "eta_lambda_max": 2.075, "stable": True, "on": "H",
                      "rule": "(2+2β)/η", "notes": []},
        "batch_sharpness": {"batch_sharpness": 70.5, "stderr": 2.5, "batch_size": 128, "batches": 8},
        "batch_stability": {"optimizer": "sgd", "lr": 0.05, "threshold": 76.0, "sharpness": 70.5,
                            "ratio": 70.5 / 76.0, "stable": True},
        "hvps": 37, "seconds": 1.5,
        "provenance": {"checkpoint": "run/epoch_003.pt", "model": "cnn", "data": "digits", "seed": 0,
                       "landscape_version": "0.1.0"},
    }


def sharpness_record(name: str, lam: float, train_loss: float, test_loss: float, epoch: int = 0) -> dict:
    return {
        "checkpoint": f"runs/{name}/epoch_{epoch:03d}.pt", "epoch": epoch, "lambda_max": lam, "trace": 3 * lam,
        "eps_sharpness": lam / 10, "worst_case_sharpness": {"value": lam / 100, "steps": 20},
        "adaptive_sharpness": lam / 50, "average_sharpness": lam / 1000, "average_sharpness_stderr": lam / 1e4,
        "pac_bayes_sigma": 1 / lam, "train_loss": train_loss, "test_loss": test_loss,
        "train_acc": 0.99, "test_acc": 0.9,
        "stability": {"optimizer": "adam", "lr": 0.001, "threshold": 38000.0, "sharpness": 100 * lam,
                      "ratio": 100 * lam / 38000.0, "stable": 100 * lam <= 38000.0},
    }


def sharpness_json() -> dict:
    return {"checkpoints": [sharpness_record("adam", 40.0, 0.01, 0.40), sharpness_record("sgd", 8.0, 0.02, 0.25)],
            "settings": {"eps": 1e-3, "rho": 0.05}}


def sharpness_run_json() -> list:
    return [sharpness_record("adam", lam, 1.0 / (e + 1), 1.2 / (e + 1), epoch=e)
            for e, lam in enumerate([5.0, 50.0, 200.0, 450.0])]


def first_step_json() -> dict:
    def opt(norm, after, amplified=None):
        d = {"update_norm": norm, "loss_before": 2.3, "loss_after": after,
             "per_layer": {"conv1.weight": norm / 10, "fc.weight": norm / 5, "fc.bias": norm},
             "dead_relu_fraction": 0.1, "curve": [after, after * 0.9, after * 0.8]}
        if amplified is not None:
            d.update({"amplified_fraction": amplified, "bound": norm * 1.01})
        return d

    return {"n_params": 1234, "runs": [
        {"lr": 0.1, "adam": opt(3.5, 48.1, 0.97), "sgd": opt(0.004, 2.2),
         "verdict": "Adam step is 850× SGD's; 97% of coordinates amplified; loss 2.30 → 48.1; no recovery"},
        {"lr": 0.001, "adam": opt(0.035, 2.25, 0.5), "sgd": opt(0.00004, 2.3), "verdict": "both fine"}]}


def spikes_json() -> dict:
    """In the layout of ``landscape probe spikes --json``."""
    alphas = [-0.5, 0.0, 0.5, 1.0, 1.5]

    def line(shift):
        return {"alpha": alphas, "train_loss": [(a - 0.5) ** 2 + 0.3 for a in alphas],
                "test_loss": [(a - 0.5 - shift) ** 2 + 0.5 for a in alphas], "train_min_alpha": 0.5,
                "test_min_alpha": 0.5 + shift, "offset": shift}

    def ckpt(epoch, role, lam, ratio, test_loss):
        return {"epoch": epoch, "role": role, "event_epoch": 12.0, "path": f"run/epoch_{epoch:03d}.pt",
                "optimizer": "sgd", "lr": 0.05, "train_loss": 0.3, "test_loss": test_loss, "lambda_max": lam,
                "lambda_max_info": {"value": lam, "residual": 1e-4}, "threshold": 40.0, "ratio": ratio,
                "grad_alignment": 0.5, "directional_curvature": lam / 2, "step": line(0.4), "eigen_slice": line(0.1)}

    return {
        "run_dir": "run", "n_epochs": 30,
        "spikes": [{"epoch": 12.0, "test_loss": 3.0, "baseline": 0.5, "score": 9.5, "scale": 0.2, "index": 12}],
        "oscillation": {"segments": [{"start_epoch": 20.0, "end_epoch": 25.0, "flips": 4}], "oscillating": True},
        "log": {"epoch": list(range(30)), "test_loss": [3.0 if e == 12 else 1.0 / (e + 1) + 0.4 for e in range(30)],
                "train_loss": [1.0 / (e + 1) + 0.2 for e in range(30)]},
        "checkpoints": [ckpt(11, "before", 30.0, 0.75, 0.5), ckpt(12, "at", 48.0, 1.2, 3.0),
                        ckpt(13, "after", 33.0, 0.825, 0.6)],
        "verdicts": [{"hypothesis": "edge_of_stability", "event_epoch": 12.0, "status": "supported",
                      "summary": "λ_max crosses its threshold", "verdict": "supported — λ_max crosses its threshold",
                      "numbers": {"ratio_at": 1.2, "ratio_before": 0.75}}],
        "provenance": {"run_dir": "run", "seed": 0},
    }


def write_run_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "log.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "lr"])
        for e in range(6):
            w.writerow([e, 8 * e, 2.0 / (e + 1), 0.5 + e / 12, 2.2 / (e + 1), 0.45 + e / 12, 0.1])
    with open(path / "sharpness.csv", "w", newline="") as f:  # as `landscape train --track-sharpness` writes it
        w = csv.writer(f)
        w.writerow(["step", "epoch", "lr", "loss", "lambda_max", "lambda_max_residual", "lambda_max_threshold",
                    "preconditioned_lambda_max", "preconditioned_residual", "preconditioned_threshold",
                    "batch_sharpness", "batch_sharpness_stderr", "batch_sharpness_threshold", "sharpness",
                    "threshold", "ratio", "rule", "on", "hvps", "seconds"])
        for i, lam in enumerate([3.0, 9.0, 18.0, 21.0, 19.5, 20.5]):
            w.writerow([1 + 4 * i, i // 2, 0.1, 1.0, lam, 1e-4, 20.0, "nan", "nan", "nan", lam + 5, 0.5, 20.0,
                        lam + 5, 20.0, (lam + 5) / 20.0, "2/η", "batch sharpness", 7, 0.1])


def write_inputs(d: Path) -> Dict[str, Path]:
    """Every input kind, with file names that do NOT reveal the type (detection is by content)."""
    paths = {k: d / f"input_{k}.dat" for k in ("slice2d", "slice1d", "interp", "hessian", "sharpness",
                                               "sharpness_run", "first_step", "spikes")}
    write_slice_2d(paths["slice2d"])
    write_slice_1d(paths["slice1d"])
    alphas = np.linspace(-0.5, 1.5, 21)
    payloads = {
        "interp": {"alphas": alphas.tolist(), "train_loss": (0.1 + (alphas - 0.5) ** 2).tolist(),
                   "test_loss": (0.3 + (alphas - 0.5) ** 2).tolist(), "train_acc": [0.9] * 21,
                   "test_acc": [0.8] * 20 + ["NaN"], "checkpoint_a": "a/epoch_010.pt", "checkpoint_b": "b/epoch_010.pt"},
        "hessian": hessian_json(), "sharpness": sharpness_json(), "sharpness_run": sharpness_run_json(),
        "first_step": first_step_json(), "spikes": spikes_json()}
    for k, v in payloads.items():
        paths[k].write_text(json.dumps(v))
    paths["run"] = d / "run_folder"
    write_run_dir(paths["run"])
    return paths


# ---------------------------------------------------------------------------------------------
# parsing helpers


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: List[tuple] = []
        self.scripts: List[dict] = []
        self._in_script = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = {"attrs": dict(attrs), "text": ""}

    def handle_data(self, data):
        if self._in_script is not None:
            self._in_script["text"] += data

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append(self._in_script)
            self._in_script = None


def parse_page(text: str) -> PageParser:
    p = PageParser()
    p.feed(text)
    p.close()
    return p


def figures_of(page: PageParser) -> List[dict]:
    return [json.loads(s["text"]) for s in page.scripts if "landscape-figure" in s["attrs"].get("class", "")]


def traces(figs: List[dict]) -> List[dict]:
    return [t for f in figs for t in f["data"]]


def title_of(fig: dict) -> str:
    t = fig["layout"].get("title", {})
    return t.get("text", "") if isinstance(t, dict) else str(t)


def fig_named(figs: List[dict], needle: str) -> dict:
    found = [f for f in figs if needle in title_of(f)]
    assert found, f"no figure titled with {needle!r}: {[title_of(f) for f in figs]}"
    return found[0]

