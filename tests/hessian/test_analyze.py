"""`landscape hessian` as a function (landscape.hessian.analyze): per-layer blocks and their top
eigenvalues against the blocks of the dense float64 Hessian. (The whole command is tested end to end
in tests/cli/test_hessian.py.)"""

import pytest
import torch
from cases import dense_hessian, objective_for

from landscape.hessian import HessianOperator
from landscape.hessian.analyze import layer_blocks, per_layer_eigen

pytestmark = pytest.mark.usefixtures("one_thread")


def test_per_layer_blocks_match_dense_blocks():
    obj = objective_for("bn_cnn", loss="ce", batch_size=16)
    H = dense_hessian(obj)
    blocks = layer_blocks(obj)
    assert list(blocks) == ["conv", "bn", "fc"]
    out = per_layer_eigen(HessianOperator(obj), blocks, tol=1e-7)
    for item in out:
        sl = blocks[item.name]
        exact = float(torch.linalg.eigvalsh(H[sl, sl])[-1])
        assert item.lambda_max == pytest.approx(exact, rel=1e-5, abs=1e-9)
        assert item.params == sl.stop - sl.start
        assert item.converged
