"""Segments of a split: store features cropped to each caption's interval, tokens, batches.

Cropping follows the original (spec section 1.0): with S feature rows over a video of
``duration`` seconds, rows ``int(S·start/duration)`` to ``int(S·end/duration)`` (floor); when
the two are equal one row is taken (the last one when at the very end); a missing modality or
an empty crop becomes one all-zero row. In a batch video and audio are padded with 1.0 (the
original pads rgb and audio with the caption pad index 1 and flow with 0, so rgb+flow pads
to 1.0); the row masks travel with the batch (compat.pad_value_mask re-derives them from
channel 0 != 1 as published). Captions are padded with ``<blank>`` (1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from videxperts.training.captioning.vocab import PAD, Vocabulary

FEATURE_PAD = 1.0


def crop(rows: np.ndarray, start: float, end: float, duration: float, dim: int) -> np.ndarray:
    """The rows of one segment (at least one row; zeros when nothing is there)."""
    s = len(rows)
    if s == 0 or not duration or duration <= 0:
        return np.zeros((1, dim), np.float32)
    lo, hi = int(s * start / duration), int(s * end / duration)
    if lo == hi:
        out = rows[s - 1:s] if lo >= s else rows[lo:lo + 1]
    else:
        out = rows[lo:hi]
    return np.ascontiguousarray(out, np.float32) if len(out) else np.zeros((1, dim), np.float32)


@dataclass
class SegmentSplit:
    """Every captioned segment of one split (features already cropped)."""

    video_ids: list[str]
    starts: np.ndarray
    ends: np.ndarray
    durations: np.ndarray
    captions: list[str]
    tokens: list[list[int]]
    video: list[np.ndarray]
    audio: list[np.ndarray]
    itos: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.captions)

    def batch(self, idx: Sequence[int], v_len: int | None = None, a_len: int | None = None,
              c_len: int | None = None) -> dict[str, Any]:
        """Padded tensors of segments ``idx`` (lengths fixed by the caller for a global batch)."""
        idx = list(idx)
        v_len = v_len or max(len(self.video[i]) for i in idx)
        a_len = a_len or max(len(self.audio[i]) for i in idx)
        c_len = c_len or max(len(self.tokens[i]) for i in idx)
        v = _pad([self.video[i] for i in idx], v_len)
        a = _pad([self.audio[i] for i in idx], a_len)
        tok = torch.full((len(idx), c_len), PAD, dtype=torch.long)
        for r, i in enumerate(idx):
            t = self.tokens[i][:c_len]
            tok[r, :len(t)] = torch.tensor(t)
        return {"v": v[0], "a": a[0], "v_rows": v[1], "a_rows": a[1], "tokens": tok,
                "refs": [self.captions[i] for i in idx]}

    def lengths(self, idx: Sequence[int]) -> tuple[int, int, int]:
        return (max(len(self.video[i]) for i in idx), max(len(self.audio[i]) for i in idx),
                max(len(self.tokens[i]) for i in idx))


def _pad(arrays: list[np.ndarray], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    dim = arrays[0].shape[1]
    out = np.full((len(arrays), length, dim), FEATURE_PAD, np.float32)
    rows = np.zeros((len(arrays), length), bool)
    for r, x in enumerate(arrays):
        out[r, :len(x)] = x[:length]
        rows[r, :len(x)] = True
    return torch.from_numpy(out), torch.from_numpy(rows)


def read_segments(dataset: str, video_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """{video_id: {"duration", "segments": [(caption, start, end), ...]}} of a dataset directory.

    A caption without ``start``/``end`` (video-level) covers the whole video.
    """
    from videxperts.storage.manifest import read_dataset

    manifest, captions = read_dataset(dataset)
    durations = dict(zip(manifest.column("video_id").to_pylist(), manifest.column("duration").to_pylist(),
                         strict=True))
    cols = captions.to_pydict()
    starts = cols.get("start") or [None] * len(cols["video_id"])
    ends = cols.get("end") or [None] * len(cols["video_id"])
    wanted = set(video_ids) if video_ids is not None else None
    out: dict[str, Any] = {}
    order = sorted(range(len(cols["video_id"])), key=lambda i: (cols["video_id"][i], cols["caption_idx"][i]))
    for i in order:
        vid = cols["video_id"][i]
        if wanted is not None and vid not in wanted:
            continue
        dur = float(durations.get(vid) or 0.0)
        s = 0.0 if starts[i] is None or _nan(starts[i]) else float(starts[i])
        e = dur if ends[i] is None or _nan(ends[i]) else float(ends[i])
        entry = out.setdefault(vid, {"duration": dur, "segments": []})
        entry["segments"].append((str(cols["caption"][i]), s, e))
    return out


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def load_segments(reader: Any, cfg: Any, video_ids: Sequence[str], segments: Mapping[str, Any],
                  vocab: Vocabulary) -> SegmentSplit:
    """Features of ``video_ids`` through the store reader, cropped to every segment of ``segments``."""
    ids = [v for v in video_ids if v in segments]
    feats = {}
    for key, expert in (("video", cfg.data.video_expert), ("audio", cfg.data.audio_expert)):
        dim = cfg.model.d_vid if key == "video" else cfg.model.d_aud
        if ids and expert in reader.experts:
            x, mask = reader.load_expert(expert, ids, mode="seq")
            feats[key] = [x[i][mask[i]] for i in range(len(ids))]
        else:
            feats[key] = [np.zeros((0, dim), np.float32) for _ in ids]
    out = SegmentSplit([], [], [], [], [], [], [], [], list(vocab.itos))
    starts, ends, durs = [], [], []
    for j, vid in enumerate(ids):
        entry = segments[vid]
        for caption, s, e in entry["segments"]:
            out.video_ids.append(vid)
            starts.append(s)
            ends.append(e)
            durs.append(entry["duration"])
            out.captions.append(caption)
            out.tokens.append(vocab.encode(caption))
            out.video.append(crop(feats["video"][j], s, e, entry["duration"], cfg.model.d_vid))
            out.audio.append(crop(feats["audio"][j], s, e, entry["duration"], cfg.model.d_aud))
    out.starts, out.ends, out.durations = (np.asarray(starts, np.float64), np.asarray(ends, np.float64),
                                           np.asarray(durs, np.float64))
    return out
