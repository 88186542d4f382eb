"""Encoding a split and scoring it: caption×video similarities, per-query ranks, R@k metrics."""

from __future__ import annotations

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


def evaluate_split(model: nn.Module, data: SplitData, device: torch.device) -> Evaluation:
    """Text->video and video->text metrics (flat: ``t2v/R1``), the t2v ranks, and what was scored."""
    from videxperts.training.retrieval.metrics import retrieval_metrics

    sims, cap_video = split_similarities(model, data, device)
    nested = retrieval_metrics(sims.numpy(), cap_video)
    metrics = {f"{d}/{k}": float(v) for d, m in nested.items() for k, v in m.items()}
    return Evaluation(metrics, {"t2v_ranks": t2v_ranks(sims, cap_video)},
                      {"videos": len(data), "queries": len(cap_video)})
