"""Retrieval metrics with the exact semantics of SPEC-CE.md "Retrieval metrics".

- Text->video: every caption queries all videos; rank = 0-based position of its video,
  ties averaged: rank = #(s > s_correct) + (#(s == s_correct) − 1) / 2. A fully tied row of
  N videos gives (N − 1) / 2. No sorting is needed (one pass: Σ sign(s − s_correct), see
  `_ranks_against`). A NaN similarity raises (it has no position: it would give rank −0.5).
- Video->text: for each video, the best (lowest) rank among its own captions, each ranked
  against all captions in that video's column (ties averaged the same way). The best rank
  belongs to the own caption with the highest score (a higher score has strictly fewer
  captions above it), so one comparison per column suffices. Videos without captions are
  not queries; masked-out captions are neither queries nor candidates.
- R@k = percent of queries with rank < k (k = 5, 10, 50). R@1 follows the published code,
  rank == 0 (`r1_rule="published"`, the default): a correct item tied with any other at the
  top (rank 0.5, 1, ...) is not a hit, so a tied row never hits R@1 for N > 1, and numbers
  compare with papers. `r1_rule="averaged"` counts rank < 1 like the other k (a tie of two
  at the top, rank 0.5, is a hit; a fully tied row of N = 2 hits). MdR = median rank + 1;
  MnR = mean rank + 1; Geom = geometric mean of R1, R5, R10. The median of an even count
  is the mean of the two middle ranks (numpy's median).

`retrieval_metrics` takes a full `[C, V]` matrix. `retrieval_metrics_from_embeddings` never
holds more than a block of it: text->video runs over caption blocks (rows complete), and
video->text over video blocks (columns complete), so each comparison only involves numbers
from one block — ranks stay exact even if a similarity function is not bit-reproducible
across block shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

KS = (1, 5, 10, 50)
R1_RULES = ("published", "averaged")
SimFn = Callable[[Any, Any], Tensor]


def metrics_from_ranks(ranks: np.ndarray | Tensor, r1_rule: str = "published") -> dict[str, float]:
    """R1 R5 R10 R50 MdR MnR Geom from 0-based (possibly fractional) ranks (R@1 rule: see
    the module docstring)."""
    if r1_rule not in R1_RULES:
        raise ValueError(f"r1_rule must be one of {R1_RULES}, got {r1_rule!r}")
    r = np.asarray(ranks.detach().cpu() if isinstance(ranks, Tensor) else ranks, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no queries to evaluate")
    if np.isnan(r).any():
        raise ValueError("a rank is NaN (a NaN similarity has no position)")
    out = {f"R{k}": float(100.0 * np.mean(r < k)) for k in KS}
    if r1_rule == "published":
        out["R1"] = float(100.0 * np.mean(r == 0))
    out["MdR"] = float(np.median(r) + 1)
    out["MnR"] = float(np.mean(r) + 1)
    out["Geom"] = float(np.cbrt(out["R1"] * out["R5"] * out["R10"]))
    return out


def _tie_rank(greater: Tensor, equal: Tensor) -> Tensor:
    return greater.to(torch.float64) + (equal.to(torch.float64) - 1.0) / 2.0


def _ranks_against(block: Tensor, ref: Tensor, dim: int) -> Tensor:
    """Tie-averaged 0-based rank of `ref` among the entries of `block` along `dim` (float64).

    rank = #(> ref) + (#(= ref) − 1)/2 = Σ sign(x − ref)/2 + (n − 1)/2, since #> − #< = Σ sign
    and #> + #< + #= = n. For finite IEEE floats x − y rounds to 0 only when x = y (gradual
    underflow) and never flips sign, so this single pass is exact; it is several times faster
    than two boolean comparisons and counts. Non-finite blocks use the comparisons.
    """
    n = block.shape[dim]
    if bool(torch.isfinite(block).all()) and bool(torch.isfinite(ref).all()):
        acc = torch.float32 if n < 2**24 else torch.float64  # integer partial sums stay exact
        signs = torch.sub(block, ref).sign_().sum(dim, dtype=acc)
        return signs.to(torch.float64) / 2.0 + (n - 1) / 2.0
    if bool(torch.isnan(block).any()) or bool(torch.isnan(ref).any()):
        raise ValueError("similarities contain NaN: a NaN score has no rank (check the model's outputs)")
    return _tie_rank((block > ref).sum(dim), (block == ref).sum(dim))


def _prepare(caption_video: Any, num_captions: int, num_videos: int,
             caption_mask: Any | None) -> tuple[Tensor, Tensor]:
    cv = torch.as_tensor(np.asarray(caption_video), dtype=torch.long).reshape(-1)
    if cv.numel() != num_captions:
        raise ValueError(f"caption_video has {cv.numel()} entries for {num_captions} captions")
    if num_captions and (cv.min() < 0 or cv.max() >= num_videos):
        raise ValueError(f"caption_video must index videos 0..{num_videos - 1}")
    keep = torch.ones(num_captions, dtype=torch.bool) if caption_mask is None else \
        torch.as_tensor(np.asarray(caption_mask), dtype=torch.bool).reshape(-1)
    if keep.numel() != num_captions:
        raise ValueError(f"caption_mask has {keep.numel()} entries for {num_captions} captions")
    return cv, keep


def _t2v_block(block: Tensor, cv: Tensor) -> Tensor:
    """Ranks of each row's correct video; `block` holds complete rows."""
    correct = block.gather(1, cv[:, None].to(block.device))
    return _ranks_against(block, correct, 1).cpu()


def _v2t_block(block: Tensor, cv: Tensor, start: int) -> Tensor:
    """Best own-caption rank per column; `block` holds complete columns (kept captions only)
    for videos `start .. start + block.shape[1]`. NaN for videos without captions."""
    dev, width = block.device, block.shape[1]
    cv = cv.to(dev)
    rows = torch.nonzero((cv >= start) & (cv < start + width)).flatten()
    cols = cv[rows] - start
    # the highest-scoring own caption has the best rank (see module docstring)
    best = torch.full((width,), -torch.inf, dtype=block.dtype, device=dev)
    best = best.scatter_reduce(0, cols, block[rows, cols], reduce="amax")
    has = torch.zeros(width, dtype=torch.bool, device=dev)
    has[cols] = True
    # columns without an own caption compare against -inf; their NaN-free rank is discarded
    ranks = _ranks_against(block, torch.where(has, best, torch.zeros_like(best)), 0)
    return torch.where(has, ranks, torch.full_like(ranks, torch.nan)).cpu()


def retrieval_ranks(sims: Tensor | np.ndarray, caption_video: Any,
                    caption_mask: Any | None = None) -> tuple[Tensor, Tensor]:
    """(t2v ranks over kept captions, v2t ranks over videos that have a kept caption)."""
    s = torch.as_tensor(sims)
    if s.dim() != 2:
        raise ValueError(f"sims must be [num_captions, num_videos], got {tuple(s.shape)}")
    cv, keep = _prepare(caption_video, s.shape[0], s.shape[1], caption_mask)
    s, cv = s[keep.to(s.device)], cv[keep]
    t2v = _t2v_block(s, cv)
    v2t = _v2t_block(s, cv, 0)
    return t2v, v2t[~torch.isnan(v2t)]


def retrieval_metrics(sims: Tensor | np.ndarray, caption_video: Any,
                      caption_mask: Any | None = None, r1_rule: str = "published") -> dict[str, dict[str, float]]:
    """Metrics from a full similarity matrix `[num_captions, num_videos]`.

    `caption_video[c]` is the index (column) of caption c's video; `caption_mask[c]` False
    drops caption c entirely (e.g. padding in a `[V·max_captions]` layout).
    """
    t2v, v2t = retrieval_ranks(sims, caption_video, caption_mask)
    return {"t2v": metrics_from_ranks(t2v, r1_rule), "v2t": metrics_from_ranks(v2t, r1_rule)}


def _length(x: Any) -> int:
    if isinstance(x, dict):
        return next(iter(x.values())).shape[0]
    return x.shape[0]


def _rows(x: Any, start: int, stop: int) -> Any:
    if isinstance(x, dict):
        return {k: v[start:stop] for k, v in x.items()}
    return x[start:stop]


def _select(x: Any, index: Tensor) -> Any:
    if isinstance(x, dict):
        return {k: v[index.to(v.device)] for k, v in x.items()}
    return x[index.to(x.device)]


def _resolve_sim_fn(model_or_fn: Any) -> SimFn:
    if model_or_fn is None:
        return lambda t, v: t @ v.T
    if hasattr(model_or_fn, "similarity"):
        return model_or_fn.similarity
    if callable(model_or_fn):
        return model_or_fn
    raise TypeError("pass a model with .similarity(text, video), a function (text, video) -> [c, v], or None")


@torch.no_grad()
def retrieval_ranks_from_embeddings(
    text: Tensor | dict[str, Tensor],
    video: Tensor | dict[str, Tensor],
    model_or_sim_fn: Any = None,
    caption_video: Any = None,
    caption_mask: Any | None = None,
    chunk: int = 4096,
    video_chunk: int | None = None,
    progress: bool = False,
) -> tuple[Tensor, Tensor]:
    """(t2v ranks over kept captions, v2t ranks over videos with a kept caption), as
    `retrieval_ranks`, without materialising the `[C, V]` similarity matrix.

    `text`/`video` are tensors or dicts of tensors (the models' `encode_*` outputs), first
    dimension = captions / videos. `model_or_sim_fn` is a model (its `.similarity` is used),
    a function `(text_rows, video_rows) -> [c, v]`, or None for a plain dot product.
    Text->video computes `[chunk, V]` blocks; video->text computes `[C_kept, video_chunk]`
    blocks (default: sized to hold about `chunk · V` numbers too). Peak extra memory is a few
    such blocks.
    """
    if caption_video is None:
        raise ValueError("caption_video is required (the video index of every caption)")
    sim = _resolve_sim_fn(model_or_sim_fn)
    num_c, num_v = _length(text), _length(video)
    cv, keep = _prepare(caption_video, num_c, num_v, caption_mask)
    kept = torch.nonzero(keep).flatten()
    if kept.numel() < num_c:
        text, cv = _select(text, kept), cv[kept]
        num_c = kept.numel()
    if num_c == 0:
        raise ValueError("no captions to evaluate")

    t2v = []
    for start in tqdm(range(0, num_c, chunk), desc="t2v", disable=not progress):
        block = sim(_rows(text, start, start + chunk), video)
        t2v.append(_t2v_block(block, cv[start:start + chunk]))

    video_chunk = video_chunk or max(1, (chunk * num_v) // max(num_c, 1))
    v2t = []
    for start in tqdm(range(0, num_v, video_chunk), desc="v2t", disable=not progress):
        stop = min(start + video_chunk, num_v)
        block = sim(text, _rows(video, start, stop))
        v2t.append(_v2t_block(block, cv, start))
    v2t_ranks = torch.cat(v2t)
    return torch.cat(t2v), v2t_ranks[~torch.isnan(v2t_ranks)]


def retrieval_metrics_from_embeddings(
    text: Tensor | dict[str, Tensor],
    video: Tensor | dict[str, Tensor],
    model_or_sim_fn: Any = None,
    caption_video: Any = None,
    caption_mask: Any | None = None,
    chunk: int = 4096,
    video_chunk: int | None = None,
    progress: bool = False,
    r1_rule: str = "published",
) -> dict[str, dict[str, float]]:
    """Metrics from embeddings without materialising the `[C, V]` similarity matrix (see
    `retrieval_ranks_from_embeddings`)."""
    t2v, v2t = retrieval_ranks_from_embeddings(text, video, model_or_sim_fn, caption_video, caption_mask,
                                               chunk, video_chunk, progress)
    return {"t2v": metrics_from_ranks(t2v, r1_rule), "v2t": metrics_from_ranks(v2t, r1_rule)}
