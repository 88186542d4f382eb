"""Greedy decoding as published (at most ``max_len`` new tokens), incremental greedy and beam search.

The original re-runs the whole model on the full prefix at every step (:func:`greedy_full`).
:func:`greedy` keeps each layer's keys/values, the critic's recurrent state and the current goal
(``model.start``/``model.step``), so a step costs one position; the output is the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from videxperts.training.captioning.vocab import BOS, EOS


def captioner(model: nn.Module) -> nn.Module:
    """The module that decodes: the BMHRL agent inside the trained system, or the BMT model."""
    return getattr(model, "agent", model)


@torch.no_grad()
def greedy_full(model: nn.Module, mem: tuple, batch: int, max_len: int = 30) -> torch.Tensor:
    """(B, ≤max_len+1) tokens starting with ``<s>``: the whole prefix re-run every step (the original)."""
    device = mem[0].device
    trg = torch.full((batch, 1), BOS, dtype=torch.long, device=device)
    ended = torch.zeros(batch, dtype=torch.bool, device=device)
    while not ended.all() and trg.shape[1] <= max_len:
        nxt = model.decode(mem, trg)[:, -1].argmax(-1)
        trg = torch.cat([trg, nxt[:, None]], dim=1)
        ended |= nxt == EOS
    return trg


@torch.no_grad()
def greedy(model: nn.Module, mem: tuple, batch: int, max_len: int = 30) -> torch.Tensor:
    """Same tokens as :func:`greedy_full`, one new position per step (cached)."""
    device = mem[0].device
    trg = torch.full((batch, 1), BOS, dtype=torch.long, device=device)
    ended = torch.zeros(batch, dtype=torch.bool, device=device)
    state = model.start(mem)
    while not ended.all() and trg.shape[1] <= max_len:
        nxt = model.step(mem, state, trg[:, -1:]).argmax(-1)
        trg = torch.cat([trg, nxt[:, None]], dim=1)
        ended |= nxt == EOS
    return trg


def _repeat_mem(mem: tuple, k: int) -> tuple:
    return tuple(x.repeat_interleave(k, dim=0) for x in mem)


@torch.no_grad()
def beam_search(model: nn.Module, mem: tuple, batch: int, beam: int, max_len: int = 30,
                length_penalty: float = 0.0) -> torch.Tensor:
    """Best of ``beam`` hypotheses per item by summed log-probability (/ length^penalty); finished
    hypotheses keep their score. Returns (B, T) tokens starting with ``<s>`` (EOS-padded)."""
    device = mem[0].device
    mem_k = _repeat_mem(mem, beam)
    seqs = torch.full((batch * beam, 1), BOS, dtype=torch.long, device=device)
    scores = torch.zeros(batch, beam, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: keep one
    ended = torch.zeros(batch * beam, dtype=torch.bool, device=device)
    while not ended.all() and seqs.shape[1] <= max_len:
        logp = model.decode(mem_k, seqs)[:, -1].float()  # (B·K, V)
        vocab = logp.shape[-1]
        logp = torch.where(ended[:, None], torch.full_like(logp, float("-inf")), logp)
        logp[ended, EOS] = 0.0  # a finished hypothesis only extends with </s> at no cost
        cand = (scores.view(-1, 1) + logp).view(batch, beam * vocab)
        top, idx = cand.topk(beam, dim=-1)
        origin = idx // vocab + torch.arange(batch, device=device)[:, None] * beam
        token = idx % vocab
        seqs = torch.cat([seqs[origin.view(-1)], token.view(-1, 1)], dim=1)
        ended = ended[origin.view(-1)] | (token.view(-1) == EOS)
        scores = top
    lengths = ((seqs != EOS).cumsum(1) == torch.arange(1, seqs.shape[1] + 1, device=device)).sum(1)
    norm = scores.view(-1) / lengths.clamp(min=1).float() ** length_penalty
    best = norm.view(batch, beam).argmax(-1) + torch.arange(batch, device=device) * beam
    return seqs[best]


def to_sentence(ids: Sequence[int], itos: Sequence[str]) -> str:
    """Drop ``<s>``, cut at the first ``</s>``, join with spaces, ``str.capitalize()`` (as published)."""
    words: list[str] = []
    for i in list(ids)[1:] if len(ids) and int(ids[0]) == BOS else list(ids):
        if int(i) == EOS:
            break
        words.append(itos[int(i)])
    return " ".join(words).capitalize()
