"""One worker's writer into the feature store: a private shard plus commit records.

Rows are appended to arrays only this writer touches; the parquet commit record written
afterwards is what makes them visible (see ``videxperts.storage.store`` and docs/STORE.md).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import zarr

from videxperts.storage import _records as rec
from videxperts.storage._registry import StoreError, io_error
from videxperts.storage.store import chunk_rows

if TYPE_CHECKING:
    from videxperts.storage.store import FeatureStore


class StoreWriter:
    """Buffers one worker's results and appends them to its private shard on ``commit``.

    Nothing written here is visible until ``commit`` has flushed the arrays and then
    written the commit record; a crash in between leaves only invisible rows behind.
    """

    def __init__(self, store: FeatureStore, writer_id: str) -> None:
        self.store = store
        self.writer_id = writer_id
        self.token = f"{writer_id}.{uuid.uuid4().hex[:12]}"
        self.shard = f"shards/{self.token}"
        self._seq = 0
        self._last_ts = 0
        self._entries: list[dict[str, Any]] = []
        self._bufs: dict[tuple[str, str], list[np.ndarray]] = {}
        self._tbufs: dict[str, list[np.ndarray]] = {}
        self._buffered: Counter[tuple[str, str]] = Counter()
        self._rows: dict[tuple[str, str], int] = {}
        self._arrays: dict[str, zarr.Array] = {}
        self._registry: dict[tuple[str, str], dict[str, Any]] = {}
        self._side: list[tuple[str, str, dict[str, Any]]] = []  # OCR/ASR words, face boxes (storage/side.py)
        self._closed = False

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _entry(self, kind: str, name: str) -> dict[str, Any]:
        key = (kind, name)
        if key not in self._registry or self._registry[key].get("dropped"):
            self._registry = self.store._registry()
        e = self._registry.get(key)
        if e is None or e.get("dropped"):
            what = "expert" if kind == "expert" else "text encoder"
            call = "ensure_expert" if kind == "expert" else "ensure_text_encoder"
            raise StoreError(f"{what} {name!r} is not registered in {self.store.url}: call store.{call} first")
        return e

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"writer {self.token} is closed")

    def _add(self, kind: str, name: str, video_id: str, caption_idx: int, state: str, rows: np.ndarray | None,
             error_class: str | None = None, message: str | None = None, attempts: int = 0) -> None:
        e = self._entry(kind, name)
        key = (kind, name)
        start, count = 0, 0
        if rows is not None and len(rows):
            start = self._rows.get(key, 0) + self._buffered[key]
            count = len(rows)
            self._bufs.setdefault(key, []).append(rows)
            self._buffered[key] += count
        self._entries.append(
            {"kind": kind, "name": name, "video_id": str(video_id), "caption_idx": int(caption_idx),
             "state": state, "error_class": error_class, "message": message, "attempts": int(attempts),
             "epoch": e["epoch"], "extractor_version": str(e["provenance"].get("extractor_version")),
             "source": self.shard if count else None, "row_start": start, "row_count": count}
        )

    def _features(self, kind: str, name: str, video_id: str, x: np.ndarray) -> np.ndarray:
        e = self._entry(kind, name)
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != e["dim"]:
            raise StoreError(f"{kind} {name!r}, video {video_id!r}: expected [T, {e['dim']}], got {list(x.shape)}")
        if not np.isfinite(x).all():
            raise StoreError(f"{kind} {name!r}, video {video_id!r}: features contain NaN or inf")
        with np.errstate(over="ignore"):
            y = x.astype(e["dtype"], copy=False)
        if e["dtype"] == "float16" and not np.isfinite(y).all():
            raise StoreError(
                f"{kind} {name!r}, video {video_id!r}: values exceed float16 range; use provenance dtype float32"
            )
        return y

    def write(self, video_id: str, expert: str, features: np.ndarray, timestamps: np.ndarray,
              side: dict[str, Any] | None = None) -> None:
        """Buffer one video's features ``[T, D]`` and timestamps ``[T]`` (T may be 0).

        ``side``: small JSON-able data the expert produced with them (words and their times,
        face boxes), readable with ``StoreView.side`` / ``words`` / ``boxes``.
        """
        self._check_open()
        feats = self._features("expert", expert, video_id, features)
        ts = np.asarray(timestamps, dtype="float32").reshape(-1)
        if len(ts) != len(feats):
            raise StoreError(f"expert {expert!r}, video {video_id!r}: {len(feats)} rows but {len(ts)} timestamps")
        if not np.isfinite(ts).all():
            raise StoreError(f"expert {expert!r}, video {video_id!r}: timestamps contain NaN or inf")
        self._add("expert", expert, video_id, -1, "done", feats)
        if len(ts):
            self._tbufs.setdefault(expert, []).append(ts)
        if side:
            self._side.append((str(video_id), expert, dict(side)))

    def write_text(self, video_id: str, caption_idx: int, encoder: str, tokens: np.ndarray) -> None:
        """Buffer one caption's per-token features ``[L, D]``."""
        self._check_open()
        toks = self._features("text", encoder, video_id, tokens)
        self._add("text", encoder, video_id, caption_idx, "done", toks)

    def fail(self, video_id: str, expert: str, error_class: str, message: str, attempts: int) -> None:
        """Record that extracting ``expert`` on ``video_id`` failed (retried by later runs)."""
        self._check_open()
        self._add("expert", expert, video_id, -1, "failed", None, str(error_class), str(message), attempts)

    def fail_text(self, video_id: str, caption_idx: int, encoder: str, error_class: str, message: str) -> None:
        """Record that caption ``caption_idx`` of ``video_id`` is not encoded (e.g. its rows were lost)."""
        self._check_open()
        self._add("text", encoder, video_id, caption_idx, "failed", None, str(error_class), str(message), 0)

    def quarantine(self, video_id: str, expert: str, reason: str) -> None:
        """Record that ``video_id`` must not be retried for ``expert`` (e.g. it crashes the decoder)."""
        self._check_open()
        self._add("expert", expert, video_id, -1, "quarantined", None, "Quarantined", str(reason), 0)

    @property
    def buffered(self) -> int:
        """Entries waiting for the next commit."""
        return len(self._entries)

    def _shard_array(self, path: str, shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...]) -> zarr.Array:
        if path not in self._arrays:
            self._arrays[path] = self.store._create_array(path, shape, dtype, chunks)
        return self._arrays[path]

    def commit(self) -> int:
        """Flush buffered rows into the shard, then write the commit record; returns entries committed.

        An I/O failure (no space, read-only filesystem, refused PUT) raises ``StoreIOError``
        (one line naming the store and the OS error). Nothing of this commit is then visible:
        the record is written last and atomically. The buffer is kept, so a later ``commit``
        retries the same entries once the cause is gone.
        """
        self._check_open()
        try:
            return self._commit()
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - OSError and whatever zarr/fsspec wrap it in
            raise io_error(self.store.url, f"committing writer {self.token}", exc) from exc

    def _commit(self) -> int:
        if not self._entries:
            return 0
        for key, parts in self._bufs.items():
            kind, name = key
            e = self._registry[key]
            data = np.concatenate(parts) if len(parts) > 1 else parts[0]
            n0 = self._rows.get(key, 0)
            crows = chunk_rows(e["dim"], np.dtype(e["dtype"]).itemsize)
            fdir = "features" if kind == "expert" else "text"
            arr = self._shard_array(f"{self.shard}/{fdir}/{name}", (0, e["dim"]), e["dtype"], (crows, e["dim"]))
            arr.resize((n0 + len(data), e["dim"]))
            arr[n0 : n0 + len(data)] = data
            if kind == "expert":
                ts = np.concatenate(self._tbufs[name])
                tarr = self._shard_array(f"{self.shard}/timestamps/{name}", (0,), "float32", (max(crows, 4096),))
                tarr.resize((n0 + len(ts),))
                tarr[n0 : n0 + len(ts)] = ts
        ts_ns = max(time.time_ns(), self._last_ts + 1)
        rows = [
            e | {"commit_ts": ts_ns, "writer_id": self.token, "seq": self._seq, "pos": i}
            for i, e in enumerate(self._entries)
        ]
        table = pa.Table.from_pylist(rows, schema=rec.SCHEMA)
        n = table.num_rows
        if self._side:  # before the commit point: a side file without its record is never read
            from videxperts.storage import side

            self.store._root.put_atomic(side.side_path(self.token, self._seq), side.encode(self._side))
        # the commit point: one atomic file naming exactly the rows flushed above
        self.store._root.put_atomic(f"commits/{self.token}-{self._seq:08d}.parquet", rec.to_parquet_bytes(table))
        for key in self._bufs:
            self._rows[key] = self._rows.get(key, 0) + self._buffered[key]
        self._bufs.clear()
        self._tbufs.clear()
        self._buffered.clear()
        self._entries.clear()
        self._side.clear()
        self._seq += 1
        self._last_ts = ts_ns
        return n

    def close(self) -> None:
        """Commit what is buffered and seal the shard (compaction may then delete it).

        Raises ``StoreIOError`` when that commit or the seal cannot be written.
        """
        if self._closed:
            return
        self.commit()
        if self._seq:
            try:
                self.store._root.put_atomic(f"{self.shard}/sealed.json", json.dumps({"commits": self._seq}).encode())
            except Exception as exc:  # noqa: BLE001
                raise io_error(self.store.url, f"sealing writer {self.token}", exc) from exc
        self._closed = True

