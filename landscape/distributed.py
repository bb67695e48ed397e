"""A thin torch.distributed layer: the same functions run on one process or under torchrun.

When ``torch.distributed`` is initialised (``torchrun --nproc-per-node N -m landscape ...``), the
:class:`~landscape.objective.Objective` shards its evaluation set across ranks and sums with
``all_reduce`` (so losses, gradients and Hessian-vector products equal the single-process ones to
float tolerance), slices split grid points across ranks, and only rank 0 prints and writes files.
Backends: NCCL for ``--device cuda`` (each rank on ``cuda:LOCAL_RANK``), gloo on CPU.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, List, Optional, Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: Optional[str] = None) -> bool:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE`` > 1); idempotent.

    Returns True when running distributed.
    """
    if is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    backend = "nccl" if (device or "").startswith("cuda") and torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Leave the process group cleanly (all ranks meet first); registered at exit by
    :func:`init_from_env`. Without it gloo's threads can abort a rank that exits early
    ("terminate called without an active exception")."""
    if is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op on one process); returns it."""
    if is_initialized() and world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Make every rank hold rank ``src``'s tensor (e.g. a random start vector)."""
    if is_initialized() and world_size() > 1:
        dist.broadcast(tensor, src=src)
    return tensor


def gather_objects(obj: Any) -> Optional[List[Any]]:
    """Pickle-able objects from every rank, as a list on rank 0 (None elsewhere)."""
    if not is_initialized() or world_size() == 1:
        return [obj]
    out: Optional[List[Any]] = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s object on every rank."""
    if not is_initialized() or world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shard(items: Sequence[T]) -> List[T]:
    """This rank's share of ``items``, interleaved (rank r takes items r, r+W, r+2W, ...)."""
    return list(items[rank()::world_size()])
