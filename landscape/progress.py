"""Progress bars with ETA on stderr (only on rank 0; off with ``LANDSCAPE_PROGRESS=0``)."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from tqdm import tqdm


def is_main_process() -> bool:
    try:
        import torch.distributed as dist

        return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
    except Exception:
        return True


def progress(total: Optional[int] = None, desc: str = "", **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr; silent on non-zero ranks or when disabled by the environment."""
    disable = os.environ.get("LANDSCAPE_PROGRESS", "1") == "0" or not is_main_process()
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=disable, dynamic_ncols=True,
                leave=False, **kwargs)
