"""Edge of stability on the bundled digits (Cohen et al. 2021), lightweight: full-batch GD on the
first 200 training images, tanh MLP 64-200-200-10, mse-sum, η = 0.08 (2/η = 25), λ_max tracked
every 20 steps. λ_max starts near 19, rises (progressive sharpening) and then hovers at 2/η."""

from __future__ import annotations

import pytest
import torch

from landscape.data import Dataset, load_data
from landscape.hessian.tracking import SharpnessTracker, edge_of_stability_summary, read_sharpness
from landscape.train import TrainConfig, train


def _run(tmp_path, *, optimizer: str, lr: float, steps: int) -> dict:
    ds = load_data("digits")
    small = Dataset("digits", ds.x_train[:200], ds.y_train[:200], ds.x_test[:100], ds.y_test[:100], 10)
    # the tracker writes its sharpness.csv beside the run, not into it: `train` refuses a folder
    # that already holds run files
    tracker = SharpnessTracker(tmp_path / "track", x=small.x_train, y=small.y_train, loss="mse-sum",
                               every=20, train_batch_size=200)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is faster and leaves the other core free
    try:
        train(TrainConfig(model="mlp:hidden=200-200,act=tanh", loss="mse-sum", optimizer=optimizer, lr=lr,
                          batch_size=200, epochs=steps, save_every=steps), tmp_path / "run", hooks=[tracker],
              dataset=small)
    finally:
        torch.set_num_threads(threads)
    return read_sharpness(tmp_path / "track" / "sharpness.csv")


@pytest.mark.slow
def test_progressive_sharpening_then_hover_at_2_over_eta(tmp_path) -> None:
    lr = 0.08
    cols = _run(tmp_path, optimizer="sgd", lr=lr, steps=600)
    assert cols["threshold"][0] == pytest.approx(2 / lr)
    assert cols["sharpness"] == cols["lambda_max"]  # full-batch GD: the verdict is on λ_max
    s = edge_of_stability_summary(cols, last=0.4)
    assert s["first_ratio"] < 0.85                   # starts well below 2/η ...
    assert s["peak"] >= 2 / lr                       # ... sharpens up to it ...
    assert 0.9 <= s["last_mean_ratio"] <= 1.1        # ... and hovers there
    assert 0.85 <= s["last_min_ratio"] and s["last_max_ratio"] <= 1.15


@pytest.mark.slow
def test_adam_preconditioned_sharpness_equilibrates_at_38_over_eta(tmp_path) -> None:
    """Full-batch Adam (β₁ = 0.9, η = 0.001): λ₁(P⁻¹H) settles at 38/η (Cohen et al. 2022)."""
    lr = 0.001
    cols = _run(tmp_path, optimizer="adam", lr=lr, steps=400)
    assert cols["threshold"][0] == pytest.approx(38 / lr)
    assert cols["sharpness"] == cols["preconditioned_lambda_max"]
    assert cols["preconditioned_lambda_max"][1] < 0.5 * 38 / lr   # below it at step 20, then rises
    s = edge_of_stability_summary(cols, last=0.4)
    assert 0.9 <= s["last_mean_ratio"] <= 1.1
    assert 0.8 <= s["last_min_ratio"] and s["last_max_ratio"] <= 1.2
