"""BMT captioner and the BMHRL agent (spec section 1), every dimension from the config.

Both take video V (B,Sv,d_vid) = I3D rgb+flow, audio A (B,Sa,d_aud) = VGGish, their row masks
and the teacher-forced caption tokens C (B,L), and return log-probabilities (B,L,V).
``state(...)``/``step(...)`` run the decoder one token at a time with a cache (decode.py).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from videxperts.training.captioning.layers import (
    AReLU,
    BiModalEncoder,
    MultiheadedAttention,
    PositionalEncoder,
    PositionwiseFeedForward,
    ResidualConnection,
    causal_mask,
    feature_mask,
)

PAD, UNK, BOS, EOS = 1, 0, 2, 3


class WordEmbedding(nn.Module):
    """Frozen word vectors (zero rows for specials and OOV words), times sqrt(d) when ``scale``."""

    def __init__(self, vocab_size: int, d: int, scale: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d)
        self.embed.weight.requires_grad_(False)
        self.factor = math.sqrt(d) if scale else 1.0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed(tokens) * self.factor


class _Inputs(nn.Module):
    """Shared front: positional encodings for V, A and C, masks and the word embedding."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        m = cfg.model
        per_dim = m.compat.pe_per_dim_exponent
        self.pad_value_mask = m.compat.pad_value_mask
        self.emb_C = WordEmbedding(m.vocab_size, m.d_caps, cfg.data.wordvec.scale)
        self.pos_V = PositionalEncoder(m.d_vid, m.dropout, per_dim)
        self.pos_A = PositionalEncoder(m.d_aud, m.dropout, per_dim)
        self.pos_C = PositionalEncoder(m.d_caps, m.dropout, per_dim)

    def masks(self, v: torch.Tensor, a: torch.Tensor, v_rows: torch.Tensor | None,
              a_rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return feature_mask(v, v_rows, self.pad_value_mask), feature_mask(a, a_rows, self.pad_value_mask)


class BMTDecoderLayer(nn.Module):
    """Self-attention, attention to audio and to video, bridge Linear(2·d_caps→d_caps), feed-forward."""

    def __init__(self, d_c: int, d_a: int, d_v: int, d_model: int, heads: int, dropout: float, ff: int) -> None:
        super().__init__()
        self.self_att = MultiheadedAttention(d_c, d_c, d_c, heads, dropout, d_model)
        self.att_A = MultiheadedAttention(d_c, d_a, d_a, heads, dropout, d_model)
        self.att_V = MultiheadedAttention(d_c, d_v, d_v, heads, dropout, d_model)
        self.res_self = ResidualConnection(d_c, dropout)
        self.res_A = ResidualConnection(d_c, dropout)
        self.res_V = ResidualConnection(d_c, dropout)
        self.bridge_norm = nn.LayerNorm(2 * d_c)
        self.bridge = nn.Linear(2 * d_c, d_c)
        self.bridge_dropout = nn.Dropout(dropout)
        self.res_ff = ResidualConnection(d_c, dropout)
        self.ff = PositionwiseFeedForward(d_c, ff, dropout)

    def forward(self, c: torch.Tensor, mem: tuple, c_mask: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        av, va, a_mask, v_mask = mem
        c = self.res_self(c, lambda x: _self_attend(self.self_att, x, c_mask, cache))
        ca = self.res_A(c, lambda x: _cross_attend(self.att_A, x, av, a_mask, cache, "mem_A"))
        cv = self.res_V(c, lambda x: _cross_attend(self.att_V, x, va, v_mask, cache, "mem_V"))
        c = torch.relu(self.bridge_dropout(self.bridge(self.bridge_norm(torch.cat([ca, cv], dim=-1)))))
        return self.res_ff(c, self.ff)


def _cross_attend(att: MultiheadedAttention, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                  cache: dict | None, key: str) -> torch.Tensor:
    """Attention to the encoder's memory; with ``cache`` its keys/values are projected once per caption."""
    if cache is None:
        return att(x, memory, memory, mask)
    if key not in cache:
        cache[key] = (att.split(att.k(memory)), att.split(att.v(memory)))
    k, v = cache[key]
    return att.attend(att.split(att.q(x)), k, v, mask)


def _self_attend(att: MultiheadedAttention, x: torch.Tensor, mask: torch.Tensor | None,
                 cache: dict | None) -> torch.Tensor:
    """Causal self-attention; with ``cache`` the new positions' keys/values are appended (incremental)."""
    if cache is None:
        return att(x, x, x, mask)
    k, v = att.split(att.k(x)), att.split(att.v(x))
    if "k" in cache:
        k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
    cache["k"], cache["v"] = k, v
    return att.attend(att.split(att.q(x)), k, v, None)  # the new position sees every cached one


class BMTCaptioner(nn.Module):
    """BMT: bi-modal encoder, bi-modal decoder, generator Linear(d_caps→V) + log_softmax; Xavier init."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        m = cfg.model
        self.inputs = _Inputs(cfg)
        self.encoder = BiModalEncoder(m.d_vid, m.d_aud, m.d_model, m.heads, m.dropout, m.ff_vid, m.ff_aud, m.layers)
        self.decoder = nn.ModuleList(BMTDecoderLayer(m.d_caps, m.d_aud, m.d_vid, m.d_model, m.heads, m.dropout,
                                                     m.ff_caps) for _ in range(m.layers))
        self.generator = nn.Linear(m.d_caps, m.vocab_size)
        for name, p in self.named_parameters():
            if p.dim() > 1 and not name.startswith("inputs.emb_C") and p.device.type != "meta":
                nn.init.xavier_uniform_(p)

    def encode(self, v: torch.Tensor, a: torch.Tensor, v_rows: torch.Tensor | None = None,
               a_rows: torch.Tensor | None = None) -> tuple:
        v_mask, a_mask = self.inputs.masks(v, a, v_rows, a_rows)
        va, av = self.encoder(self.inputs.pos_V(v), self.inputs.pos_A(a), v_mask, a_mask)
        return av, va, a_mask, v_mask

    def decode(self, mem: tuple, tokens: torch.Tensor, caches: list | None = None, offset: int = 0) -> torch.Tensor:
        c = self.inputs.pos_C(self.inputs.emb_C(tokens), offset)
        c_mask = None if caches is not None else causal_mask(tokens, PAD)
        for i, layer in enumerate(self.decoder):
            c = layer(c, mem, c_mask, caches[i] if caches is not None else None)
        return torch.log_softmax(self.generator(c), dim=-1)

    def forward(self, v: torch.Tensor, a: torch.Tensor, tokens: torch.Tensor, v_rows: torch.Tensor | None = None,
                a_rows: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(v, a, v_rows, a_rows), tokens)

    # incremental decoding ---------------------------------------------------------------
    def start(self, mem: tuple) -> dict:
        return {"caches": [{} for _ in self.decoder], "t": 0}

    def step(self, mem: tuple, state: dict, tokens: torch.Tensor) -> torch.Tensor:
        """Log-probs of the next token after ``tokens`` (B,1), reusing the cache in ``state``."""
        out = self.decode(mem, tokens, state["caches"], state["t"])
        state["t"] += tokens.shape[1]
        return out[:, -1]


# --------------------------------------------------------------------------------------- BMHRL


class BMFusionLayer(nn.Module):
    """Self-attention, attention to audio and video from the same C, separate LayerNorms, scalar gate.

    ``unused_ff``: the original builds PFF(d_caps, ff_caps) and never calls it (compat.fusion_unused_ff).
    """

    def __init__(self, d_c: int, d_a: int, d_v: int, d_model: int, heads: int, dropout: float, ff: int,
                 unused_ff: bool) -> None:
        super().__init__()
        self.self_att = MultiheadedAttention(d_c, d_c, d_c, heads, dropout, d_model)
        self.att_A = MultiheadedAttention(d_c, d_a, d_a, heads, dropout, d_model)
        self.att_V = MultiheadedAttention(d_c, d_v, d_v, heads, dropout, d_model)
        self.res_self = ResidualConnection(d_c, dropout)
        self.res_A = ResidualConnection(d_c, dropout)
        self.res_V = ResidualConnection(d_c, dropout)
        self.norm_A = nn.LayerNorm(d_c)
        self.norm_V = nn.LayerNorm(d_c)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.ff = PositionwiseFeedForward(d_c, ff, dropout) if unused_ff else None

    def forward(self, c: torch.Tensor, mem: tuple, c_mask: torch.Tensor | None, cache: dict | None = None):
        av, va, a_mask, v_mask = mem
        c = self.res_self(c, lambda x: _self_attend(self.self_att, x, c_mask, cache))
        ca = self.norm_A(self.res_A(c, lambda x: _cross_attend(self.att_A, x, av, a_mask, cache, "mem_A")))
        cv = self.norm_V(self.res_V(c, lambda x: _cross_attend(self.att_V, x, va, v_mask, cache, "mem_V")))
        g = torch.sigmoid(self.alpha.clamp(-2, 2))
        return g * cv + (1 - g) * ca


class BMFusion(nn.Module):
    def __init__(self, cfg: Any) -> None:
        super().__init__()
        m = cfg.model
        self.layers = nn.ModuleList(BMFusionLayer(m.d_caps, m.d_aud, m.d_vid, m.d_model, m.heads, m.dropout,
                                                  m.ff_caps, m.compat.fusion_unused_ff) for _ in range(m.layers))

    def forward(self, c: torch.Tensor, mem: tuple, c_mask: torch.Tensor | None, caches: list | None = None):
        for i, layer in enumerate(self.layers):
            c = layer(c, mem, c_mask, caches[i] if caches is not None else None)
        return c


class SegmentCritic(nn.Module):
    """LSTM → AReLU → GRU → AReLU → Linear(hidden→1): per-token 'a segment ends here' logits (frozen)."""

    def __init__(self, d_in: int, hidden: int, lstm_layers: int, gru_layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, lstm_layers, batch_first=True)
        self.act1 = AReLU()
        self.gru = nn.GRU(hidden, hidden, gru_layers, batch_first=True)
        self.act2 = AReLU()
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        h_lstm, h_gru = state if state is not None else (None, None)
        y, h_lstm = self.lstm(x, h_lstm)
        y, h_gru = self.gru(self.act1(y), h_gru)
        return self.out(self.act2(y)), (h_lstm, h_gru)


def expand_goals(goals: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """Position l uses the goal of its segment's first position; a segment starts at 0 and after each 1.

    seg = [1,0,0,1,0] → goals used [g0, g1, g1, g1, g4] (vectorised; the original loops in Python).
    """
    b, length = seg.shape
    pos = torch.arange(length, device=seg.device).expand(b, length)
    starts = torch.zeros_like(seg, dtype=torch.bool)
    starts[:, 0] = True
    starts[:, 1:] = seg[:, :-1].bool()
    first = torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values
    return goals.gather(1, first[..., None].expand(-1, -1, goals.shape[-1]))


def exploration_noise(goals: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """One goal-sized vector from N(mean/10, std/5) minus half that mean; stats detached, over every rank."""
    g = goals.detach().float()
    stats = torch.stack([g.sum(), (g * g).sum(), torch.tensor(float(g.numel()), device=g.device)])
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        torch.distributed.all_reduce(stats)
    total, sq, n = stats
    mean = total / n
    std = ((sq - total * mean) / (n - 1).clamp(min=1)).clamp(min=0).sqrt()
    mean, std = mean / 10, std / 5
    return (mean + std * z.to(g)) - 0.5 * mean


class BMHRLAgent(nn.Module):
    """Encoder, worker and manager fusion stacks, manager, worker with goal attention, frozen critic."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        m = cfg.model
        self.pad = PAD
        self.threshold = m.critic.threshold
        self.inputs = _Inputs(cfg)
        self.bm_enc = BiModalEncoder(m.d_vid, m.d_aud, m.d_model, m.heads, m.dropout, m.ff_vid, m.ff_aud, m.layers)
        self.bm_worker_fus = BMFusion(cfg)
        self.bm_manager_fus = BMFusion(cfg)
        self.manager = nn.Sequential(nn.Dropout(m.dropout), nn.Linear(m.d_caps, m.goal_dim))
        self.worker_goal_att = MultiheadedAttention(m.goal_dim, m.d_caps, m.d_caps, m.goal_heads, m.dropout,
                                                    m.d_model)
        self.worker_proj = nn.Linear(m.d_caps + m.goal_dim, m.vocab_size)
        self.critic = SegmentCritic(m.d_caps, m.critic.hidden, m.critic.lstm_layers, m.critic.gru_layers)
        self.critic.requires_grad_(False)

    def encode(self, v: torch.Tensor, a: torch.Tensor, v_rows: torch.Tensor | None = None,
               a_rows: torch.Tensor | None = None) -> tuple:
        v_mask, a_mask = self.inputs.masks(v, a, v_rows, a_rows)
        va, av = self.bm_enc(self.inputs.pos_V(v), self.inputs.pos_A(a), v_mask, a_mask)
        return av, va, a_mask, v_mask

    def segments(self, emb: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """Critic labels (B,L): 1 where sigmoid(logit) > threshold (the critic sees un-encoded embeddings)."""
        with torch.no_grad():
            logits, state = self.critic(emb, state)
        return (torch.sigmoid(logits[..., 0]) > self.threshold).long(), state

    def forward(self, v: torch.Tensor, a: torch.Tensor, tokens: torch.Tensor, v_rows: torch.Tensor | None = None,
                a_rows: torch.Tensor | None = None, noise_z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``noise_z``: a standard-normal goal-sized vector turns exploration on (manager epochs)."""
        mem = self.encode(v, a, v_rows, a_rows)
        emb = self.inputs.emb_C(tokens)
        c = self.inputs.pos_C(emb)
        c_mask = causal_mask(tokens, self.pad)
        worker_feat = self.bm_worker_fus(c, mem, c_mask)
        manager_feat = self.bm_manager_fus(c, mem, c_mask)
        seg, _ = self.segments(emb)
        goals = self.manager(manager_feat)
        if noise_z is not None:
            goals = goals + exploration_noise(goals, noise_z)
        goals = expand_goals(goals, seg)
        done = self.worker_goal_att(goals, worker_feat, worker_feat, c_mask)
        logp = torch.log_softmax(self.worker_proj(torch.cat([worker_feat, done], dim=-1)), dim=-1)
        return {"logp": logp, "worker_feat": worker_feat, "manager_feat": manager_feat, "goals": goals, "seg": seg}

    # incremental decoding ---------------------------------------------------------------
    def start(self, mem: tuple) -> dict:
        return {"w": [{} for _ in self.bm_worker_fus.layers], "m": [{} for _ in self.bm_manager_fus.layers],
                "critic": None, "goal": None, "prev_seg": None, "gk": None, "gv": None, "t": 0}

    def step(self, mem: tuple, state: dict, tokens: torch.Tensor) -> torch.Tensor:
        """Log-probs of the next token after one new token (B,1); everything before it is cached."""
        emb = self.inputs.emb_C(tokens)
        c = self.inputs.pos_C(emb, state["t"])
        wf = self.bm_worker_fus(c, mem, None, state["w"])
        mf = self.bm_manager_fus(c, mem, None, state["m"])
        seg, state["critic"] = self.segments(emb, state["critic"])
        raw = self.manager(mf)
        if state["goal"] is None:
            goal = raw
        else:  # a new goal starts right after a boundary; otherwise the segment's goal carries on
            goal = torch.where(state["prev_seg"][:, :, None].bool(), raw, state["goal"])
        state["goal"], state["prev_seg"] = goal, seg
        att = self.worker_goal_att
        k, v = att.split(att.k(wf)), att.split(att.v(wf))
        if state["gk"] is not None:
            k, v = torch.cat([state["gk"], k], 2), torch.cat([state["gv"], v], 2)
        state["gk"], state["gv"] = k, v
        done = att.attend(att.split(att.q(goal)), k, v, None)
        state["t"] += 1
        return torch.log_softmax(self.worker_proj(torch.cat([wf, done], dim=-1)), dim=-1)[:, -1]

    def decode(self, mem: tuple, tokens: torch.Tensor) -> torch.Tensor:
        """Full re-run of the worker on a prefix (the original's greedy step); exploration off."""
        emb = self.inputs.emb_C(tokens)
        c = self.inputs.pos_C(emb)
        c_mask = causal_mask(tokens, self.pad)
        wf = self.bm_worker_fus(c, mem, c_mask)
        mf = self.bm_manager_fus(c, mem, c_mask)
        seg, _ = self.segments(emb)
        goals = expand_goals(self.manager(mf), seg)
        done = self.worker_goal_att(goals, wf, wf, c_mask)
        return torch.log_softmax(self.worker_proj(torch.cat([wf, done], dim=-1)), dim=-1)


class ValueFunction(nn.Module):
    """PFF(d, 2d) → ReLU → Linear(d→1): a per-position baseline (separate model, own optimiser group)."""

    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.ff = PositionwiseFeedForward(d, 2 * d, dropout)
        self.head = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.ff(x)))[..., 0]


class BMHRLSystem(nn.Module):
    """What the harness trains and checkpoints: the agent plus the two value functions.

    ``--describe`` counts the agent (its state_dict is the published 'all parameters').
    """

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        m = cfg.model
        self.agent = BMHRLAgent(cfg)
        self.worker_value = ValueFunction(m.d_caps + m.goal_dim, m.dropout)
        self.manager_value = ValueFunction(m.d_caps, m.dropout)
        self.phase = "warm"  # set by the step module; read by PhasedAdam

    def encode(self, *args: Any) -> tuple:
        return self.agent.encode(*args)


class CriticModel(nn.Module):
    """The segment critic with its frozen word embedding, for the critic's own training."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        m = cfg.model
        self.emb_C = WordEmbedding(m.vocab_size, m.d_caps, cfg.data.wordvec.scale)
        self.critic = SegmentCritic(m.d_caps, m.critic.hidden, m.critic.lstm_layers, m.critic.gru_layers)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Boundary logits (B, L) of the input tokens (the critic sees un-encoded embeddings)."""
        return self.critic(self.emb_C(tokens))[0][..., 0]


def build_model(cfg: Any) -> nn.Module:
    """BMT captioner or the BMHRL system; word vectors and the critic checkpoint loaded unless on meta
    or built to receive a checkpoint's weights (which hold both)."""
    arch = cfg.model.arch
    model: nn.Module = BMTCaptioner(cfg) if arch == "bmt" else CriticModel(cfg) if arch == "critic" else BMHRLSystem(cfg)
    model.caption_cfg = cfg  # decoding settings for evaluation (a plain attribute, not state)
    from videxperts.training.checkpoint import weights_come_from_checkpoint

    if next(model.parameters()).device.type == "meta" or weights_come_from_checkpoint():
        return model
    from videxperts.training.captioning.wordvec import load_word_embeddings

    emb = {"bmt": lambda: model.inputs.emb_C, "critic": lambda: model.emb_C,
           "bmhrl": lambda: model.agent.inputs.emb_C}[arch]()
    load_word_embeddings(emb.embed.weight, cfg)
    if cfg.model.arch == "bmhrl" and (cfg.model.critic.checkpoint or not cfg.model.init_checkpoint):
        from videxperts.training.captioning.critic import load_critic

        load_critic(model.agent.critic, cfg)
    if cfg.model.init_checkpoint:  # after the critic: a whole system's weights include its critic
        from videxperts.training.captioning.init_weights import load_initial_weights

        load_initial_weights(model, cfg)
        if cfg.model.arch == "bmhrl":
            model.agent.critic.requires_grad_(False)
    return model
