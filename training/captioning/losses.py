"""Label-smoothed KL (warm-start) and the reward-biased KL (RL phases), spec section 2.1.

Both return the summed elementwise KL; the caller divides by the token count of the *global*
batch (times 0.2 for the biased KL), so one worker and N workers optimise the same loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_target(target: torch.Tensor, vocab: int, smoothing: float, pad: int) -> torch.Tensor:
    """(B,L,V): smoothing/(V−2) everywhere, 1−smoothing at the ground truth, pad column and pad rows 0."""
    dist = torch.full((*target.shape, vocab), smoothing / (vocab - 2), device=target.device)
    dist.scatter_(-1, target[..., None], 1.0 - smoothing)
    dist[..., pad] = 0
    return dist * (target != pad)[..., None]


def biased_target(target: torch.Tensor, sampled: torch.Tensor, amplitude: torch.Tensor, vocab: int,
                  smoothing: float, pad: int) -> torch.Tensor:
    """Ground truth (1−s)(1−a), then + (1−s)·a at the sampled token (added after the pad column is zeroed)."""
    conf = 1.0 - smoothing
    dist = torch.full((*target.shape, vocab), smoothing / (vocab - 2), device=target.device,
                      dtype=amplitude.dtype)
    dist = dist.scatter(-1, target[..., None], (conf * (1 - amplitude))[..., None])
    dist = dist.index_fill(-1, torch.tensor([pad], device=target.device), 0.0)
    dist = dist.scatter_add(-1, sampled[..., None], (conf * amplitude)[..., None])
    return dist * (target != pad)[..., None]


def kl_sum(logp: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Σ target·(log target − logp) with 0·log 0 = 0 (F.kl_div; differentiable in the target too)."""
    return F.kl_div(logp.float(), dist, reduction="none").sum()
