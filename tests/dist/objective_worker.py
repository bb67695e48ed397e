"""Run under torchrun: data-parallel loss, gradient and HVP through the Objective, for each BatchNorm
mode named after the output path (one torchrun for all of them); rank 0 saves {mode: numbers}."""

import sys

import torch

from landscape import distributed, open_session

out, modes = sys.argv[1], sys.argv[2:]
results = {}
for bn_mode in modes:
    s = open_session(None, model="cnn", data="digits", subset=300, batch_size=64, init_seed=0, bn_mode=bn_mode)
    assert distributed.world_size() == 2 and s.train.sharded
    v = torch.randn(s.train.dim, generator=torch.Generator().manual_seed(0))
    ev = s.train.evaluate()
    value, g = s.train.value_and_grad()
    hv = s.train.hvp(v)
    results[bn_mode] = {"loss": ev.loss, "acc": ev.acc, "value": value, "grad": g, "hvp": hv,
                        "n_local_batches": len(s.train.bounds)}
if distributed.is_main():
    torch.save(results, out)
