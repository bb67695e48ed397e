"""Run under torchrun: data-parallel loss, gradient and HVP through the Objective; rank 0 saves them."""

import sys

import torch

from landscape import distributed, open_session

out = sys.argv[1]
s = open_session(None, model="cnn", data="digits", subset=300, batch_size=64, init_seed=0, bn_mode=sys.argv[2])
assert distributed.world_size() == 2 and s.train.sharded
v = torch.randn(s.train.dim, generator=torch.Generator().manual_seed(0))
ev = s.train.evaluate()
value, g = s.train.value_and_grad()
hv = s.train.hvp(v)
if distributed.is_main():
    torch.save({"loss": ev.loss, "acc": ev.acc, "value": value, "grad": g, "hvp": hv,
                "n_local_batches": len(s.train.bounds)}, out)
