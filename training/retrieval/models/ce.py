"""Collaborative Experts and its ablations (SPEC-CE.md "Full CE", "Ablations").

One module class serves every `model.variant`; the variant decides which blocks exist:

| variant        | video side per expert                          | text side per expert     | weights |
|----------------|------------------------------------------------|--------------------------|---------|
| `ce`           | pool -> ReduceDim(d) -> collab. gating -> gate | GEU(K_t·D_t -> d)        | learned |
| `ce_no_cg`     | pool -> ReduceDim(d) -> plain gate             | GEU(K_t·D_t -> d)        | learned |
| `moee`         | pool -> GEU(-> native D_e)                     | GEU(K_t·D_t -> D_e)      | learned |
| `moee_uniform` | as `moee`                                      | as `moee`                | 1/M     |
| `concat`       | pool, concatenate all experts                  | text VLAD vector itself  | none    |

`model.compat` restores two behaviours of the published code (docs/MODELS.md "Deviations"):
`sequential_gating` (ce, training mode: experts gated one after another in sorted order,
each later expert's pairs using the already gated embeddings of earlier ones, BatchNorm per
pair; in eval mode the published code agrees with the clean rule) and, for concat,
`concat_mixture` (the mixture-weight layer the published code builds and never uses, so the
parameter count is the published one) and `concat_order` (the order of the experts in the
concatenated video vector).

"pool" is the identity for `mean` experts (the reader already averaged them) and the
expert's own NetVLAD (no ghosts) for `vlad` experts. The "native dimension" of a VLAD
expert in MoEE is its per-token dim D_e (published `expert_dims`: in K·D_e, out D_e).

Encoders return plain dicts of tensors whose first dimension is the batch, so evaluation
can encode in chunks and concatenate (`videxperts.training.retrieval.models.cat_embeddings`):
- text:  `{"weights": [C, E], <expert>: [C, d_e] ...}` (concat: `{"weights", "concat"}`)
- video: `{"available": [B, E] float, <expert>: [B, d_e] ...}` (concat: `{"available", "concat"}`)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videxperts.training.retrieval.config import TrainConfig
from videxperts.training.retrieval.models.gates import (
    CollaborativeGating,
    GatedEmbeddingUnit,
    PlainGate,
    ReasoningGate,
    ReduceDim,
)
from videxperts.training.retrieval.models.netvlad import NetVLAD

CONCAT_KEY = "concat"


class CollaborativeExperts(nn.Module):
    """CE-family text-video retrieval model; see the module docstring for the variants."""

    def __init__(self, cfg: TrainConfig) -> None:
        super().__init__()
        self.cfg_name = cfg.name
        self.variant = cfg.model.variant
        self.expert_names: list[str] = cfg.expert_names
        self.experts = {n: cfg.data.experts[n] for n in self.expert_names}
        m, text = cfg.model, cfg.data.text
        self.shared_dim = m.shared_dim
        self.text_dim = text.dim
        self.sequential_gating = m.compat.sequential_gating
        self.concat_order = m.compat.concat_order or self.expert_names

        # --- video: temporal pooling (one NetVLAD per vlad expert, no ghost clusters)
        self.video_vlad = nn.ModuleDict(
            {n: NetVLAD(e.dim, e.clusters, 0) for n, e in self.experts.items() if e.temporal == "vlad"}
        )
        # --- text: NetVLAD over caption tokens
        self.text_vlad = NetVLAD(text.dim, m.text_vlad.clusters, m.text_vlad.ghosts)
        text_out = self.text_vlad.out_dim

        if self.variant == "concat":
            video_out = sum(e.pooled_dim for e in self.experts.values())
            # Zero-pad the shorter side to a common length (the published code zeroed the
            # whole video vector when the text was longer; we pad instead).
            self.concat_dim = max(video_out, text_out)
            self.video_concat_dim, self.text_concat_dim = video_out, text_out
            if m.compat.concat_mixture:  # built and never used by the published code
                self.mixture = nn.Linear(text_out, len(self.expert_names))
            return

        # --- mixture weights from the text (exists for moee_uniform too, unused there)
        self.mixture = nn.Linear(text_out, len(self.expert_names))
        if self.variant in ("ce", "ce_no_cg"):
            d = m.shared_dim
            self.video_proj = nn.ModuleDict({n: ReduceDim(e.pooled_dim, d) for n, e in self.experts.items()})
            self.text_proj = nn.ModuleDict({n: GatedEmbeddingUnit(text_out, d) for n in self.expert_names})
            if self.variant == "ce":
                self.collab = CollaborativeGating(d, m.num_g_layers, m.num_h_layers)
                self.video_gate = nn.ModuleDict({n: ReasoningGate(d) for n in self.expert_names})
            else:
                self.video_gate = nn.ModuleDict({n: PlainGate(d) for n in self.expert_names})
        else:  # moee, moee_uniform
            self.video_proj = nn.ModuleDict(
                {n: GatedEmbeddingUnit(e.pooled_dim, e.dim) for n, e in self.experts.items()}
            )
            self.text_proj = nn.ModuleDict(
                {n: GatedEmbeddingUnit(text_out, e.dim) for n, e in self.experts.items()}
            )

    def extra_repr(self) -> str:
        dims = ", ".join(f"{n}:{e.dim}/{e.temporal}" for n, e in self.experts.items())
        return f"variant={self.variant}, shared_dim={self.shared_dim}, experts=[{dims}]"

    # ------------------------------------------------------------------------- encoders

    def encode_video(
        self, experts: dict[str, Tensor], expert_masks: dict[str, Tensor] | None, available: Tensor
    ) -> dict[str, Tensor]:
        """Expert features -> per-expert video embeddings (plain dict, see module docstring)."""
        expert_masks = expert_masks or {}
        b = available.shape[0]
        if available.shape != (b, len(self.expert_names)):
            raise ValueError(f"available must be [B, {len(self.expert_names)}] in order {self.expert_names}, "
                             f"got {tuple(available.shape)}")
        avail = available.to(torch.bool)
        pooled = {}
        for i, name in enumerate(self.expert_names):
            if name not in experts:
                raise KeyError(f"encode_video: missing features for expert {name!r}")
            x, a = experts[name], avail[:, i]
            if name in self.video_vlad:
                tok_mask = expert_masks.get(name)
                if tok_mask is None:
                    tok_mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
                # missing experts are zeroed before pooling (all their tokens masked)
                pooled[name] = self.video_vlad[name](x, tok_mask.to(torch.bool) & a[:, None])
            else:
                if x.dim() != 2:
                    raise ValueError(f"encode_video: mean expert {name!r} must be [B, D], got {tuple(x.shape)}")
                pooled[name] = torch.where(a[:, None], x, x.new_zeros(()))
        out: dict[str, Tensor] = {"available": avail.to(pooled[self.expert_names[0]].dtype)}

        if self.variant == "concat":
            v = F.normalize(torch.cat([pooled[n] for n in self.concat_order], dim=1), dim=1)
            out[CONCAT_KEY] = F.pad(v, (0, self.concat_dim - v.shape[1]))
            return out

        if self.variant in ("moee", "moee_uniform"):
            for i, n in enumerate(self.expert_names):
                out[n] = self.video_proj[n](pooled[n], avail[:, i])
            return out

        reduced = [self.video_proj[n](pooled[n], avail[:, i]) for i, n in enumerate(self.expert_names)]
        if self.variant == "ce_no_cg":
            for i, n in enumerate(self.expert_names):
                out[n] = self.video_gate[n](reduced[i], avail[:, i])
            return out
        if self.sequential_gating and self.training:
            return {**out, **self._gate_sequentially(reduced, avail)}
        stacked = torch.stack(reduced, dim=1)  # [B, E, d]
        g = self.collab(stacked, avail)
        for i, n in enumerate(self.expert_names):
            out[n] = self.video_gate[n](reduced[i], g[:, i], avail[:, i])
        return out

    def _gate_sequentially(self, reduced: list[Tensor], avail: Tensor) -> dict[str, Tensor]:
        """The published training-mode rule: expert i's pairs see the gated embeddings of
        experts before it (sorted order) and the ReduceDim outputs of the rest."""
        current = list(reduced)
        for i, n in enumerate(self.expert_names):
            g = self.collab.gate_one(i, torch.stack(current, dim=1), avail)
            current[i] = self.video_gate[n](reduced[i], g, avail[:, i])
        return dict(zip(self.expert_names, current, strict=True))

    def encode_text(self, tokens: Tensor, token_mask: Tensor | None = None) -> dict[str, Tensor]:
        """Caption tokens `[C, L, Dt]` -> per-expert text embeddings and mixture weights."""
        t = self.text_vlad(tokens, token_mask)
        c = t.shape[0]
        if self.variant == "concat":
            vec = F.pad(t, (0, self.concat_dim - t.shape[1]))
            if hasattr(self, "mixture"):  # compat: unused, kept in the graph (zero gradient) for DDP
                vec = vec + 0.0 * self.mixture(t).sum(1, keepdim=True)
            return {"weights": t.new_ones(c, 1), CONCAT_KEY: vec}
        logits = self.mixture(t)
        if self.variant == "moee_uniform":
            # Uniform 1/M; `0 * logits` keeps the (unused) layer in the graph so DDP sees it.
            weights = torch.full_like(logits, 1.0 / logits.shape[1]) + 0.0 * logits
        else:
            weights = F.softmax(logits, dim=1)
        out = {"weights": weights}
        for n in self.expert_names:
            out[n] = self.text_proj[n](t)
        return out

    # ----------------------------------------------------------------------- similarity

    @property
    def embedding_keys(self) -> list[str]:
        return [CONCAT_KEY] if self.variant == "concat" else list(self.expert_names)

    def expert_similarities(self, text: dict[str, Tensor], video: dict[str, Tensor]) -> Tensor:
        """Un-weighted per-expert cosine similarities `[E, C, B]` (concat: `[1, C, B]`).

        Missing experts give 0 (their video embedding is zeroed). TeachText's teacher matrix
        is the sum over E.
        """
        return torch.stack([text[k] @ video[k].T for k in self.embedding_keys])

    def similarity(self, text: dict[str, Tensor], video: dict[str, Tensor]) -> Tensor:
        """Σ_e w_e⟨text_e, video_e⟩ `[C, B]`, weights of missing experts zeroed and renormalised
        per (caption, video) pair. Accumulates expert by expert so `[E, C, B]` never exists."""
        if self.variant == "concat":
            return text[CONCAT_KEY] @ video[CONCAT_KEY].T
        w, avail = text["weights"], video["available"].to(text["weights"].dtype)
        num = None
        for i, n in enumerate(self.expert_names):
            term = (text[n] @ video[n].T) * w[:, i, None] * avail[None, :, i]
            num = term if num is None else num + term
        den = w @ avail.T  # [C, B]: sum of the weights of experts this video has
        # A video with no expert at all scores 0 against every caption.
        return num / den.clamp_min(torch.finfo(den.dtype).tiny)

    def forward(
        self,
        experts: dict[str, Tensor],
        expert_masks: dict[str, Tensor] | None,
        available: Tensor,
        tokens: Tensor,
        token_mask: Tensor | None = None,
    ) -> Tensor:
        """Training step helper (and what DDP wraps): `[C, B]` similarity matrix."""
        return self.similarity(self.encode_text(tokens, token_mask), self.encode_video(experts, expert_masks, available))
