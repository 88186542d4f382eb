"""The VSE++ image-text matching protocol (SPEC-DCPG.md §3.2), in bounded memory.

Similarities are `[N images, C captions]` with `C = captions_per_image * N` and the captions of
image `i` at columns `cpi*i .. cpi*i + cpi - 1` (the SCAN precomp order).

- **i2t**: image `i` ranks all C captions by descending score; its rank is the best (lowest)
  0-based position among its own captions.
- **t2i**: caption `c` ranks the N images; its rank is the position of image `c // cpi`.
- R@K = 100 * |{rank < K}| / #queries (K = 1, 5, 10); medr = floor(median(rank)) + 1;
  meanr = mean(rank) + 1; **rsum** = the six recalls summed (maximum 600). `rsum_select` is
  R1 + R5 + R1i + R5i, the published model-selection score.

**Ties.** The original sorts each row with `numpy.argsort(d)[::-1]` and takes the position.
`argsort`'s default kind is an unstable quicksort (numpy's SIMD sorts make the order of equal
scores depend on the CPU), so the original's tie order is not defined. `ties="original"`
(default) fixes it to what a *stable* argsort reversed gives, which numpy's sort does for short
rows: among equal scores the **higher index comes first**, i.e.
rank = #(score > s) + #(score == s and index > own index). A collapsed model (all scores
equal) therefore scores at chance level, not 100. `ties="pessimistic"` puts every tied item
ahead (rank = #(>) + #(=) - 1), `ties="optimistic"` behind (rank = #(>)); the three agree
whenever no score ties the correct one. NaN scores raise ``ValueError``.

**Memory.** Nothing materialises the full matrix: a `Sims` source yields blocks of complete
rows (i2t) or complete columns (t2i) of about `block_elems` scores each, so 5,000 images x
25,000 captions needs a block, not 500 MB (bench/bench_matching_eval.py). Each query only
compares scores from one block, so ranks do not depend on the block size.

**Protocols.** Flickr30K 1K and COCO 5K evaluate the whole test set; COCO 1K cuts `testall`
into contiguous folds of `fold_size` images (1,000 for real data, `fold_size * cpi` captions
each) and averages every metric over the folds, with rsum computed from the mean recalls (the
VSE++ 5-fold print bug, rsum shown as 6 x mean(t2i recall), is not reproduced; fartashf/vsepp
PR #43). **Ensembles** average the members' similarity matrices, d = (d1 + d2) / 2, as the
published VSRN/DCPG tables do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

KS = (1, 5, 10)
TIES = ("original", "pessimistic", "optimistic")
PROTOCOLS = ("f30k_1k", "coco_1k", "coco_5k")
BLOCK_ELEMS = 1 << 24  # ~64 MB of float32 scores per block


class Sims(Protocol):
    """A similarity matrix that hands out blocks; it need never exist whole."""

    n_images: int
    n_captions: int

    def rows(self, start: int, stop: int) -> Tensor:
        """`sims[start:stop, :]`: complete rows for images start..stop."""

    def cols(self, start: int, stop: int) -> Tensor:
        """`sims[:, start:stop]`: complete columns for captions start..stop."""

    def subset(self, start: int, stop: int, captions_per_image: int) -> Sims:
        """Images start..stop and their own captions (a fold)."""


class DenseSims:
    """A similarity matrix held in memory (numpy or torch)."""

    def __init__(self, sims: Tensor | np.ndarray) -> None:
        t = torch.as_tensor(sims)
        if t.ndim != 2:
            raise ValueError(f"similarities must be 2-D [images, captions], got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            t = t.to(torch.float64)
        self.sims = t
        self.n_images, self.n_captions = int(t.shape[0]), int(t.shape[1])

    def rows(self, start: int, stop: int) -> Tensor:
        return self.sims[start:stop]

    def cols(self, start: int, stop: int) -> Tensor:
        return self.sims[:, start:stop]

    def subset(self, start: int, stop: int, captions_per_image: int) -> DenseSims:
        return DenseSims(self.sims[start:stop, start * captions_per_image:stop * captions_per_image])


class EmbeddingSims:
    """Dot products of image embeddings `[N, D]` and caption embeddings `[C, D]`, computed block
    by block on the embeddings' device (pass l2-normalised embeddings for cosine similarity)."""

    def __init__(self, images: Tensor | np.ndarray, captions: Tensor | np.ndarray) -> None:
        im, cap = torch.as_tensor(images), torch.as_tensor(captions)
        if im.ndim != 2 or cap.ndim != 2 or im.shape[1] != cap.shape[1]:
            raise ValueError(f"embeddings must be [N, D] and [C, D], got {tuple(im.shape)} and {tuple(cap.shape)}")
        self.images, self.captions = im, cap.to(im.device, im.dtype)
        self.n_images, self.n_captions = int(im.shape[0]), int(cap.shape[0])

    def rows(self, start: int, stop: int) -> Tensor:
        return self.images[start:stop] @ self.captions.T

    def cols(self, start: int, stop: int) -> Tensor:
        return self.images @ self.captions[start:stop].T

    def subset(self, start: int, stop: int, captions_per_image: int) -> EmbeddingSims:
        return EmbeddingSims(self.images[start:stop],
                             self.captions[start * captions_per_image:stop * captions_per_image])


class MeanSims:
    """The ensemble of several similarity sources: their element-wise mean, block by block."""

    def __init__(self, members: Sequence[Sims]) -> None:
        if len(members) < 1:
            raise ValueError("an ensemble needs at least one member")
        shapes = {(m.n_images, m.n_captions) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"ensemble members disagree on [images, captions]: {sorted(shapes)}")
        self.members = list(members)
        self.n_images, self.n_captions = shapes.pop()

    def _mean(self, blocks: list[Tensor]) -> Tensor:
        total = blocks[0].to(torch.promote_types(blocks[0].dtype, torch.float32))
        for b in blocks[1:]:
            total = total + b.to(total.device)
        return total / len(blocks)

    def rows(self, start: int, stop: int) -> Tensor:
        return self._mean([m.rows(start, stop) for m in self.members])

    def cols(self, start: int, stop: int) -> Tensor:
        return self._mean([m.cols(start, stop) for m in self.members])

    def subset(self, start: int, stop: int, captions_per_image: int) -> MeanSims:
        return MeanSims([m.subset(start, stop, captions_per_image) for m in self.members])


def as_sims(sims: Any) -> Sims:
    """A `Sims` source from a matrix (numpy/torch) or a source already."""
    if hasattr(sims, "rows") and hasattr(sims, "cols") and hasattr(sims, "n_images"):
        return sims
    return DenseSims(sims)


def ensemble(*members: Any) -> MeanSims:
    """Average two (or more) models' similarity matrices: d = (d1 + d2) / 2."""
    return MeanSims([as_sims(m) for m in members])


def unique_images(image_embs: Tensor | np.ndarray, captions_per_image: int = 5) -> Tensor:
    """One embedding per image from the caption-indexed `[cpi*N, D]` array (`images[::cpi]`)."""
    t = torch.as_tensor(image_embs)
    if t.shape[0] % captions_per_image:
        raise ValueError(f"{t.shape[0]} image rows is not a multiple of {captions_per_image} captions per image")
    return t[::captions_per_image]


def _check(s: Sims, cpi: int, ties: str) -> None:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    if cpi < 1:
        raise ValueError(f"captions_per_image must be >= 1, got {cpi}")
    if s.n_images < 1:
        raise ValueError("no images to evaluate")
    if s.n_captions != cpi * s.n_images:
        raise ValueError(f"{s.n_captions} captions for {s.n_images} images: expected "
                         f"{cpi * s.n_images} ({cpi} per image, in image order)")


def _rank_of(block: Tensor, ref: Tensor, own: Tensor, n_own_tied: Tensor | int, ties: str) -> Tensor:
    """0-based rank of the reference score `ref` in each row of `block` ([rows]). `own` is the
    highest column holding the reference score among the query's own items and `n_own_tied`
    how many own items hold it; own items tied with each other never push the rank down."""
    if bool(torch.isnan(block).any()):
        raise ValueError("similarities contain NaN: a NaN score has no rank (check the model's outputs)")
    ref = ref[:, None]
    greater = (block > ref).sum(1)
    if ties == "optimistic":
        return greater
    equal = block == ref
    n_equal = equal.sum(1)
    if ties == "pessimistic":  # every tied foreign item ahead of the own ones
        return greater + n_equal - n_own_tied
    if bool((n_equal > n_own_tied).any()):  # original: among equal scores the higher index first
        later = torch.arange(block.shape[1], device=block.device)[None, :] > own[:, None]
        return greater + (equal & later).sum(1)
    return greater


def _step(n_other: int, block_elems: int) -> int:
    return max(1, block_elems // max(1, n_other))


def i2t_ranks(sims: Any, captions_per_image: int = 5, ties: str = "original",
              block_elems: int = BLOCK_ELEMS) -> np.ndarray:
    """Per image, the best 0-based rank among its own captions (int64 `[N]`)."""
    s, cpi = as_sims(sims), captions_per_image
    _check(s, cpi, ties)
    out = []
    step = _step(s.n_captions, block_elems)
    for start in range(0, s.n_images, step):
        stop = min(start + step, s.n_images)
        block = s.rows(start, stop)
        cols = ((torch.arange(start, stop, device=block.device) * cpi)[:, None]
                + torch.arange(cpi, device=block.device)[None, :])  # [rows, cpi] own captions
        own_scores = block.gather(1, cols)
        best = own_scores.max(1).values  # the best own caption has the best rank
        tied = own_scores == best[:, None]
        own = torch.where(tied, cols, torch.full_like(cols, -1)).max(1).values
        out.append(_rank_of(block, best, own, tied.sum(1), ties).cpu())
    return torch.cat(out).numpy().astype(np.int64)


def t2i_ranks(sims: Any, captions_per_image: int = 5, ties: str = "original",
              block_elems: int = BLOCK_ELEMS) -> np.ndarray:
    """Per caption, the 0-based rank of its image among all images (int64 `[C]`)."""
    s, cpi = as_sims(sims), captions_per_image
    _check(s, cpi, ties)
    out = []
    step = _step(s.n_images, block_elems)
    for start in range(0, s.n_captions, step):
        stop = min(start + step, s.n_captions)
        block = s.cols(start, stop).T  # [captions, images]
        own = torch.arange(start, stop, device=block.device) // cpi
        ref = block[torch.arange(stop - start, device=block.device), own]
        out.append(_rank_of(block, ref, own, 1, ties).cpu())
    return torch.cat(out).numpy().astype(np.int64)


def recalls_from_ranks(ranks: np.ndarray) -> dict[str, float]:
    """r1 r5 r10 (percent), medr = floor(median) + 1, meanr = mean + 1, from 0-based ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no queries to evaluate")
    out = {f"r{k}": float(100.0 * np.count_nonzero(r < k) / r.size) for k in KS}
    out["medr"] = float(math.floor(np.median(r)) + 1)
    out["meanr"] = float(r.mean() + 1)
    return out


def i2t_recalls(sims: Any, captions_per_image: int = 5, ties: str = "original",
                block_elems: int = BLOCK_ELEMS) -> dict[str, float]:
    """Image -> text: keys r1, r5, r10, medr, meanr (best of each image's captions)."""
    return recalls_from_ranks(i2t_ranks(sims, captions_per_image, ties, block_elems))


def t2i_recalls(sims: Any, captions_per_image: int = 5, ties: str = "original",
                block_elems: int = BLOCK_ELEMS) -> dict[str, float]:
    """Text -> image: keys r1, r5, r10, medr, meanr."""
    return recalls_from_ranks(t2i_ranks(sims, captions_per_image, ties, block_elems))


def _flat(i2t: dict[str, float], t2i: dict[str, float]) -> dict[str, float]:
    out = {f"i2t_{k}": v for k, v in i2t.items()} | {f"t2i_{k}": v for k, v in t2i.items()}
    out["rsum"] = sum(i2t[f"r{k}"] + t2i[f"r{k}"] for k in KS)
    out["rsum_select"] = i2t["r1"] + i2t["r5"] + t2i["r1"] + t2i["r5"]
    return out


def matching_metrics(sims: Any, captions_per_image: int = 5, ties: str = "original",
                     block_elems: int = BLOCK_ELEMS) -> dict[str, float]:
    """Both directions on the whole set: i2t_r1 ... i2t_meanr, t2i_r1 ... t2i_meanr, rsum
    (six recalls summed) and rsum_select (R1 + R5 + R1i + R5i)."""
    return _flat(i2t_recalls(sims, captions_per_image, ties, block_elems),
                 t2i_recalls(sims, captions_per_image, ties, block_elems))


def fold_metrics(sims: Any, fold_size: int = 1000, captions_per_image: int = 5, ties: str = "original",
                 block_elems: int = BLOCK_ELEMS) -> list[dict[str, float]]:
    """`matching_metrics` of each contiguous fold of `fold_size` images (and their captions)."""
    s = as_sims(sims)
    _check(s, captions_per_image, ties)
    if fold_size < 1 or s.n_images % fold_size:
        raise ValueError(f"{s.n_images} images do not split into folds of {fold_size} images "
                         f"(COCO 1K needs a test set of k x {fold_size} images)")
    return [matching_metrics(s.subset(start, start + fold_size, captions_per_image), captions_per_image,
                             ties, block_elems)
            for start in range(0, s.n_images, fold_size)]


def mean_over_folds(folds: list[dict[str, float]]) -> dict[str, float]:
    """Every metric averaged over the folds; rsum and rsum_select recomputed from the mean recalls."""
    if not folds:
        raise ValueError("no folds to average")
    keys = [k for k in folds[0] if not k.startswith("rsum")]
    mean = {k: float(np.mean([f[k] for f in folds])) for k in keys}
    return _flat({k[4:]: v for k, v in mean.items() if k.startswith("i2t_")},
                 {k[4:]: v for k, v in mean.items() if k.startswith("t2i_")})


def evaluate_protocol(sims: Any, protocol: str, captions_per_image: int = 5, fold_size: int = 1000,
                      ties: str = "original", block_elems: int = BLOCK_ELEMS) -> dict[str, float]:
    """One published protocol: `f30k_1k` and `coco_5k` evaluate the whole set given (the
    Flickr30K test split, COCO `testall`); `coco_1k` averages folds of `fold_size` images."""
    if protocol == "coco_1k":
        return mean_over_folds(fold_metrics(sims, fold_size, captions_per_image, ties, block_elems))
    if protocol in ("f30k_1k", "coco_5k"):
        return matching_metrics(sims, captions_per_image, ties, block_elems)
    raise ValueError(f"unknown matching protocol {protocol!r}; expected one of {PROTOCOLS}")
