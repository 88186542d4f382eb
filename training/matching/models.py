"""VSRN and DCPG: region encoder (fc -> GCN reasoning -> [policy] -> GRU), text encoder, side heads.

Both models expose ``encode_image(regions, noise)`` and ``encode_text(batch, noise)`` returning the
(un-normalised) embedding and the policy trace (None without a policy); the losses live in
:mod:`.losses`, the per-batch wiring in :mod:`.task`. Top-level children are the blocks of the
published parameter table, so ``--describe`` lists them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from videxperts.training.matching.config import MatchingConfig
from videxperts.training.matching.layers import (
    AttentionPolicy,
    ConvCapDecoder,
    PolicyNoise,
    PolicyTrace,
    RsGCN,
    S2VTCaptioner,
    l2norm,
)


def batch_stats_bn(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm with this batch's statistics, updating the running ones (the published evaluation)."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, True, bn.momentum, bn.eps)


class ImageEncoder(nn.Module):
    """fc -> [l2norm] -> GCN blocks -> l2norm -> [policy] -> GRU -> [BatchNorm].

    DCPG: embedding = mean of the attended regions + last GRU state. VSRN: last GRU state.
    """

    def __init__(self, cfg: MatchingConfig) -> None:
        super().__init__()
        m, self.cfg = cfg.model, cfg
        self.dcpg = m.kind == "dcpg"
        self.fc = nn.Linear(m.img_dim, m.embed_size)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)
        self.gcn = nn.ModuleList(RsGCN(m.embed_size) for _ in range(m.gcn_blocks))
        pol = m.policy
        self.policy = (AttentionPolicy(m.embed_size, pol.heads, pol.bins, pol.tau, pol.scale, pol.fused)
                       if self.dcpg and pol.enabled else None)
        self.rnn = nn.GRU(m.embed_size, m.embed_size, batch_first=True)
        use_bn = self.dcpg or m.image_bn
        self.bn = nn.BatchNorm1d(m.embed_size, momentum=m.bn_momentum if self.dcpg else 0.1) if use_bn else None
        if self.dcpg and m.dead_linears:  # optimised, never used (published parameter count)
            self.linears = nn.ModuleList(nn.Linear(10, 10) for _ in range(m.dead_linears))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return l2norm(x, dim=1 if self.cfg.compat.l2norm_across_regions else -1)

    def regions(self, x: torch.Tensor) -> torch.Tensor:
        """(B, R, img_dim) -> GCN-reasoned region features (B, R, E)."""
        v = self.fc(x)
        if self.cfg.model.fc_l2norm:
            v = self._norm(v)
        v = v.transpose(1, 2)
        for block in self.gcn:
            v = block(v)
        return self._norm(v.transpose(1, 2))

    def forward(self, x: torch.Tensor, noise: PolicyNoise | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, PolicyTrace | None]:
        feats = self.regions(x)
        trace = None
        attended = feats
        if self.policy is not None:
            attended, trace = self.policy(feats, noise if self.training else None,
                                          self.cfg.compat.second_continuous_sample)
        _, h = self.rnn(attended)
        emb = attended.mean(1) + h[0] if self.dcpg else h[0]
        if self.bn is not None:
            if not self.training and self.cfg.compat.bn_batch_stats_eval:
                emb = batch_stats_bn(self.bn, emb)
            else:
                emb = self.bn(emb)
        return emb, feats, trace


class WordVectorTextEncoder(nn.Module):
    """DCPG's text branch: fixed word vectors (B, L, word_dim) -> policy over all L slots ->
    GRU over the first ``lengths`` -> BatchNorm."""

    def __init__(self, cfg: MatchingConfig) -> None:
        super().__init__()
        m, self.cfg = cfg.model, cfg
        pol = m.policy
        self.policy = (AttentionPolicy(m.word_dim, pol.heads, pol.bins, pol.tau, pol.scale, pol.fused)
                       if pol.enabled else None)
        self.rnn = nn.GRU(m.word_dim, m.embed_size, batch_first=True)
        self.bn = nn.BatchNorm1d(m.embed_size, momentum=m.bn_momentum)
        self.embed = nn.Embedding(m.vocab_size, m.word_dim)  # VSRN's learned table: unused in DCPG
        self.fc_transform = nn.Linear(m.word_dim, m.embed_size)  # unused in DCPG
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def forward(self, vectors: torch.Tensor, lengths: torch.Tensor, noise: PolicyNoise | None = None
                ) -> tuple[torch.Tensor, PolicyTrace | None]:
        x, trace = vectors.detach(), None
        if self.policy is not None:
            x, trace = self.policy(x, noise if self.training else None, self.cfg.compat.second_continuous_sample)
        lengths = lengths.clamp(1, x.shape[1])
        x = x[:, : int(lengths.max())]
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)  # the state after the last valid step = the output at length - 1
        return self.bn(h[0]), trace


class EmbeddingTextEncoder(nn.Module):
    """VSRN's text branch: learned Embedding(V, word_dim) -> GRU -> output at length - 1."""

    def __init__(self, cfg: MatchingConfig) -> None:
        super().__init__()
        m = cfg.model
        self.embed = nn.Embedding(m.vocab_size, m.word_dim)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.rnn = nn.GRU(m.word_dim, m.embed_size, batch_first=True)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.clamp(1, ids.shape[1])
        x = self.embed(ids[:, : int(lengths.max())])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)
        return h[0]


class DCPG(nn.Module):
    """The DCPG model: both encoders with the policy, the shared ID classifier, the (unused)
    discriminator and the convcap text decoder (frozen under ``compat.frozen_text_decoder``)."""

    def __init__(self, cfg: MatchingConfig) -> None:
        super().__init__()
        m = cfg.model
        self.cfg = cfg
        self.img_enc = ImageEncoder(cfg)
        self.txt_enc = WordVectorTextEncoder(cfg)
        self.id_head = nn.Sequential(nn.Linear(m.embed_size, m.id.hidden), nn.ReLU(),
                                     nn.Linear(m.id.hidden, cfg.id_classes))
        self.discriminator = nn.Sequential(nn.Linear(m.embed_size, 256), nn.Linear(256, 1))  # unused
        d = m.decoder
        self.decoder = ConvCapDecoder(m.vocab_size, m.word_dim, m.embed_size, d.nfeats, d.layers, d.kernel,
                                      d.dropout)
        if cfg.compat.frozen_text_decoder:
            self.decoder.requires_grad_(False)

    def train(self, mode: bool = True) -> DCPG:
        super().train(mode)
        if self.cfg.compat.frozen_text_decoder:
            self.decoder.train(True)  # the published decoder is never put in eval mode (dropout on)
        return self

    def encode_image(self, regions: torch.Tensor, noise: PolicyNoise | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, PolicyTrace | None]:
        return self.img_enc(regions, noise)

    def encode_text(self, batch: dict[str, Any], noise: PolicyNoise | None = None
                    ) -> tuple[torch.Tensor, PolicyTrace | None]:
        return self.txt_enc(batch["vectors"], batch["lengths"], noise)


class VSRN(nn.Module):
    """The VSRN model: region encoder without the policy, learned-embedding text GRU, S2VT captioner."""

    def __init__(self, cfg: MatchingConfig) -> None:
        super().__init__()
        m, c = cfg.model, cfg.model.captioner
        self.cfg = cfg
        self.img_enc = ImageEncoder(cfg)
        self.txt_enc = EmbeddingTextEncoder(cfg)
        self.captioner = S2VTCaptioner(m.vocab_size, m.embed_size, c.hidden, c.word_dim, c.input_dropout)

    def encode_image(self, regions: torch.Tensor, noise: PolicyNoise | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor, None]:
        emb, feats, _ = self.img_enc(regions, None)
        return emb, feats, None

    def encode_text(self, batch: dict[str, Any], noise: PolicyNoise | None = None) -> tuple[torch.Tensor, None]:
        return self.txt_enc(batch["ids"], batch["lengths"]), None


def build_model(cfg: MatchingConfig) -> nn.Module:
    return DCPG(cfg) if cfg.model.kind == "dcpg" else VSRN(cfg)
