"""Encoding a split and scoring it: caption×video similarities, per-query ranks, R@k metrics.

Scoring picks its path by memory: the full `[C, V]` similarity matrix (and the ranking's
temporaries, about `FULL_MATRIX_COPIES` of it) when that fits the budget, otherwise blocks of
it from the embeddings (`metrics.retrieval_ranks_from_embeddings`), so any split size
evaluates. Both paths give the same ranks exactly (each comparison sees one block's numbers).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from videxperts.training.distributed import to_device, tree_cat
from videxperts.training.retrieval.data import SplitData
from videxperts.training.task import Evaluation


def encode_videos(model: nn.Module, data: SplitData, idx: np.ndarray, device: torch.device,
                  experts: list[str] | None = None) -> Any:
    """``model.encode_video`` on videos ``idx`` (optionally restricted to a subset of experts)."""
    feats, masks, avail = data.video_batch(idx)
    if experts is not None:
        cols = [data.expert_names.index(e) for e in experts]
        feats = {e: feats[e] for e in experts}
        masks = {e: m for e, m in masks.items() if e in experts}
        avail = avail[:, cols]
    return model.encode_video(to_device(feats, device), to_device(masks, device), avail.to(device))


def encode_captions(model: nn.Module, data: SplitData, vid: np.ndarray, cap: np.ndarray, device: torch.device,
                    encoder: str | None = None) -> Any:
    tokens, mask = data.text_batch(vid, cap, encoder)
    return model.encode_text(tokens.to(device), mask.to(device))


FULL_MATRIX_COPIES = 4  # the matrix, its sign/difference temporaries and the float64 ranks
BUDGET_ENV = "VIDEXPERTS_EVAL_MEMORY_MB"


def memory_budget(device: torch.device) -> int:
    """Bytes scoring may use: ``$VIDEXPERTS_EVAL_MEMORY_MB`` if set, else a quarter of the
    device's free memory (CUDA) or of the machine's available memory (CPU)."""
    env = os.environ.get(BUDGET_ENV)
    if env:
        return int(float(env) * 2**20)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 4
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):
        return 2**31


def rows_within(budget: int, num_videos: int, dtype_bytes: int = 4) -> int:
    """How many similarity rows (and their ranking temporaries) fit the budget (at least 1)."""
    return max(1, budget // (FULL_MATRIX_COPIES * dtype_bytes * max(num_videos, 1)))


@torch.no_grad()
def encode_split(model: nn.Module, data: SplitData, device: torch.device, chunk: int = 256,
                 keep: np.ndarray | None = None) -> tuple[Any, Any, np.ndarray]:
    """(text embeddings of every valid caption, video embeddings, caption -> video index), eval mode."""
    was_training = model.training
    model.eval()
    try:
        n = len(data)
        video = tree_cat([encode_videos(model, data, np.arange(s, min(s + chunk, n)), device)
                          for s in range(0, n, chunk)])
        cap_video, cap_idx = data.captions(keep)
        text = tree_cat([encode_captions(model, data, cap_video[s : s + chunk], cap_idx[s : s + chunk], device)
                         for s in range(0, len(cap_video), chunk)]) if len(cap_video) else None
        return text, video, cap_video
    finally:
        model.train(was_training)


@torch.no_grad()
def split_similarities(model: nn.Module, data: SplitData, device: torch.device, chunk: int = 256,
                       keep: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Caption×video similarities of a split (every valid caption against every video)."""
    was_training = model.training
    model.eval()
    try:
        n = len(data)
        video = tree_cat([encode_videos(model, data, np.arange(s, min(s + chunk, n)), device)
                          for s in range(0, n, chunk)])
        cap_video, cap_idx = data.captions(keep)
        rows = []
        for s in range(0, len(cap_video), chunk):
            text = encode_captions(model, data, cap_video[s : s + chunk], cap_idx[s : s + chunk], device)
            rows.append(model.similarity(text, video).float().cpu())
        sims = torch.cat(rows, dim=0) if rows else torch.zeros((0, n))
        return sims, cap_video
    finally:
        model.train(was_training)


def t2v_ranks(sims: torch.Tensor, caption_video: np.ndarray) -> np.ndarray:
    """0-based rank of each caption's own video, ties averaged (the metrics module's semantics)."""
    from videxperts.training.retrieval.metrics import retrieval_ranks

    return retrieval_ranks(sims, caption_video)[0].double().numpy()


def split_ranks(model: nn.Module, data: SplitData, device: torch.device,
                budget: int | None = None) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(t2v ranks, v2t ranks, caption -> video) of a split: the full matrix when it fits
    `budget` bytes (default `memory_budget`), blocks of it otherwise."""
    from videxperts.training.retrieval.metrics import retrieval_ranks, retrieval_ranks_from_embeddings

    budget = memory_budget(device) if budget is None else budget
    num_c = len(data.captions()[0])
    if num_c and rows_within(budget, len(data)) >= num_c:
        sims, cap_video = split_similarities(model, data, device)
        t2v, v2t = retrieval_ranks(sims, cap_video)
        return t2v, v2t, cap_video
    text, video, cap_video = encode_split(model, data, device)
    if text is None:
        raise ValueError("no captions to evaluate")
    was_training = model.training
    model.eval()
    try:
        t2v, v2t = retrieval_ranks_from_embeddings(text, video, model, cap_video,
                                                   chunk=rows_within(budget, len(data)))
    finally:
        model.train(was_training)
    return t2v, v2t, cap_video


def evaluate_split(model: nn.Module, data: SplitData, device: torch.device,
                   budget: int | None = None) -> Evaluation:
    """Text->video and video->text metrics (flat: ``t2v/R1``), the t2v ranks, and what was
    scored, within a memory budget (`split_ranks`)."""
    from videxperts.training.retrieval.metrics import metrics_from_ranks

    t2v, v2t, cap_video = split_ranks(model, data, device, budget)
    nested = {"t2v": metrics_from_ranks(t2v), "v2t": metrics_from_ranks(v2t)}
    metrics = {f"{d}/{k}": float(v) for d, m in nested.items() for k, v in m.items()}
    return Evaluation(metrics, {"t2v_ranks": t2v.double().numpy()},
                      {"videos": len(data), "queries": len(cap_video)})
