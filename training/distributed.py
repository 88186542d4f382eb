"""Distributed building blocks that every task shares: nested-tensor utilities, the
differentiable all-gather and BatchNorm over the global batch.

BatchNorm layers are replaced by a gathered version that normalises with the statistics of
the gathered global batch (torch's SyncBatchNorm is GPU-only; this one also works on
CPU/gloo), so 1 worker and N workers compute the same numbers. State-dict keys stay those of
``nn.BatchNorm*``.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------- tree utils


def tree_map(fn: Callable[[torch.Tensor], Any], obj: Any) -> Any:
    """Apply ``fn`` to every tensor in nested dicts / lists / tuples / dataclasses."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: tree_map(fn, v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(tree_map(fn, v) for v in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(tree_map(fn, v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: tree_map(fn, getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    return obj


def tree_cat(parts: list[Any]) -> Any:
    """Concatenate structurally identical trees along dim 0."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=0)
    if isinstance(first, dict):
        return {k: tree_cat([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(tree_cat([p[i] for p in parts]) for i in range(len(first))))
    if isinstance(first, list | tuple):
        return type(first)(tree_cat([p[i] for p in parts]) for i in range(len(first)))
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return dataclasses.replace(
            first, **{f.name: tree_cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(first)}
        )
    return first


# ----------------------------------------------------------------------------- distributed


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_sizes(n_local: int, device: torch.device) -> list[int]:
    size = world()[1]
    n = torch.tensor([n_local], device=device)
    sizes = [torch.zeros_like(n) for _ in range(size)]
    dist.all_gather(sizes, n)
    return [int(s.item()) for s in sizes]


def gather_cat(x: torch.Tensor, differentiable: bool = True, sizes: list[int] | None = None) -> torch.Tensor:
    """All-gather ``x`` along dim 0 from every rank (sizes may differ by rank), in rank order.

    The differentiable variant sums the incoming gradients in backward, so the gradient that
    reaches each rank's slice is the sum over ranks of the (identical) batch losses; DDP's
    averaging then yields exactly the gradient of one batch loss.
    """
    size = world()[1]
    if size == 1:
        return x
    sizes = sizes or _gather_sizes(x.shape[0], x.device)
    longest = max(sizes)
    if x.shape[0] < longest:
        pad = x.new_zeros((longest - x.shape[0], *x.shape[1:]))
        x = torch.cat([x, pad], dim=0)
    if differentiable:
        import warnings

        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():  # deprecated in favour of a private API; still the public one
            warnings.simplefilter("ignore", FutureWarning)
            parts = list(all_gather(x.contiguous()))
    else:
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)], dim=0)


def _gathered_bn_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """BatchNorm statistics of the *global* batch (all ranks), the local rows back.

    Serves ``nn.BatchNorm*`` and ``MaskedBatchNorm1d`` (rows outside ``mask`` neither enter
    the statistics nor come back non-zero). Ranks concatenate in rank order, which is the
    order of the single-worker batch, so one worker and N workers compute the same numbers.
    Every rank takes the same branch (decided on global row counts): no collective mismatch.
    """
    cls_forward = type(self).forward
    rank, size = world()
    if size == 1 or not self.training:
        return cls_forward(self, x) if mask is None else cls_forward(self, x, mask)
    rows = x if mask is None else x[mask.reshape(-1).to(torch.bool)]
    sizes = _gather_sizes(rows.shape[0], x.device)
    total, offset = sum(sizes), sum(sizes[:rank])
    if total >= 2:
        everything = gather_cat(rows, sizes=sizes)
        normed = nn.modules.batchnorm._BatchNorm.forward(self, everything)[offset : offset + rows.shape[0]]
    elif total == 1:  # one valid row in the whole batch: no batch statistic exists
        normed = F.batch_norm(rows, self.running_mean, self.running_var, self.weight, self.bias,
                              False, 0.0, self.eps)
    else:
        normed = rows
    if self.affine:  # keep weight/bias in the graph on every rank (DDP static graph)
        normed = normed + 0.0 * (self.weight.sum() + self.bias.sum())
    if mask is None:
        return normed
    out = x.new_zeros(x.shape)
    out[mask.reshape(-1).to(torch.bool)] = normed.to(out.dtype)
    return out


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Make every BatchNorm (incl. ``MaskedBatchNorm1d``) normalise over the global batch.

    torch's SyncBatchNorm is GPU-only; this works on gloo/CPU and NCCL/GPU alike. The
    module classes and state-dict keys are unchanged (only the instances' ``forward`` is
    rebound), so checkpoints load into a plain model. One worker: plain BatchNorm.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = types.MethodType(_gathered_bn_forward, m)
    return module


def to_device(obj: Any, device: torch.device) -> Any:
    """Every tensor of a nested batch moved to ``device``."""
    return tree_map(lambda t: t.to(device, non_blocking=True), obj)
