"""Building blocks shared by BMT and BMHRL (docs/CAPTIONING.md, spec section 1.1).

Multi-headed attention with dropout on the attention *output* (softmax·V, as published),
pre-norm residual wrappers, the position-wise feed-forward, the sinusoidal positional
encoding (textbook or the original's per-dimension exponent) and AReLU.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PE_MAX_LEN = 3660


def positional_table(d: int, max_len: int = PE_MAX_LEN, per_dim_exponent: bool = False,
                     device: torch.device | None = None) -> torch.Tensor:
    """(max_len, d) sinusoids; ``per_dim_exponent``: dimension k uses pos/10000^(k/d) (the original)."""
    pos = torch.arange(max_len, dtype=torch.float64, device=device)[:, None]
    k = torch.arange(d, dtype=torch.float64, device=device)
    expo = k if per_dim_exponent else 2 * torch.div(k, 2, rounding_mode="floor")
    angle = pos / torch.pow(10000.0, expo / d)
    table = torch.where(k.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()


class PositionalEncoder(nn.Module):
    """Adds the table and applies dropout; no parameters and no registered buffer (as published)."""

    def __init__(self, d: int, dropout: float, per_dim_exponent: bool = False, max_len: int = PE_MAX_LEN) -> None:
        super().__init__()
        self.d, self.max_len, self.per_dim_exponent = d, max_len, per_dim_exponent
        self.dropout = nn.Dropout(dropout)
        self._table: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if x.device.type == "meta":
            return self.dropout(x)
        if self._table is None or self._table.device != x.device:
            self._table = positional_table(self.d, self.max_len, self.per_dim_exponent, x.device)
        return self.dropout(x + self._table[offset:offset + x.shape[1]].to(x.dtype))


class MultiheadedAttention(nn.Module):
    """Q dQ->d_model, K dK->d_model, V dV->d_model, output d_model->dQ; the output has the query's width."""

    def __init__(self, d_q: int, d_k: int, d_v: int, heads: int, dropout: float, d_model: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not divisible by {heads} heads")
        self.heads, self.d_head = heads, d_model // heads
        self.q = nn.Linear(d_q, d_model)
        self.k = nn.Linear(d_k, d_model)
        self.v = nn.Linear(d_v, d_model)
        self.out = nn.Linear(d_model, d_q)
        self.dropout = nn.Dropout(dropout)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.d_head).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Heads already split: (B,H,Lq,dk) x (B,H,Lk,dk); mask (B,1|Lq,Lk) True = keep."""
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None], float("-inf"))
        att = torch.softmax(scores, dim=-1) @ v
        b, _, lq, _ = att.shape
        return self.out(self.dropout(att.transpose(1, 2).reshape(b, lq, self.heads * self.d_head)))

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.attend(self.split(self.q(query)), self.split(self.k(key)), self.split(self.v(value)), mask)


class ResidualConnection(nn.Module):
    """Pre-norm: x + Dropout(sublayer(LayerNorm(x)))."""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, sublayer) -> torch.Tensor:  # noqa: ANN001 - any callable
        return x + self.dropout(sublayer(self.norm(x)))


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, d_ff)
        self.fc2 = nn.Linear(d_ff, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(torch.relu(self.fc1(x))))


class AReLU(nn.Module):
    """relu(x)·(1+sigmoid(beta)) − relu(−x)·alpha, alpha clamped to [0.01, 0.99]."""

    def __init__(self, alpha: float = 0.90, beta: float = 2.0) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor([alpha]))
        self.beta = nn.Parameter(torch.tensor([beta]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.clamp(0.01, 0.99)
        return torch.relu(x) * (1 + torch.sigmoid(self.beta)) - torch.relu(-x) * alpha


class BiModalEncoderLayer(nn.Module):
    """Self-attention per stream, cross attention both ways, feed-forward per stream (3 residuals each)."""

    def __init__(self, d_v: int, d_a: int, d_model: int, heads: int, dropout: float, ff_v: int, ff_a: int) -> None:
        super().__init__()
        self.self_att_v = MultiheadedAttention(d_v, d_v, d_v, heads, dropout, d_model)
        self.self_att_a = MultiheadedAttention(d_a, d_a, d_a, heads, dropout, d_model)
        self.cross_v = MultiheadedAttention(d_v, d_a, d_a, heads, dropout, d_model)  # video queries audio
        self.cross_a = MultiheadedAttention(d_a, d_v, d_v, heads, dropout, d_model)  # audio queries video
        self.ff_v = PositionwiseFeedForward(d_v, ff_v, dropout)
        self.ff_a = PositionwiseFeedForward(d_a, ff_a, dropout)
        self.res_v = nn.ModuleList(ResidualConnection(d_v, dropout) for _ in range(3))
        self.res_a = nn.ModuleList(ResidualConnection(d_a, dropout) for _ in range(3))

    def forward(self, v: torch.Tensor, a: torch.Tensor, v_mask: torch.Tensor,
                a_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.res_v[0](v, lambda x: self.self_att_v(x, x, x, v_mask))
        a = self.res_a[0](a, lambda x: self.self_att_a(x, x, x, a_mask))
        v_new = self.res_v[1](v, lambda x: self.cross_v(x, a, a, a_mask))
        a_new = self.res_a[1](a, lambda x: self.cross_a(x, v, v, v_mask))
        return self.res_v[2](v_new, self.ff_v), self.res_a[2](a_new, self.ff_a)


class BiModalEncoder(nn.Module):
    """N bi-modal layers; returns (Va (B,Sv,d_v), Av (B,Sa,d_a))."""

    def __init__(self, d_v: int, d_a: int, d_model: int, heads: int, dropout: float, ff_v: int, ff_a: int,
                 layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(BiModalEncoderLayer(d_v, d_a, d_model, heads, dropout, ff_v, ff_a)
                                    for _ in range(layers))

    def forward(self, v: torch.Tensor, a: torch.Tensor, v_mask: torch.Tensor,
                a_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            v, a = layer(v, a, v_mask, a_mask)
        return v, a


def causal_mask(tokens: torch.Tensor, pad: int) -> torch.Tensor:
    """(B,L,L) non-pad ∧ lower-triangular (True = may attend)."""
    length = tokens.shape[1]
    tri = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
    return (tokens != pad)[:, None, :] & tri[None]


def feature_mask(x: torch.Tensor, lengths_mask: torch.Tensor | None, pad_value_mask: bool) -> torch.Tensor:
    """(B,1,S): the original tests channel 0 != 1 (``pad_value_mask``); otherwise the loader's row mask."""
    if pad_value_mask or lengths_mask is None:
        return (x[:, :, 0] != 1)[:, None, :]
    return lengths_mask[:, None, :].bool()
