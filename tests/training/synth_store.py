"""Test helper: write synthetic splits (videxperts.training.retrieval.data.synthetic_splits) into a real feature store
through the FeatureStore writer API, plus the dataset's manifest/captions parquet files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from videxperts.storage.store import FeatureStore
from videxperts.training.retrieval.data import SplitData

# A tiny CE config (one mean expert, one VLAD expert) for tests that train end to end.
TINY_CFG = {
    "task": "retrieval",
    "name": "tiny",
    "data": {"experts": {"a": {"dim": 12}, "s": {"dim": 6, "temporal": "vlad", "clusters": 2, "max_tokens": 4}},
             "text": {"encoder": "t1", "dim": 8, "max_tokens": 5, "max_captions": 3}},
    "model": {"variant": "ce", "shared_dim": 16, "text_vlad": {"clusters": 3, "ghosts": 1}},
    "optim": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
    "loss": {"margin": 0.2},
    "train": {"batch_size": 8, "epochs": 3, "seed": 0},
}


def tiny_cfg(name: str, epochs: int) -> dict:
    """TINY_CFG under another name and epoch count (a fresh dict: callers may change it)."""
    return {**TINY_CFG, "name": name, "train": {**TINY_CFG["train"], "epochs": epochs}}


PROVENANCE = {"backbone": "synthetic", "weights": "random-init:seed=0", "sampling": {},
              "extractor_version": "1", "dtype": "float32"}


def write_store(splits: dict[str, SplitData], url: str | Path, data_dir: str | Path | None = None) -> str:
    store = FeatureStore.open(str(url), mode="w")
    first = next(iter(splits.values()))
    for e, x in first.experts.items():
        store.ensure_expert(e, int(x.shape[-1]), PROVENANCE)
    encoders = {first.text_encoder: first.tokens, **{k: v[0] for k, v in first.extra_text.items()}}
    for enc, toks in encoders.items():
        store.ensure_text_encoder(enc, int(toks.shape[-1]), PROVENANCE)
    w = store.writer("test")
    manifest, captions = [], []
    for split, data in splits.items():
        for i, vid in enumerate(data.video_ids):
            for j, e in enumerate(data.expert_names):
                x = data.experts[e][i]
                if x.ndim == 1:
                    rows = x[None, :] if data.available[i, j] else np.zeros((0, x.shape[0]), np.float32)
                else:
                    rows = x[data.expert_masks[e][i]]
                w.write(vid, e, rows, np.arange(len(rows), dtype=np.float32))
            for enc in encoders:
                toks, tmask, cmask = ((data.tokens, data.token_mask, data.caption_mask) if enc == data.text_encoder
                                      else data.extra_text[enc])
                for c in np.flatnonzero(cmask[i]):
                    w.write_text(vid, int(c), enc, toks[i, c][tmask[i, c]])
            manifest.append({"video_id": vid, "path": f"videos/{vid}.mp4", "duration": 1.0, "fps": 25.0,
                             "width": 64, "height": 64, "has_audio": True, "split": split})
            for c in np.flatnonzero(data.caption_mask[i]):
                captions.append({"video_id": vid, "caption_idx": int(c), "caption": f"caption {c} of {vid}",
                                 "split": split})
    w.close()
    if data_dir is not None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(manifest), Path(data_dir) / "manifest.parquet")
        pq.write_table(pa.Table.from_pylist(captions), Path(data_dir) / "captions.parquet")
    return str(url)
