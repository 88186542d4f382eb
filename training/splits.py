"""Which videos form each split: the dataset manifest's ``split`` column, or the store's copy of it.

Every task reads its splits the same way; caption strings (for reports and sample outputs) come
from the dataset's ``captions.parquet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from videxperts.errors import UserError

SPLITS = ("train", "val", "test")


def read_splits(data_dir: str | Path | None = None, store: Any = None) -> dict[str, list[str]]:
    """Video ids per split: from ``DATA/manifest.parquet`` or, failing that, the store's attributes."""
    if data_dir is not None:
        path = Path(data_dir)
        manifest = path / "manifest.parquet" if path.is_dir() else path
        if not manifest.exists():
            raise UserError(f"no manifest.parquet in {data_dir}")
        import pyarrow.parquet as pq

        table = pq.read_table(manifest, columns=["video_id", "split"]).to_pydict()
        splits: dict[str, list[str]] = {s: [] for s in SPLITS}
        for vid, split in zip(table["video_id"], table["split"], strict=True):
            splits.setdefault(str(split), []).append(str(vid))
        return {k: sorted(v) for k, v in splits.items()}
    if store is not None:
        from videxperts.storage.dataset_meta import read_dataset_meta

        recorded = read_dataset_meta(str(store)) if isinstance(store, str | Path) else {}
        if any(recorded.get("splits", {}).values()):  # written by `extract` from the manifest
            return {str(k): sorted(map(str, v)) for k, v in recorded["splits"].items()}
        info = _store_info(store)
        splits = info.get("splits") if isinstance(info, dict) else None
        if isinstance(splits, dict):
            return {str(k): sorted(map(str, v)) for k, v in splits.items()}
    raise UserError(f"store {store} records no splits (it was extracted from a folder, or by an older version): "
                    "pass --data DIR (the dataset with manifest.parquet), or re-run `videxperts extract` on the "
                    "dataset's manifest (nothing is re-extracted)")


def _store_info(store: Any) -> dict:
    try:
        from videxperts.storage.store import FeatureStore

        st = FeatureStore.open(store, mode="r") if isinstance(store, str | Path) else store
        return st.info()
    except Exception:  # noqa: BLE001 - split info in the store is optional
        return {}


def read_caption_texts(data_dir: str | Path) -> dict[tuple[str, int], str]:
    """Caption strings keyed by (video_id, caption_idx), for reports and examples."""
    import pyarrow.parquet as pq

    path = Path(data_dir)
    file = path / "captions.parquet" if path.is_dir() else path
    if not file.exists():
        return {}
    t = pq.read_table(file, columns=["video_id", "caption_idx", "caption"]).to_pydict()
    return {(str(v), int(i)): str(c) for v, i, c in zip(t["video_id"], t["caption_idx"], t["caption"], strict=True)}
