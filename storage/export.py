"""`videxperts store export`: a store's expert features in formats other tools read.

* ``npz``: one ``features.npz``: ``video_ids`` [N], and per expert ``<e>/features`` [R, D],
  ``<e>/timestamps`` [R], ``<e>/offsets`` [N+1] (video i owns rows ``offsets[i]:offsets[i+1]``,
  none when the expert has no rows for it). Read with ``np.load(..., allow_pickle=False)``.
* ``parquet``: ``<expert>.parquet`` per expert, one row per feature row: ``video_id``, ``row``,
  ``t`` (seconds), ``feature`` (fixed-size list of float32).
* ``webdataset``: tar shards ``shard-000000.tar`` ... in the WebDataset convention: the files of
  one sample share a key (the video id, dots replaced) and differ by extension:
  ``<key>.json`` (video id, experts, side data such as OCR/ASR words), ``<key>.<expert>.npy``
  and ``<key>.<expert>_ts.npy``. Written with the standard library's tarfile.

Videos are read a batch at a time, so a store larger than memory exports too.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

FORMATS = ("npz", "parquet", "webdataset")
BATCH = 64


def _rows(view: Any, expert: str, ids: list[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(video_id, features [T, D], timestamps [T]) of every video with rows, a batch at a time."""
    for i in range(0, len(ids), BATCH):
        batch = ids[i : i + BATCH]
        feats, mask = view.features(expert, batch)
        ts = view.timestamps(expert, batch)
        for j, vid in enumerate(batch):
            m = mask[j].astype(bool)
            yield vid, np.asarray(feats[j][m], np.float32), np.asarray(ts[j][m], np.float32)


def _experts(view: Any, experts: Sequence[str] | None) -> list[str]:
    names = list(experts) if experts else list(view.experts)
    unknown = [e for e in names if e not in view.experts]
    if unknown:
        raise UserError(f"--experts: {', '.join(unknown)} not in {view.url} (it has: {', '.join(view.experts)})")
    return names


def export_npz(view: Any, out: Path, experts: Sequence[str] | None = None) -> dict[str, Any]:
    ids = view.video_ids
    arrays: dict[str, np.ndarray] = {"video_ids": np.asarray(ids, dtype=str)}
    counts = {}
    for e in _experts(view, experts):
        index = {vid: (f, t) for vid, f, t in _rows(view, e, ids)}
        dim = int(view.info()["experts"][e]["dim"])
        lengths = [len(index[v][0]) if v in index else 0 for v in ids]
        arrays[f"{e}/offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays[f"{e}/features"] = (np.concatenate([index[v][0] for v in ids if v in index])
                                   if index else np.zeros((0, dim), np.float32))
        arrays[f"{e}/timestamps"] = (np.concatenate([index[v][1] for v in ids if v in index])
                                     if index else np.zeros((0,), np.float32))
        counts[e] = int(arrays[f"{e}/offsets"][-1])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "features.npz"
    np.savez(path, **arrays)
    return {"files": [str(path)], "rows": counts, "videos": len(ids)}


def export_parquet(view: Any, out: Path, experts: Sequence[str] | None = None) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    files, counts = [], {}
    for e in _experts(view, experts):
        dim = int(view.info()["experts"][e]["dim"])
        schema = pa.schema([("video_id", pa.string()), ("row", pa.int32()), ("t", pa.float32()),
                            ("feature", pa.list_(pa.float32(), dim))])
        path = out / f"{e}.parquet"
        n = 0
        with pq.ParquetWriter(path, schema, compression="zstd") as w:
            for vid, f, t in _rows(view, e, view.video_ids):
                if not len(f):
                    continue
                flat = pa.FixedSizeListArray.from_arrays(pa.array(f.reshape(-1), pa.float32()), dim)
                w.write_table(pa.table([pa.array([vid] * len(f)), pa.array(np.arange(len(f), dtype=np.int32)),
                                        pa.array(t), flat], schema=schema))
                n += len(f)
        files.append(str(path))
        counts[e] = n
    return {"files": files, "rows": counts, "videos": len(view.video_ids)}


def wds_key(video_id: str) -> str:
    """A WebDataset sample key: no dots (the extension starts at the first dot) and no slashes."""
    return re.sub(r"[./\\\s]", "_", video_id)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=False)
    return buf.getvalue()


def export_webdataset(view: Any, out: Path, experts: Sequence[str] | None = None,
                      shard_size: int = 1000) -> dict[str, Any]:
    names = _experts(view, experts)
    ids = view.video_ids
    keys = [wds_key(v) for v in ids]
    if len(set(keys)) != len(keys):
        raise UserError("two video ids map to the same WebDataset key (ids differing only in '.', '/' or spaces)")
    out.mkdir(parents=True, exist_ok=True)
    files, counts = [], dict.fromkeys(names, 0)
    for s, start in enumerate(range(0, len(ids), shard_size)):
        batch = ids[start : start + shard_size]
        per = {e: {vid: (f, t) for vid, f, t in _rows(view, e, batch)} for e in names}
        path = out / f"shard-{s:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for vid in batch:
                key = wds_key(vid)
                meta: dict[str, Any] = {"video_id": vid, "experts": [e for e in names if len(per[e][vid][0])]}
                side = {e: view.side(e, vid) for e in meta["experts"]}
                meta["side"] = {e: s for e, s in side.items() if s}
                _add(tar, f"{key}.json", json.dumps(meta).encode())
                for e in meta["experts"]:
                    f, t = per[e][vid]
                    _add(tar, f"{key}.{e}.npy", _npy(f))
                    _add(tar, f"{key}.{e}_ts.npy", _npy(t))
                    counts[e] += len(f)
        files.append(str(path))
    return {"files": files, "rows": counts, "videos": len(ids)}


def export_store(url: str, out: str | Path, fmt: str, experts: Sequence[str] | None = None,
                 shard_size: int = 1000, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the store's features under ``out`` in ``fmt``; returns {format, files, rows, videos}."""
    from videxperts.storage.view import StoreView

    if fmt not in FORMATS:
        raise UserError(f"--format: unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    view = StoreView.open(url, storage_options)
    out = Path(out)
    if fmt == "npz":
        res = export_npz(view, out, experts)
    elif fmt == "parquet":
        res = export_parquet(view, out, experts)
    else:
        res = export_webdataset(view, out, experts, shard_size)
    return {"format": fmt, **res}
