"""CE-family models. Public API: `build_model`, the model's encode/similarity methods, and
helpers to slice/concatenate the plain-dict embeddings for chunked evaluation."""

from __future__ import annotations

import torch
from torch import Tensor

from videxperts.training.retrieval.models.build import build_model
from videxperts.training.retrieval.models.ce import CollaborativeExperts
from videxperts.training.retrieval.models.gates import (
    CollaborativeGating,
    ContextGating,
    GatedEmbeddingUnit,
    PlainGate,
    ReasoningGate,
    ReduceDim,
)
from videxperts.training.retrieval.models.netvlad import NetVLAD
from videxperts.training.retrieval.models.norm import MaskedBatchNorm1d

Embeddings = dict[str, Tensor]


def slice_embeddings(emb: Embeddings, start: int, stop: int) -> Embeddings:
    """Rows `start:stop` of every tensor (all share the batch dimension first)."""
    return {k: v[start:stop] for k, v in emb.items()}


def index_embeddings(emb: Embeddings, index: Tensor) -> Embeddings:
    """Rows `index` of every tensor."""
    return {k: v[index] for k, v in emb.items()}


def cat_embeddings(chunks: list[Embeddings]) -> Embeddings:
    """Concatenate chunk dicts along the batch dimension."""
    if not chunks:
        raise ValueError("cat_embeddings: no chunks")
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def embeddings_len(emb: Embeddings) -> int:
    return next(iter(emb.values())).shape[0]


__all__ = [
    "CollaborativeExperts",
    "CollaborativeGating",
    "ContextGating",
    "Embeddings",
    "GatedEmbeddingUnit",
    "MaskedBatchNorm1d",
    "NetVLAD",
    "PlainGate",
    "ReasoningGate",
    "ReduceDim",
    "build_model",
    "cat_embeddings",
    "embeddings_len",
    "index_embeddings",
    "slice_embeddings",
]
