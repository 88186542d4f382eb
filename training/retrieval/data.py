"""Training data: the store reader's numpy arrays as one in-memory split, and the batch sampler.

Everything a model sees comes from ``videxperts.storage.reader.StoreReader`` (``load_expert`` /
``load_text``); :func:`load_split` turns those arrays into a :class:`SplitData`. Tests and
benchmarks build a :class:`SplitData` from arrays directly through :meth:`SplitData.from_arrays`,
the same constructor the reader path uses, so the training loop has one code path.

The sampler draws *global* batches: the composition of a batch depends only on the seed and
the epoch, never on the number of workers; each worker takes a contiguous slice of every
global batch. With DDP (gradients of the gathered batch loss) a run with 1 worker and a run
with 2 workers therefore follow the same trajectory up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from videxperts.errors import UserError


def cfg_get(obj: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a config node that may be a dataclass/object or a mapping."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def expert_specs(cfg: Any) -> dict[str, dict[str, Any]]:
    """The config's experts as ``name -> {dim, temporal, max_tokens}``, sorted by name."""
    experts = cfg_get(cfg_get(cfg, "data"), "experts") or {}
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(experts):
        spec = experts[name]
        out[name] = {
            "dim": int(cfg_get(spec, "dim")),
            "temporal": str(cfg_get(spec, "temporal", "mean")),
            "max_tokens": cfg_get(spec, "max_tokens"),
        }
    if not out:
        raise UserError("training config lists no experts under data.experts")
    return out


def text_spec(cfg: Any) -> dict[str, Any]:
    """The config's text side: encoder name, dim, max_tokens, max_captions."""
    text = cfg_get(cfg_get(cfg, "data"), "text")
    if text is None:
        raise UserError("training config has no data.text section")
    return {
        "encoder": str(cfg_get(text, "encoder")),
        "dim": int(cfg_get(text, "dim")),
        "max_tokens": int(cfg_get(text, "max_tokens", 32)),
        "max_captions": int(cfg_get(text, "max_captions", 20)),
    }


@dataclass
class SplitData:
    """One split held in memory as numpy arrays (videos in a fixed order).

    experts[e]: ``[N, D]`` (mean) or ``[N, L, D]`` (sequence experts, with expert_masks[e] ``[N, L]``);
    available: ``[N, E]`` bool in sorted expert order; tokens ``[N, C, L, Dt]``,
    token_mask ``[N, C, L]``, caption_mask ``[N, C]``.
    """

    video_ids: list[str]
    experts: dict[str, np.ndarray]
    expert_masks: dict[str, np.ndarray]
    available: np.ndarray
    tokens: np.ndarray
    token_mask: np.ndarray
    caption_mask: np.ndarray
    text_encoder: str | None = None
    extra_text: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def from_arrays(
        cls,
        video_ids: Sequence[str],
        experts: Mapping[str, tuple[np.ndarray, np.ndarray]],
        text: tuple[np.ndarray, np.ndarray, np.ndarray],
        text_encoder: str | None = None,
    ) -> SplitData:
        """Build a split from reader-shaped outputs.

        ``experts[name] = (feats, mask)`` exactly as ``StoreReader.load_expert`` returns them
        (mask ``[N]`` for mean experts, ``[N, L]`` token mask for sequence experts);
        ``text = (tokens, token_mask, caption_mask)`` as ``StoreReader.load_text`` returns it.
        """
        n = len(video_ids)
        feats: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        avail = []
        for name in sorted(experts):
            x, m = experts[name]
            x = np.asarray(x, dtype=np.float32)
            m = np.asarray(m, dtype=bool)
            if x.shape[0] != n or m.shape[0] != n:
                raise ValueError(f"expert {name!r}: {x.shape[0]} rows for {n} videos")
            if x.ndim == 3:
                x = np.where(m[..., None], x, 0.0).astype(np.float32)  # missing tokens are zeros
                masks[name] = m
                avail.append(m.any(axis=1))
            else:
                x = np.where(m[:, None], x, 0.0).astype(np.float32)
                avail.append(m)
            feats[name] = x
        tokens, token_mask, caption_mask = (np.asarray(a) for a in text)
        if tokens.shape[0] != n:
            raise ValueError(f"text: {tokens.shape[0]} rows for {n} videos")
        token_mask = token_mask.astype(bool)
        caption_mask = caption_mask.astype(bool) & token_mask.any(axis=2)
        return cls(
            video_ids=list(video_ids),
            experts=feats,
            expert_masks=masks,
            available=np.stack(avail, axis=1) if avail else np.zeros((n, 0), bool),
            tokens=tokens.astype(np.float32),
            token_mask=token_mask,
            caption_mask=caption_mask,
            text_encoder=text_encoder,
        )

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def expert_names(self) -> list[str]:
        return sorted(self.experts)

    def captions(self, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All valid (video index, caption index) pairs in row-major order."""
        mask = self.caption_mask if keep is None else self.caption_mask & keep
        v, c = np.nonzero(mask)
        return v.astype(np.int64), c.astype(np.int64)

    def video_batch(self, idx: np.ndarray) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Model inputs for videos ``idx``: (experts, expert_masks, available)."""
        idx = np.asarray(idx, dtype=np.int64)
        experts = {e: torch.from_numpy(self.experts[e][idx]) for e in self.expert_names}
        masks = {e: torch.from_numpy(m[idx]) for e, m in self.expert_masks.items()}
        return experts, masks, torch.from_numpy(self.available[idx])

    def text_batch(
        self, video_idx: np.ndarray, caption_idx: np.ndarray, encoder: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model inputs for captions (tokens ``[B, L, Dt]``, token mask ``[B, L]``).

        ``encoder`` selects another text encoder's features loaded with :meth:`add_text`
        (TeachText teachers); None is the split's own encoder.
        """
        tokens, token_mask = self.tokens, self.token_mask
        if encoder is not None and encoder != self.text_encoder:
            if encoder not in self.extra_text:
                raise UserError(f"text features of encoder {encoder!r} are not loaded (have {self.text_encoder!r}"
                                f"{', ' + ', '.join(map(repr, self.extra_text)) if self.extra_text else ''})")
            tokens, token_mask, _ = self.extra_text[encoder]
        v = np.asarray(video_idx, dtype=np.int64)
        c = np.asarray(caption_idx, dtype=np.int64)
        return torch.from_numpy(tokens[v, c]), torch.from_numpy(token_mask[v, c])

    def add_text(self, encoder: str, text: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Attach another encoder's caption features (same videos, same caption slots)."""
        tokens, token_mask, caption_mask = (np.asarray(a) for a in text)
        if tokens.shape[:2] != self.tokens.shape[:2]:
            raise ValueError(f"text encoder {encoder!r}: shape {tokens.shape[:2]} != {self.tokens.shape[:2]}")
        self.extra_text[encoder] = (tokens.astype(np.float32), token_mask.astype(bool), caption_mask.astype(bool))


def _reader(store: Any) -> Any:
    from videxperts.storage.reader import StoreReader

    return store if hasattr(store, "load_expert") else StoreReader(store)


def load_split(store: Any, cfg: Any, video_ids: Sequence[str], text_encoder: str | None = None,
               all_captions: bool = False) -> SplitData:
    """Read one split's features through the store reader (a ``StoreReader`` or a store URL).

    ``data.text.max_captions`` caps the captions per video of a training split; an evaluated
    split (``all_captions``) keeps every caption, as the published protocol scores them."""
    reader = _reader(store)
    known = getattr(reader, "video_ids", None)
    if known is not None:  # videos of the manifest that never reached the store are skipped
        video_ids = [v for v in video_ids if v in known]
    experts = {}
    for name, spec in expert_specs(cfg).items():
        if spec["temporal"] == "mean":
            experts[name] = reader.load_expert(name, list(video_ids), mode="mean")
        else:
            max_len = int(spec["max_tokens"] or 32)
            experts[name] = reader.load_expert(name, list(video_ids), mode="seq", max_len=max_len)
    ts = text_spec(cfg)
    encoder = text_encoder or ts["encoder"]
    text = reader.load_text(encoder, list(video_ids), max_captions=None if all_captions else ts["max_captions"],
                            max_tokens=ts["max_tokens"])
    return SplitData.from_arrays(video_ids, experts, text, text_encoder=encoder)


class GlobalBatchSampler:
    """One randomly chosen caption per video per batch; batch composition independent of world size.

    Epoch ``e`` uses ``numpy.random.default_rng([seed, e])`` to shuffle the eligible videos and to
    pick one of each video's kept captions; consecutive ``batch_size`` chunks form the global
    batches. A trailing partial batch is kept when it has at least 2 videos and at least one video
    per worker (a ranking loss needs two pairs); only for world sizes above 2 can this rule drop a
    batch that a smaller world keeps.
    """

    def __init__(self, caption_mask: np.ndarray, batch_size: int, seed: int, keep: np.ndarray | None = None):
        mask = np.asarray(caption_mask, bool)
        if keep is not None:
            mask = mask & np.asarray(keep, bool)
        self.mask = mask
        self.videos = np.flatnonzero(mask.any(axis=1))
        if len(self.videos) < 2:
            raise UserError(f"training split has {len(self.videos)} videos with captions; need at least 2")
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    def epoch(self, epoch: int, world_size: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """The global batches of ``epoch`` as (video indices, caption indices)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(self.videos)
        u = rng.random(len(order))
        caps = np.empty(len(order), np.int64)
        for i, v in enumerate(order):
            valid = np.flatnonzero(self.mask[v])
            caps[i] = valid[min(int(u[i] * len(valid)), len(valid) - 1)]
        batches = []
        for start in range(0, len(order), self.batch_size):
            vid, cap = order[start : start + self.batch_size], caps[start : start + self.batch_size]
            if len(vid) < max(2, world_size):
                continue
            batches.append((vid, cap))
        return batches

    def shards(self, epoch: int, rank: int, world_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """This worker's contiguous slice of each global batch."""
        for vid, cap in self.epoch(epoch, world_size):
            yield np.array_split(vid, world_size)[rank], np.array_split(cap, world_size)[rank]

    def __len__(self) -> int:
        return len(self.epoch(0))


def synthetic_splits(
    cfg: Any,
    sizes: Mapping[str, int] | None = None,
    seed: int = 0,
    captions: int = 3,
    noise: float = 0.5,
    extra_encoders: Sequence[str] = (),
    latent: int = 8,
) -> dict[str, SplitData]:
    """Random-but-learnable splits shaped like ``cfg`` (tests, benchmarks, no store needed).

    Each video has a latent vector z; every expert's features (each token, for sequence
    experts) are ``z·A_e + noise`` and every caption token is ``z·B + noise`` (``B`` differs
    per text encoder), so captions carry information about their own video. About 15% of the
    (video, expert) pairs are missing, and sequence experts have random lengths.
    """
    sizes = dict(sizes or {"train": 24, "val": 8, "test": 8})
    rng = np.random.default_rng(seed)
    specs, ts = expert_specs(cfg), text_spec(cfg)
    proj = {e: rng.standard_normal((latent, s["dim"])).astype(np.float32) for e, s in specs.items()}
    encoders = [ts["encoder"], *[e for e in extra_encoders if e != ts["encoder"]]]
    text_proj = {enc: rng.standard_normal((latent, ts["dim"])).astype(np.float32) for enc in encoders}
    out: dict[str, SplitData] = {}
    offset = 0
    for split, n in sizes.items():
        z = rng.standard_normal((n, latent)).astype(np.float32)
        experts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for e, s in specs.items():
            present = rng.random(n) > 0.15
            if s["temporal"] == "mean":
                x = z @ proj[e] + noise * rng.standard_normal((n, s["dim"])).astype(np.float32)
                experts[e] = (x.astype(np.float32), present)
            else:
                length = int(s["max_tokens"] or 8)
                x = (z @ proj[e])[:, None, :] + noise * rng.standard_normal((n, length, s["dim"]))
                lengths = rng.integers(1, length + 1, n)
                mask = (np.arange(length)[None, :] < lengths[:, None]) & present[:, None]
                experts[e] = (x.astype(np.float32), mask)
        lt, c = ts["max_tokens"], min(captions, ts["max_captions"])
        n_caps = rng.integers(1, c + 1, n)
        cap_mask = np.arange(c)[None, :] < n_caps[:, None]
        tok_len = rng.integers(2, lt + 1, (n, c))
        tok_mask = (np.arange(lt)[None, None, :] < tok_len[..., None]) & cap_mask[..., None]
        texts = {}
        for enc in encoders:
            toks = (z @ text_proj[enc])[:, None, None, :] + noise * rng.standard_normal((n, c, lt, ts["dim"]))
            toks = np.where(tok_mask[..., None], toks, 0.0).astype(np.float32)
            texts[enc] = (toks, tok_mask, cap_mask)
        ids = [f"v{offset + i:05d}" for i in range(n)]
        offset += n
        data = SplitData.from_arrays(ids, experts, texts[ts["encoder"]], text_encoder=ts["encoder"])
        for enc in encoders[1:]:
            data.add_text(enc, texts[enc])
        out[split] = data
    return out
