"""The region rows of a split, in RAM when they are small and memory-mapped when they are not.

COCO's training split is 113,287 images x 36 x 2048 float32 rows, about 33 GB: more than a
worker's RAM, and every DDP worker on a node would hold its own copy. Past
``data.in_memory_gb`` the rows are streamed once from the store, block by block, into one
``.npy`` file under ``WORK/cache/regions/`` and opened with ``mmap_mode="r"``: a batch reads
only its own items, and the workers of a node share the page cache. The file is named by a
digest of what it holds (store, expert entry, rows of each item, resampling), written under a
temporary name and renamed when complete, so it is reused by a resumed or repeated run and
never by a run on other features.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError
from videxperts.training.matching.config import MatchingConfig
from videxperts.training.matching.data import resample_rows

GIB = 2**30
BLOCK_BYTES = 128 * 2**20  # float32 rows read from the store per block while the cache is built
CACHE_FORMAT = 1  # part of the cache file's name: bump when the layout or resampling changes


def load_regions(reader: Any, cfg: MatchingConfig, item_ids: list[str], cache_dir: str | Path | None
                 ) -> tuple[list[str], np.ndarray]:
    """(items that have rows, their region rows [N, R, D] float32): an array, or a read-only
    memory map when the split is larger than ``data.in_memory_gb`` and ``cache_dir`` is given."""
    d = cfg.data
    counts = reader.row_counts(d.expert, list(item_ids))
    ids = [v for v, c in zip(item_ids, counts, strict=True) if c > 0]
    dim = int(reader.registry[("expert", d.expert)]["dim"])
    if cache_dir is None or len(ids) * d.regions * dim * 4 <= d.in_memory_gb * GIB:
        x, mask = reader.load_expert(d.expert, ids, mode="seq")
        return ids, resample_rows(x, mask, d.regions, d.resample)[0]
    digest = reader.digest(d.expert, ids)
    path = Path(cache_dir) / f"{d.expert}-{d.regions}-{d.resample}-v{CACHE_FORMAT}-{digest}.npy"
    shape = (len(ids), d.regions, dim)
    with _exclusive(path):  # the other workers of this node wait and then map the same file
        if not _complete(path, shape):
            _build(reader, cfg, ids, counts[counts > 0], path, shape)
    return ids, np.load(path, mmap_mode="r")


def _complete(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return arr.shape == shape and arr.dtype == np.float32


def _blocks(counts: np.ndarray, rows: int, dim: int) -> Iterator[slice]:
    """Consecutive item ranges whose stored rows stay under BLOCK_BYTES as float32."""
    per_item = (np.maximum(counts, rows) * dim * 4).astype(np.int64)
    start, total = 0, 0
    for i, b in enumerate(per_item):
        if i > start and total + b > BLOCK_BYTES:
            yield slice(start, i)
            start, total = i, 0
        total += int(b)
    if start < len(per_item):
        yield slice(start, len(per_item))


def _build(reader: Any, cfg: MatchingConfig, ids: list[str], counts: np.ndarray, path: Path,
           shape: tuple[int, ...]) -> None:
    """Write the ``.npy`` file with plain writes (a full disk is an ``OSError`` here, where stores
    into a memory map would be a SIGBUS); the space is reserved first, so it fails at once."""
    d = cfg.data
    partial = path.with_name(path.name + ".partial")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": shape}
    try:
        with open(partial, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            os.posix_fallocate(f.fileno(), 0, f.tell() + int(np.prod(shape)) * 4)
            for block in _blocks(counts, d.regions, shape[2]):
                x, mask = reader.load_expert(d.expert, ids[block], mode="seq")
                f.write(np.ascontiguousarray(resample_rows(x, mask, d.regions, d.resample)[0], "<f4").data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        need = np.prod(shape) * 4 / GIB
        why = "no space left" if exc.errno == errno.ENOSPC else exc.strerror or type(exc).__name__
        raise UserError(f"cannot cache the {d.expert!r} rows of {len(ids)} items in {path.parent} ({why}; "
                        f"needs {need:.2f} GiB): free space there, pass another --work-dir, or raise "
                        f"data.in_memory_gb to keep them in RAM") from None


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise UserError(f"cannot create the region cache folder {path.parent}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
