"""`videxperts store import`: features computed elsewhere become an expert of a store.

Accepted sources (the kind is told by the path):

* a folder of ``<video_id>.npy`` files, one per video (``[T, D]`` or ``[D]``);
* ``.npz``: one array per video (the key is the video id), or stacked: a ``features`` array
  ``[N, D]`` / ``[N, T, D]`` with the ids in an ``ids``/``video_ids`` array or ``--ids FILE``;
* ``.h5``/``.hdf5``: one dataset per video at the root, or stacked like npz (``--key``);
* ``.npy``: stacked ``[N, D]`` / ``[N, T, D]`` with ``--ids FILE`` (one id per line);
* ``.pkl``/``.pickle``: the collaborative-experts released features, ``{video_id: array}``,
  read with a restricted unpickler (:mod:`videxperts.storage.safe_pickle`).

Rows that are all NaN mean "this video lacks the expert" (the CE convention): such a video is
stored as done with zero rows, which training treats as a missing expert. Imported rows get
their index as timestamps (seconds unknown). The provenance records the source file and its
sha256, so imported features are never mixed with extracted ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

STACKED_KEYS = ("features", "feats", "data")
ID_KEYS = ("ids", "video_ids")
COMMIT_EVERY = 256


def _ids_file(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--ids {p}: file not found")
    ids = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    if len(set(ids)) != len(ids):
        raise UserError(f"--ids {p}: video ids repeat")
    return ids


def _stacked(arr: np.ndarray, ids: list[str] | None, source: str) -> Iterator[tuple[str, np.ndarray]]:
    if ids is None:
        raise UserError(f"{source}: a stacked array needs the video ids: --ids FILE (one per line) or an "
                        f"'ids' array next to it")
    if len(ids) != len(arr):
        raise UserError(f"{source}: {len(arr)} rows of features but {len(ids)} video ids")
    for vid, x in zip(ids, arr, strict=True):
        yield vid, np.asarray(x)


def _npz(path: Path, ids: list[str] | None, key: str | None) -> Iterator[tuple[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
        names = list(z.files)
        stacked = key or next((k for k in STACKED_KEYS if k in names), None)
        if stacked is not None:
            if stacked not in names:
                raise UserError(f"{path}: no array {stacked!r} (it has: {', '.join(names[:10])})")
            if ids is None:
                id_key = next((k for k in ID_KEYS if k in names), None)
                ids = [str(v) for v in z[id_key]] if id_key else None
            yield from _stacked(z[stacked], ids, str(path))
            return
        for name in names:
            yield name, z[name]


def _hdf5(path: Path, ids: list[str] | None, key: str | None) -> Iterator[tuple[str, np.ndarray]]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        names = list(f.keys())
        stacked = key or next((k for k in STACKED_KEYS if k in names), None)
        if stacked is not None:
            if stacked not in f:
                raise UserError(f"{path}: no dataset {stacked!r} (it has: {', '.join(names[:10])})")
            if ids is None:
                id_key = next((k for k in ID_KEYS if k in names), None)
                ids = [v.decode() if isinstance(v, bytes) else str(v) for v in f[id_key][()]] if id_key else None
            yield from _stacked(f[stacked][()], ids, str(path))
            return
        for name in names:
            if isinstance(f[name], h5py.Dataset):
                yield name, f[name][()]


def _pickle(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    from videxperts.storage.safe_pickle import load_feature_pickle

    data = load_feature_pickle(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a {{video_id: array}} mapping, got {type(data).__name__}")
    for vid, x in data.items():
        if isinstance(x, list):  # some releases keep one array per segment
            x = np.concatenate([np.atleast_2d(np.asarray(p)) for p in x]) if x else np.zeros((0, 0))
        yield str(vid), np.asarray(x)


def read_source(source: str | Path, ids_file: str | None = None, key: str | None = None
                ) -> Iterator[tuple[str, np.ndarray]]:
    """(video_id, array) pairs of any accepted source."""
    path = Path(source)
    ids = _ids_file(ids_file) if ids_file else None
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise UserError(f"{path}: no <video_id>.npy files in this folder")
        for f in files:
            yield f.stem, np.load(f, allow_pickle=False)
        return
    if not path.is_file():
        raise UserError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        yield from _npz(path, ids, key)
    elif suffix in (".h5", ".hdf5"):
        yield from _hdf5(path, ids, key)
    elif suffix == ".npy":
        yield from _stacked(np.load(path, allow_pickle=False, mmap_mode="r"), ids, str(path))
    elif suffix in (".pkl", ".pickle"):
        yield from _pickle(path)
    else:
        raise UserError(f"{path}: unknown kind of feature file (expected a folder of .npy, .npz, .h5/.hdf5, "
                        ".npy with --ids, or a .pkl/.pickle of the collaborative-experts release)")


def _rows(vid: str, x: np.ndarray, source: str) -> np.ndarray:
    """``[T, D]`` float rows; all-NaN rows dropped (the CE release's "missing")."""
    if x.dtype.kind not in "biuf":
        raise UserError(f"{source}: video {vid!r}: array of dtype {x.dtype} (expected numbers)")
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise UserError(f"{source}: video {vid!r}: expected [D] or [T, D], got shape {list(x.shape)}")
    return x[~np.isnan(x).all(axis=1)] if len(x) else x


def _sha256(path: Path) -> str:
    if path.is_dir():
        return "folder"
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_features(url: str, expert: str, source: str | Path, *, ids_file: str | None = None,
                    key: str | None = None, weights: str | None = None, dtype: str = "float32",
                    storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``source``'s arrays as expert ``expert`` of the store at ``url`` (created if absent)."""
    from videxperts.storage.store import FeatureStore

    path = Path(source)
    digest = _sha256(path) if path.exists() else ""
    pairs = read_source(path, ids_file, key)
    first = next(pairs, None)
    if first is None:
        raise UserError(f"{path}: holds no arrays")
    dim = int(np.asarray(first[1]).shape[-1])
    prov = {"backbone": f"imported from {path.name}", "weights": weights or f"imported:sha256:{digest}",
            "sampling": {}, "extractor_version": "imported", "dtype": dtype,
            "source": str(path.resolve()), "source_sha256": digest}
    store = FeatureStore.open(str(url), mode="a", storage_options=storage_options)
    store.ensure_expert(expert, dim, prov)
    counts = {"videos": 0, "rows": 0, "missing": 0}
    seen: set[str] = set()
    with store.writer(f"import-{expert}") as w:
        for vid, x in ((first[0], first[1]), *pairs):
            if vid in seen:
                raise UserError(f"{path}: video {vid!r} appears twice")
            seen.add(vid)
            rows = _rows(vid, np.asarray(x), str(path))
            if rows.shape[1] != dim:
                raise UserError(f"{path}: video {vid!r} has {rows.shape[1]}-dim features, the first had {dim}")
            w.write(vid, expert, rows, np.arange(len(rows), dtype=np.float32))
            counts["videos"] += 1
            counts["rows"] += len(rows)
            counts["missing"] += int(len(rows) == 0)
            if counts["videos"] % COMMIT_EVERY == 0:
                w.commit()
    return {"store": str(url), "expert": expert, "dim": dim, **counts, "weights": prov["weights"]}
