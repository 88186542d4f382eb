"""Write a tiny image-caption dataset into a real feature store (`regions`: R x D rows per image)
and its manifest/captions parquet files, as `videxperts data` and `extract` would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.training.matching.tiny import toy_items
from videxperts.storage.store import FeatureStore
from videxperts.training.matching.config import MatchingConfig

PROVENANCE = {"backbone": "synthetic", "weights": "random-init:seed=0", "sampling": {},
              "extractor_version": "1", "dtype": "float32"}


def write_match_store(cfg: MatchingConfig, sizes: dict[str, int], root: Path, expert: str = "regions",
                      rows: int | None = None) -> tuple[str, str]:
    """(store url, data dir); ``rows``: feature rows per item (default: the config's regions)."""
    store = FeatureStore.open(str(root / "store.zarr"), mode="w")
    store.ensure_expert(expert, cfg.model.img_dim, PROVENANCE)
    w = store.writer("test")
    manifest, captions = [], []
    for k, (split, n) in enumerate(sizes.items()):
        ids, regions, caps = toy_items(n, cfg, seed=k)
        for item, x in zip(ids, regions, strict=True):
            if rows is not None:  # a "video": the item's rows repeated/stretched to `rows` frames
                x = x[np.arange(rows) * len(x) // rows]
            w.write(item, expert, x, np.arange(len(x), dtype=np.float32))
            manifest.append({"video_id": item, "path": f"images/{item}.jpg", "duration": 0.0, "fps": 0.0,
                             "width": 64, "height": 64, "has_audio": False, "split": split})
            captions += [{"video_id": item, "caption_idx": c, "caption": t, "split": split}
                         for c, t in enumerate(caps[item])]
    w.close()
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(manifest), data / "manifest.parquet")
    pq.write_table(pa.Table.from_pylist(captions), data / "captions.parquet")
    return str(root / "store.zarr"), str(data)
