"""Parameter spaces: named tensors <-> one flat vector, and which parameters are which.

Every instrument works on a flat parameter vector ``theta`` (one contiguous 1-D tensor); the
:class:`ParamSpace` knows the names, shapes and kinds of the pieces, so turning ``theta`` into the
dict that :func:`torch.func.functional_call` wants is a set of views, not copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Tuple

import torch
from torch import nn

_NORM_TYPES = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


@dataclass(frozen=True)
class ParamSpace:
    """Names, shapes and kinds of a model's trainable parameters, in ``model.parameters()`` order.

    ``kinds[i]`` is ``"weight"`` for weights of conv/linear layers, ``"bias"`` for their biases and
    ``"norm"`` for parameters of normalisation layers (BatchNorm, GroupNorm, LayerNorm).
    """

    names: Tuple[str, ...]
    shapes: Tuple[torch.Size, ...]
    kinds: Tuple[str, ...]

    @classmethod
    def from_model(cls, model: nn.Module) -> ParamSpace:
        names, shapes, kinds = [], [], []
        for mod_name, module in model.named_modules():
            for p_name, p in module.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                full = f"{mod_name}.{p_name}" if mod_name else p_name
                names.append(full)
                shapes.append(p.shape)
                if isinstance(module, _NORM_TYPES):
                    kinds.append("norm")
                elif p.dim() <= 1:
                    kinds.append("bias")
                else:
                    kinds.append("weight")
        # named_modules visits modules in registration order, which is parameters() order for
        # models without shared parameters; enforce it so optimizer-state mapping stays valid.
        order = [n for n, p in model.named_parameters() if p.requires_grad]
        if order != names:
            index = {n: i for i, n in enumerate(names)}
            perm = [index[n] for n in order]
            names = [names[i] for i in perm]
            shapes = [shapes[i] for i in perm]
            kinds = [kinds[i] for i in perm]
        return cls(tuple(names), tuple(shapes), tuple(kinds))

    @property
    def numels(self) -> Tuple[int, ...]:
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def size(self) -> int:
        """Total number of scalar parameters (the dimension of ``theta``)."""
        return sum(self.numels)

    def offsets(self) -> List[Tuple[int, int]]:
        """``(start, stop)`` of each parameter inside the flat vector."""
        out, start = [], 0
        for n in self.numels:
            out.append((start, start + n))
            start += n
        return out

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate named tensors (missing names are zero) into one flat vector."""
        ref = next(iter(tensors.values()))
        parts = []
        for name, shape in zip(self.names, self.shapes):
            t = tensors.get(name)
            if t is None:
                t = torch.zeros(shape, dtype=ref.dtype, device=ref.device)
            elif tuple(t.shape) != tuple(shape):
                raise ValueError(f"{name}: shape {tuple(t.shape)} != {tuple(shape)}")
            parts.append(t.reshape(-1).to(dtype=ref.dtype, device=ref.device))
        return torch.cat(parts)

    def unflatten(self, theta: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Views of a flat vector (or a batch ``(..., size)`` of them) as named tensors."""
        lead = theta.shape[:-1]
        return {
            name: theta[..., a:b].reshape(*lead, *shape)
            for name, shape, (a, b) in zip(self.names, self.shapes, self.offsets())
        }

    def mask(self, kinds: Iterable[str], *, like: torch.Tensor) -> torch.Tensor:
        """A 0/1 vector that is 1 on the parameters of the given kinds."""
        keep = set(kinds)
        parts = [
            torch.full((n,), 1.0 if k in keep else 0.0, dtype=like.dtype, device=like.device)
            for n, k in zip(self.numels, self.kinds)
        ]
        return torch.cat(parts)

    def blocks(self) -> Dict[str, slice]:
        """Slices of the flat vector per parameter name (for per-layer analyses)."""
        return {n: slice(a, b) for n, (a, b) in zip(self.names, self.offsets())}
