"""Vectorised row gathering from row-chunked Zarr arrays.

Segments (start, count) are turned into one index array with numpy (no per-row Python),
the chunks they touch are coalesced into runs of neighbouring chunks, each run is read
with one slice (Zarr fetches its chunks concurrently and decodes each once), and rows are
picked out of the run with numpy fancy indexing. Memory is the rows asked for plus at most
one run of chunks at a time.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numcodecs.blosc
import numpy as np
import zarr

from videxperts.storage._fs import StoreRoot
from videxperts.storage._registry import StoreDamaged

# Merge two chunk runs when the gap between them is at most this many chunks: reading a
# few unneeded chunks is cheaper than another round trip.
GAP_CHUNKS = 2
# Upper bound on the rows read by one slice, so memory stays bounded on huge requests.
MAX_RUN_BYTES = 256 * 1024 * 1024


def segment_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row indices of the concatenated segments ``[s, s + c)`` (vectorised ``np.r_``)."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.asarray(starts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)


_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="videxperts-chunks")


class ChunkSource:
    """Direct whole-chunk reads for the arrays this store writes (row chunks, bytes + Blosc).

    Zarr's per-call and per-chunk Python overhead dominates scattered training reads, so
    for arrays with exactly the layout the store creates, chunk files are fetched in one
    batch (a thread pool on local disk, one concurrent ``cat`` on object stores) and
    decoded with Blosc directly. Anything else goes through Zarr.
    """

    def __init__(self, arr: zarr.Array, root: StoreRoot, path: str) -> None:
        self.arr = arr
        self.root = root
        self.path = path
        self.chunk = int(arr.chunks[0])
        self.rest = tuple(int(x) for x in arr.chunks[1:])
        self.dtype = np.dtype(arr.dtype).newbyteorder("<")
        self.chunk_bytes = self.chunk * int(np.prod(self.rest, dtype=np.int64)) * self.dtype.itemsize
        self._enc = arr.metadata.chunk_key_encoding

    @classmethod
    def for_array(cls, arr: zarr.Array, root: StoreRoot, path: str) -> ChunkSource | None:
        meta = arr.metadata
        codecs = [type(c).__name__ for c in getattr(meta, "codecs", ())]
        if (
            getattr(meta, "zarr_format", None) != 3
            or codecs != ["BytesCodec", "BloscCodec"]
            or str(getattr(meta.codecs[0], "endian", "little")).rsplit(".", 1)[-1].lower() not in ("little", "none")
            or type(meta.chunk_grid).__name__ != "RegularChunkGrid"
            or arr.ndim not in (1, 2)
            or tuple(arr.chunks[1:]) != tuple(arr.shape[1:])
            or meta.fill_value != 0
        ):
            return None
        return cls(arr, root, path)

    def _key(self, cid: int) -> str:
        idx = (cid,) + (0,) * (self.arr.ndim - 1)
        return f"{self.path}/{self._enc.encode_chunk_key(idx)}"

    def _decode(self, data: bytes | None) -> np.ndarray:
        if data is None:  # never written (all fill value)
            return np.zeros((self.chunk, *self.rest), dtype=self.dtype)
        if len(data) < 16:
            raise ValueError(f"chunk holds {len(data)} bytes, less than a Blosc header")
        nbytes, _, cbytes = np.frombuffer(data[4:16], dtype="<u4").tolist()  # Blosc 1 header
        if cbytes != len(data) or nbytes != self.chunk_bytes:  # blosc decodes a truncated buffer silently
            raise ValueError(f"chunk holds {len(data)} of {cbytes} compressed bytes, {nbytes} of "
                             f"{self.chunk_bytes} decoded")
        raw = numcodecs.blosc.decompress(data)
        return np.frombuffer(raw, dtype=self.dtype).reshape(self.chunk, *self.rest)

    def _read_local(self, key: str) -> np.ndarray:
        try:
            with open(os.path.join(self.root.root, key), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self._decode(None)
        return self._decode_named(key, data)

    def _decode_named(self, key: str, data: bytes | None) -> np.ndarray:
        """Decode, or raise ``ChunkDamaged`` naming the chunk file (never a bare codec error)."""
        try:
            return self._decode(data)
        except Exception as exc:  # noqa: BLE001 - blosc/numpy errors of a truncated or corrupt chunk
            raise ChunkDamaged(self.root.url, key, exc) from exc

    def read(self, cids: np.ndarray) -> np.ndarray:
        """Chunks ``cids`` decoded and stacked: ``[len(cids) * chunk, ...]``."""
        keys = [self._key(int(c)) for c in cids]
        if self.root.local:
            parts = list(_POOL.map(self._read_local, keys)) if len(keys) > 1 else [self._read_local(keys[0])]
        else:
            paths = [self.root.path(k) for k in keys]
            got = self.root.fs.cat(paths, on_error="return")
            parts = []
            for p in paths:
                v = got.get(p)
                if isinstance(v, FileNotFoundError):
                    v = None
                elif isinstance(v, BaseException):
                    raise v
                parts.append(self._decode_named(p[len(self.root.root) + 1:], v))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


class ChunkDamaged(StoreDamaged):
    """A chunk file that cannot be decoded (truncated, overwritten): names the store and the chunk."""

    def __init__(self, url: str, key: str, exc: BaseException) -> None:
        from videxperts.errors import first_line

        super().__init__(f"chunk {key} of the feature store {url} is damaged ({type(exc).__name__}: "
                         f"{first_line(exc, 200)}): run 'videxperts store verify {url}', then 'store repair'")
        self.key = key


def _is_range(idx: np.ndarray) -> bool:
    """True when ``idx`` is ``first, first + 1, ..., last`` (so a slice can replace fancy indexing)."""
    return len(idx) > 0 and int(idx[-1]) - int(idx[0]) == len(idx) - 1 and bool((np.diff(idx) == 1).all())


def gather_rows(
    arr: zarr.Array,
    rows: np.ndarray,
    out: np.ndarray | None = None,
    out_rows: np.ndarray | None = None,
    source: ChunkSource | None = None,
) -> np.ndarray:
    """Copy ``arr[rows[i]]`` into ``out[out_rows[i]]`` reading each needed chunk once.

    Without ``out``, returns a new array of ``len(rows)`` rows in ``arr``'s dtype.
    ``out`` may have another dtype (rows are cast on copy, e.g. float16 -> float32).
    With a ``source``, chunks are fetched in batches directly; otherwise runs of
    neighbouring chunks are read with one Zarr slice each.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if out is None:
        out = np.empty((len(rows), *arr.shape[1:]), dtype=arr.dtype)
    if out_rows is None:
        out_rows = np.arange(len(rows), dtype=np.int64)
    if len(rows) == 0:
        return out
    if len(rows) and (rows.min() < 0 or rows.max() >= arr.shape[0]):
        raise IndexError(f"rows out of range for an array of {arr.shape[0]} rows")
    chunk = arr.chunks[0]
    sorted_already = bool((np.diff(rows) >= 0).all())
    order = None if sorted_already else np.argsort(rows, kind="stable")
    srows = rows if order is None else rows[order]
    dest = out_rows if order is None else out_rows[order]
    cids = srows // chunk
    ucids = np.unique(cids)
    row_bytes = max(1, int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize)
    max_chunks = max(1, MAX_RUN_BYTES // (row_bytes * chunk))
    if source is not None:
        for i in range(0, len(ucids), max_chunks):
            batch = ucids[i : i + max_chunks]
            a, b = np.searchsorted(cids, [batch[0], batch[-1] + 1])
            block = source.read(batch)
            pos = np.searchsorted(batch, cids[a:b]) * chunk + (srows[a:b] - cids[a:b] * chunk)
            _put(out, dest[a:b], block, pos)
        return out
    # split unique chunk ids into runs of neighbouring chunks
    breaks = np.flatnonzero(np.diff(ucids) > GAP_CHUNKS + 1) + 1
    for run in np.split(ucids, breaks):
        for i in range(0, len(run), max_chunks):
            part = run[i : i + max_chunks]
            a, b = np.searchsorted(cids, [part[0], part[-1] + 1])
            lo, hi = int(srows[a]), int(srows[b - 1]) + 1  # zarr reads the whole chunks around these
            _put(out, dest[a:b], arr[lo:hi], srows[a:b] - lo)
    return out


def _put(out: np.ndarray, dst: np.ndarray, block: np.ndarray, src: np.ndarray) -> None:
    """``out[dst] = block[src]`` with slices instead of fancy indexing where both are ranges."""
    picked = block[int(src[0]) : int(src[-1]) + 1] if _is_range(src) else block[src]
    if _is_range(dst):
        out[int(dst[0]) : int(dst[-1]) + 1] = picked
    else:
        out[dst] = picked
