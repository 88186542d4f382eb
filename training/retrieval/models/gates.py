"""Projection and gating blocks of CE (SPEC-CE.md "GEU", "Full CE" steps 1-3).

Every block takes an optional row mask: rows of videos that lack the expert are kept out of
BatchNorm statistics (see `MaskedBatchNorm1d`) and come back as zeros.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videxperts.training.retrieval.models.norm import MaskedBatchNorm1d


def _zero_rows(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask.to(x.dtype)[:, None]


class ReduceDim(nn.Module):
    """Linear(in -> out) then L2-normalise: CE's per-expert projection to the shared space."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return _zero_rows(F.normalize(self.fc(x), dim=-1), mask)


class ContextGating(nn.Module):
    """y = x ⊙ σ(BN(Linear(x))) (no normalisation: callers decide)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.bn = MaskedBatchNorm1d(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return _zero_rows(x * torch.sigmoid(self.bn(self.fc(x), mask)), mask)


class GatedEmbeddingUnit(nn.Module):
    """GEU: Linear(in -> out) -> context gating -> L2-normalise."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.cg = ContextGating(out_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return F.normalize(self.cg(self.fc(x), mask), dim=-1)


class PlainGate(nn.Module):
    """CE − CG's per-expert gate: context gating on the reduced vector (Linear d->d + BN), L2."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cg = ContextGating(dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return F.normalize(self.cg(x, mask), dim=-1)


class ReasoningGate(nn.Module):
    """CE step 3 for one expert: x ⊙ σ(BN(g_i) + BN(Linear(x))), then L2-normalise."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.bn_x = MaskedBatchNorm1d(dim)
        self.bn_g = MaskedBatchNorm1d(dim)

    def forward(self, x: Tensor, g: Tensor, mask: Tensor | None = None) -> Tensor:
        gate = torch.sigmoid(self.bn_g(g, mask) + self.bn_x(self.fc(x), mask))
        return _zero_rows(F.normalize(x * gate, dim=-1), mask)


class _BnMishLinear(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = MaskedBatchNorm1d(dim)
        self.act = nn.Mish()
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.fc(self.act(self.bn(x, mask)))


class CollaborativeGating(nn.Module):
    """CE step 2: for expert i, mean over available j (i included) of g([x_i; x_j]), then h.

    g = Linear(2d -> d) followed by (num_g_layers − 1) × [BatchNorm, Mish, Linear(d -> d)].
    Choices where SPEC-CE.md is silent:
    - g is one module shared by all (i, j) pairs, as in the published code.
    - only pairs with both experts available are computed (gathered), so missing experts
      neither enter the mean nor the BatchNorm statistics.
    - h = (num_h_layers) × [BatchNorm, Mish, Linear(d -> d)] on the mean; identity for the
      published num_h_layers = 0.
    - an unavailable expert i gets g_i = 0 (its embedding is zeroed later anyway).
    """

    def __init__(self, dim: int, num_g_layers: int = 3, num_h_layers: int = 0) -> None:
        super().__init__()
        if num_g_layers < 1:
            raise ValueError(f"num_g_layers must be >= 1, got {num_g_layers}")
        self.dim = dim
        self.g_in = nn.Linear(2 * dim, dim)
        self.g_layers = nn.ModuleList(_BnMishLinear(dim) for _ in range(num_g_layers - 1))
        self.h_layers = nn.ModuleList(_BnMishLinear(dim) for _ in range(num_h_layers))

    def forward(self, x: Tensor, available: Tensor) -> Tensor:
        """x `[B, E, d]`, available `[B, E]` -> g `[B, E, d]`."""
        b, e, d = x.shape
        avail = available.to(torch.bool)
        pair_mask = avail[:, :, None] & avail[:, None, :]  # [B, i, j]
        # Linear(2d -> d) on [x_i; x_j] = W_a x_i + W_b x_j + bias: project each expert once
        # instead of each pair (E× fewer multiplications, half the pair memory).
        w_a, w_b = self.g_in.weight[:, :d], self.g_in.weight[:, d:]
        left = F.linear(x, w_a, self.g_in.bias)  # [B, E, d]
        right = F.linear(x, w_b)  # [B, E, d]
        y = (left[:, :, None, :] + right[:, None, :, :])[pair_mask]  # [P, d]; P = valid pairs
        for layer in self.g_layers:
            y = layer(y)
        summed = x.new_zeros(b, e, e, d)
        summed[pair_mask] = y.to(summed.dtype)
        count = pair_mask.sum(2).clamp_min(1).to(x.dtype)  # number of available j per (b, i)
        g = summed.sum(2) / count[..., None]  # [B, E, d]
        if len(self.h_layers):
            flat, m = g.reshape(b * e, d), avail.reshape(-1)
            for layer in self.h_layers:
                flat = layer(flat, m)
            g = flat.view(b, e, d)
        return g * avail[..., None].to(x.dtype)

    def gate_one(self, i: int, x: Tensor, available: Tensor) -> Tensor:
        """g for expert i alone, as the published code computes it (`model.compat.sequential_gating`):
        one pass of g per pair (i, j), each with its own BatchNorm statistics over the batch
        rows where both experts exist, then the mean over available j and h. x `[B, E, d]`
        (whatever the caller has: the published code passes the already gated embeddings of
        earlier experts), available `[B, E]` -> `[B, d]`."""
        avail = available.to(torch.bool)
        d = x.shape[2]
        # Linear(2d -> d) on [x_i; x_j] = W_a x_i + b + W_b x_j, as in `forward`
        left = F.linear(x[:, i], self.g_in.weight[:, :d], self.g_in.bias)
        right = F.linear(x, self.g_in.weight[:, d:])  # [B, E, d]
        acc = x.new_zeros(x.shape[0], d)
        count = x.new_zeros(x.shape[0])
        for j in range(x.shape[1]):
            m = avail[:, i] & avail[:, j]
            y = left + right[:, j]
            for layer in self.g_layers:
                y = layer(y, m)
            acc = acc + y * m[:, None].to(y.dtype)
            count = count + m.to(x.dtype)
        g = acc / count.clamp_min(1)[:, None]
        for layer in self.h_layers:
            g = layer(g, avail[:, i])
        return g * avail[:, i, None].to(x.dtype)
