"""The dataset a store was extracted from: splits, manifest hash and extraction runs (``STORE/dataset.json``).

``extract`` records them so that ``train`` and ``evaluate`` need no ``--data`` (the splits travel
with the features) and so that a training run can name the manifest and the extraction runs
behind its features. Extractions into one store merge: a video keeps the split of the latest
manifest that lists it; every extraction run id is kept, oldest first.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from videxperts.storage._fs import StoreRoot, absolute_store_url

DATASET_FILE = "dataset.json"
SPLIT_NAMES = ("train", "val", "test")


def file_sha256(path: str | Path) -> str:
    """``sha256:<hex>`` of a file (the manifest's identity in runs and the store)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def read_dataset_meta(store_url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recorded dataset document, or ``{}`` for a store without one (older stores, folder inputs)."""
    root = StoreRoot(str(store_url), dict(storage_options or {}), read_only=True)
    try:
        if not root.exists(DATASET_FILE):
            return {}
        doc = json.loads(root.read_bytes(DATASET_FILE))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def record_dataset(store_url: str, video_splits: dict[str, str | None], manifest: str | Path | None,
                   extraction_run: str | None = None, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge one extraction's inputs into ``dataset.json`` (atomic write); returns the new document.

    ``video_splits`` maps video id -> split (None for inputs without one, e.g. a folder).
    """
    old = read_dataset_meta(store_url, storage_options)
    by_video: dict[str, str] = {}
    for split, ids in (old.get("splits") or {}).items():
        by_video.update(dict.fromkeys(map(str, ids), str(split)))
    by_video.update({str(v): str(s) for v, s in video_splits.items() if s})
    splits: dict[str, list[str]] = {s: [] for s in SPLIT_NAMES}
    for vid, split in by_video.items():
        splits.setdefault(split, []).append(vid)
    runs = list(old.get("extraction_runs") or [])
    if extraction_run and extraction_run not in runs:
        runs.append(extraction_run)
    doc: dict[str, Any] = {
        "splits": {k: sorted(v) for k, v in splits.items()},
        "manifest": old.get("manifest"),
        "manifest_sha256": old.get("manifest_sha256"),
        "extraction_runs": runs,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if manifest is not None and Path(manifest).is_file():
        doc["manifest"] = str(Path(manifest).resolve())
        doc["manifest_sha256"] = file_sha256(manifest)
    root = StoreRoot(absolute_store_url(store_url), dict(storage_options or {}))
    root.put_atomic(DATASET_FILE, json.dumps(doc, indent=1).encode())
    return doc
