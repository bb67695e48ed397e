import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("LANDSCAPE_PROGRESS", "0")
# One intra-op thread for the whole suite: the models here are tiny, and two threads on the two
# cores CI has (shared with the subprocesses the tests start) oversubscribe them — a run-folder
# sharpness test took 41 s with two threads under load and 1 s with one.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A short real run on the bundled digits (small CNN, SGD+momentum), made with `landscape train`."""
    from landscape.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run_sgd")
    train(TrainConfig(model="cnn:bn=true", data="digits", loss="ce", optimizer="sgd", lr=0.05,
                      momentum=0.9, epochs=3, batch_size=128, seed=0, width=0.5), out)
    return out


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny-model tests: several times faster than two (and
    immune to oversubscription when other processes share the cores); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
