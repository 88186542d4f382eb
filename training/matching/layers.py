"""Building blocks of VSRN and DCPG: GCN reasoning, the attention policy, the two caption decoders.

Every size comes from the caller (the config); nothing here knows 2048 or 36.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def l2norm(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """x / ||x|| along ``dim`` (the originals add eps to the norm, not under the root)."""
    return x / (x.pow(2).sum(dim=dim, keepdim=True).sqrt() + eps)


class RsGCN(nn.Module):
    """One graph reasoning block: R = theta(v)^T phi(v) / N (no softmax), v* = W(R g(v)) + v.

    W ends in a BatchNorm whose weight and bias start at 0, so the block starts as the identity.
    Input and output: (B, D, N).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.g = nn.Conv1d(dim, dim, 1)
        self.theta = nn.Conv1d(dim, dim, 1)
        self.phi = nn.Conv1d(dim, dim, 1)
        self.w = nn.Sequential(nn.Conv1d(dim, dim, 1), nn.BatchNorm1d(dim))
        nn.init.zeros_(self.w[1].weight)
        nn.init.zeros_(self.w[1].bias)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        n = v.shape[-1]
        affinity = torch.bmm(self.theta(v).transpose(1, 2), self.phi(v)) / n  # (B, N, N)
        y = torch.bmm(self.g(v), affinity.transpose(1, 2))  # (B, D, N): y_i = sum_j R_ij g(v_j)
        return self.w(y) + v


@dataclass
class PolicyNoise:
    """The random draws of one branch for a batch: Gumbel (B,T,H,K), uniform (B,T,H) for the
    bin draw, two standard normals (B,T,H) (the applied and the compat second sample)."""

    gumbel: torch.Tensor
    uniform: torch.Tensor
    normal: torch.Tensor
    normal2: torch.Tensor

    @staticmethod
    def draw(shape: tuple[int, int, int, int], generator: torch.Generator | None, device: torch.device,
             dtype: torch.dtype = torch.float32) -> PolicyNoise:
        b, t, h, k = shape
        u = torch.rand((b, t, h, k), generator=generator, device=device, dtype=dtype)
        gumbel = -torch.log(-torch.log(u + 1e-20) + 1e-20)
        rest = [torch.rand((b, t, h), generator=generator, device=device, dtype=dtype)]
        rest += [torch.randn((b, t, h), generator=generator, device=device, dtype=dtype) for _ in range(2)]
        return PolicyNoise(gumbel, *rest)

    def rows(self, index: torch.Tensor) -> PolicyNoise:
        return PolicyNoise(self.gumbel[index], self.uniform[index], self.normal[index], self.normal2[index])


@dataclass
class PolicyTrace:
    """What the policy did, per element and head (B, T, H): log-probs for the PG losses, weights for stats."""

    discrete_logp: torch.Tensor
    continuous_logp: torch.Tensor
    weights: torch.Tensor


class AttentionPolicy(nn.Module):
    """DCPG's per-element attention: a GRUCell walks the T elements; at each step every head picks
    a discrete bin (Gumbel-softmax, straight-through, mean mu = bin / K), draws a continuous value
    a ~ N(mu, sigma) and scales its slice of the element by ``scale * sigmoid(a)``.

    ``fused=True`` computes the input halves of the GRUCell and of both heads for all steps in one
    matmul each (the recurrence stays sequential); the numbers equal the step-by-step loop's.
    """

    def __init__(self, dim: int, heads: int, bins: int, tau: float, scale: float, fused: bool = False) -> None:
        super().__init__()
        self.dim, self.heads, self.bins, self.tau, self.scale, self.fused = dim, heads, bins, tau, scale, fused
        self.cell = nn.GRUCell(dim, dim)
        self.mu = nn.Linear(2 * dim, heads * bins)
        self.logvar = nn.Linear(2 * dim, heads)

    def _act(self, logits: torch.Tensor, logvar: torch.Tensor, noise: PolicyNoise | None, t: int,
             second_sample: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(attention weight (B,H), discrete log-prob, continuous log-prob) of one step."""
        b = logits.shape[0]
        logits = logits.view(b, self.heads, self.bins)
        sigma = torch.exp(0.5 * F.softplus(logvar))  # >= 1, as published
        if noise is None:  # evaluation: deterministic argmax bin, a = mu
            ind = torch.softmax(logits / self.tau, dim=-1).argmax(-1)
            return self.scale * torch.sigmoid(ind.to(logits.dtype) / self.bins), None, None
        y = torch.softmax((logits + noise.gumbel[:, t]) / self.tau, dim=-1)
        cdf = y.detach().cumsum(-1)  # the multinomial redraw, by inverse CDF of a shared uniform
        ind = (cdf < noise.uniform[:, t, :, None] * cdf[..., -1:]).sum(-1).clamp(max=self.bins - 1)
        p = y.gather(-1, ind[..., None]).squeeze(-1)
        hard = F.one_hot(ind, self.bins).to(y.dtype)
        y_st = hard - y.detach() + y  # straight-through: forward one-hot, backward softmax
        steps = torch.arange(self.bins, device=y.device, dtype=y.dtype)
        mu = (y_st * steps).sum(-1) / self.bins
        a = (mu + sigma * noise.normal[:, t]).detach()  # sample(): no gradient
        x = (mu + sigma * noise.normal2[:, t]).detach() if second_sample else a
        logp_c = torch.distributions.Normal(mu, sigma).log_prob(x)
        return self.scale * torch.sigmoid(a), torch.log(p + 1e-20), logp_c

    def forward(self, x: torch.Tensor, noise: PolicyNoise | None = None,
                second_sample: bool = False) -> tuple[torch.Tensor, PolicyTrace]:
        """x (B, T, D) -> attended (B, T, D) and the trace; ``noise`` None means evaluation."""
        b, t_len, d = x.shape
        h = x.new_zeros(b, d)
        out, logp_d, logp_c, weights = [], [], [], []
        if self.fused:
            w_ih, w_hh = self.cell.weight_ih, self.cell.weight_hh
            gi_all = F.linear(x, w_ih, self.cell.bias_ih)  # (B, T, 3D)
            xr = F.relu(x)
            mu_x = F.linear(xr, self.mu.weight[:, :d], self.mu.bias)
            lv_x = F.linear(xr, self.logvar.weight[:, :d], self.logvar.bias)
        for t in range(t_len):
            xt = x[:, t]
            if self.fused:
                gh = F.linear(h, w_hh, self.cell.bias_hh)
                i_r, i_z, i_n = gi_all[:, t].chunk(3, dim=1)
                h_r, h_z, h_n = gh.chunk(3, dim=1)
                r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = (1 - z) * n + z * h
                hr = F.relu(h)
                logits = mu_x[:, t] + F.linear(hr, self.mu.weight[:, d:])
                logvar = lv_x[:, t] + F.linear(hr, self.logvar.weight[:, d:])
            else:
                h = self.cell(xt, h)
                z = F.relu(torch.cat([xt, h], dim=1))
                logits, logvar = self.mu(z), self.logvar(z)
            w, lpd, lpc = self._act(logits, logvar, noise, t, second_sample)
            out.append((xt.view(b, self.heads, d // self.heads) * w[..., None]).view(b, d))
            weights.append(w)
            if lpd is not None:
                logp_d.append(lpd)
                logp_c.append(lpc)
        stack = torch.stack
        empty = x.new_zeros(b, t_len, self.heads)
        trace = PolicyTrace(stack(logp_d, 1) if logp_d else empty, stack(logp_c, 1) if logp_c else empty,
                            stack(weights, 1).detach())
        return stack(out, 1), trace


def _wn_linear(i: int, o: int) -> nn.Module:
    return weight_norm(nn.Linear(i, o))


class _UnusedAttention(nn.Module):
    """convcap's attention layer; DCPG calls the decoder with is_attention=False, so it only counts."""

    def __init__(self, channels: int, embed: int) -> None:
        super().__init__()
        self.in_projection = _wn_linear(channels, embed)
        self.out_projection = _wn_linear(embed, channels)


class ConvCapDecoder(nn.Module):
    """DCPG's convcap text decoder (weight-normed, causal convolutions, GLU, sqrt(0.5) residuals).

    Words in: the caption's word vectors (B, L, word_dim); "image" in: the l2-normalised *text*
    embedding, projected and broadcast over L. Out: (B, L, V) logits.
    """

    def __init__(self, vocab: int, word_dim: int, embed_size: int, nfeats: int, layers: int, kernel: int,
                 dropout: float) -> None:
        super().__init__()
        self.kernel, self.dropout = kernel, dropout
        self.emb_1 = _wn_linear(word_dim, nfeats)
        self.imgproj = _wn_linear(embed_size, nfeats)
        self.imgsproj = _wn_linear(embed_size, nfeats)  # attention path only: unused
        self.resproj = _wn_linear(2 * nfeats, nfeats)
        self.convs = nn.ModuleList(weight_norm(nn.Conv1d(2 * nfeats if i == 0 else nfeats, 2 * nfeats, kernel,
                                                         padding=kernel - 1)) for i in range(layers))
        self.attention = nn.ModuleList(_UnusedAttention(nfeats, nfeats) for _ in range(layers))
        self.classifier_0 = _wn_linear(nfeats, nfeats // 2)
        self.classifier_1 = _wn_linear(nfeats // 2, vocab)

    def forward(self, words: torch.Tensor, text_emb: torch.Tensor) -> torch.Tensor:
        length = words.shape[1]
        x = self.emb_1(words).transpose(1, 2)  # (B, F, L)
        img = self.imgproj(text_emb)[:, :, None].expand(-1, -1, length)
        x = torch.cat([x, img], dim=1)  # (B, 2F, L)
        for i, conv in enumerate(self.convs):
            residual = self.resproj(x.transpose(1, 2)).transpose(1, 2) if i == 0 else x
            x = F.dropout(x, self.dropout, self.training)
            x = conv(x)[:, :, : -(self.kernel - 1)] if self.kernel > 1 else conv(x)  # causal
            x = (F.glu(x, dim=1) + residual) * math.sqrt(0.5)
        x = self.classifier_0(x.transpose(1, 2))
        return self.classifier_1(F.dropout(x, self.dropout, self.training))


class S2VTCaptioner(nn.Module):
    """VSRN's caption-generation side loss: an attention GRU decoder over the GCN region features."""

    def __init__(self, vocab: int, img_dim: int, hidden: int, word_dim: int, input_dropout: float) -> None:
        super().__init__()
        self.enc_fc = nn.Linear(img_dim, hidden)
        self.enc_rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.embed = nn.Embedding(vocab, word_dim)
        self.att_1 = nn.Linear(2 * hidden, hidden)
        self.att_2 = nn.Linear(hidden, 1, bias=False)
        self.dec_rnn = nn.GRU(word_dim + hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)
        self.drop = nn.Dropout(input_dropout)

    def forward(self, regions: torch.Tensor, labels: torch.Tensor, steps: int) -> torch.Tensor:
        """Teacher-forced log-probs (B, steps, V) of labels[:, 1:steps+1] given labels[:, :steps]."""
        enc, hidden = self.enc_rnn(self.drop(self.enc_fc(regions)))
        outs = []
        for i in range(steps):
            query = hidden[0][:, None, :].expand(-1, enc.shape[1], -1)
            score = self.att_2(torch.tanh(self.att_1(torch.cat([enc, query], dim=2)))).squeeze(2)
            context = torch.bmm(torch.softmax(score, dim=1)[:, None, :], enc).squeeze(1)
            inp = self.drop(torch.cat([self.embed(labels[:, i]), context], dim=1))
            out, hidden = self.dec_rnn(inp[:, None, :], hidden)
            outs.append(F.log_softmax(self.out(out[:, 0]), dim=-1))
        return torch.stack(outs, 1)
