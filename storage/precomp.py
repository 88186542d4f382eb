"""Import SCAN "precomp" region features and captions straight into a feature store.

SCAN's ``data/{f30k,coco}_precomp/`` holds ``{split}_ims.npy`` (N, 36, 2048) float32 bottom-up
-attention features and ``{split}_caps.txt`` with 5 lines per image in image order (image i
owns lines 5i .. 5i+4; a file with one line per image means 1 caption each, as SCAN's loader
allows). Each image becomes one store item ``{dataset}_{split}_{i:06d}`` whose expert
(``regions`` by default) holds its 36 rows; captions go to ``DIR/captions.parquet``
(caption_idx 0..4) and a row per image to ``DIR/manifest.parquet``, so training reads them like
any extracted store.

Bounded memory: the array is opened with ``np.load(mmap_mode="r")`` (never ``allow_pickle``)
and copied ``chunk`` images at a time; each chunk is committed before the next is read (COCO
train, ~33 GB of float32, imports in a few hundred MB). ``dtype="float16"`` halves the store
and is recorded in the expert's provenance. Caption files are read as UTF-8 text, so the
Python-3 ``b'...'`` artefact of the original loader (``open(..., 'rb')``) never enters a
caption. The vocabulary pickles are not read at all: the vocabulary is rebuilt from the
captions with the specified rule (training's job).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

DATASETS = ("f30k", "coco")
DEFAULT_SPLITS = {"f30k": ("train", "dev", "test"), "coco": ("train", "dev", "testall")}
KNOWN_SPLITS = ("train", "dev", "test", "testall")
# dataset-dir split of each SCAN split (COCO "test" is the first 1,000 images of "testall")
SPLIT_MAP = {"train": "train", "dev": "val", "test": "test", "testall": "test"}
DTYPES = ("float32", "float16")
EXTRACTOR_VERSION = "scan-precomp-1"


class PrecompError(UserError):
    """A SCAN precomp file that is missing or malformed; the message names it."""


def item_id(dataset: str, split: str, index: int) -> str:
    return f"{dataset}_{split}_{index:06d}"


def open_features(path: Path) -> np.ndarray:
    """The (N, R, D) float array of ``path``, memory-mapped (pickled object arrays are refused)."""
    if not path.is_file():
        raise PrecompError(f"{path}: no such file (expected SCAN's {{split}}_ims.npy)")
    try:
        ims = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: refused
        raise PrecompError(f"{path}: not a plain numeric .npy array ({exc})") from exc
    except OSError as exc:
        raise PrecompError(f"{path}: cannot be read as .npy ({exc})") from exc
    if not isinstance(ims, np.ndarray) or ims.ndim != 3 or ims.dtype.kind != "f":
        raise PrecompError(f"{path}: expected a float array (N, regions, dim), got "
                           f"{getattr(ims, 'dtype', type(ims).__name__)} {list(getattr(ims, 'shape', []))}")
    return ims


def _read_chunk(path: Path, start: int, count: int) -> np.ndarray:
    """Images ``start .. start + count`` as float32, through a mapping that is dropped at once.

    One mapping for the whole import would keep every page read so far resident (counted in
    the process's RSS until the kernel reclaims it); a fresh mapping per chunk does not.
    """
    ims = np.load(path, mmap_mode="r", allow_pickle=False)
    block = np.array(ims[start:start + count], dtype=np.float32)
    del ims  # the last reference: the mapping is unmapped here
    return block


def read_captions(path: Path, n_images: int) -> tuple[list[str], int]:
    """Caption lines (UTF-8 text mode, newline stripped) and captions per image."""
    if not path.is_file():
        raise PrecompError(f"{path}: no such file (expected SCAN's {{split}}_caps.txt)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise PrecompError(f"{path}: not UTF-8 text ({exc})") from exc
    if n_images == 0 or len(lines) % n_images:
        raise PrecompError(f"{path}: {len(lines)} caption lines for {n_images} images; expected a whole "
                           f"number per image (5 in SCAN's files), in image order")
    for i, line in enumerate(lines):
        if not line.strip():
            raise PrecompError(f"{path}: line {i + 1} is an empty caption")
    return lines, len(lines) // n_images


def provenance(dataset: str, regions: int, dtype: str) -> dict[str, Any]:
    return {"backbone": "bottom-up-attention Faster R-CNN ResNet-101 (Visual Genome), SCAN precomp",
            "weights": f"scan-precomp:{dataset}", "extractor_version": EXTRACTOR_VERSION, "dtype": dtype,
            "regions": regions, "source": "SCAN data/{dataset}_precomp/{split}_ims.npy".replace("{dataset}", dataset)}


def import_precomp(
    src: str | os.PathLike[str], store_url: str, data_dir: str | os.PathLike[str], *, dataset: str,
    splits: Iterable[str] | None = None, expert: str = "regions", dtype: str = "float32", chunk: int = 256,
    storage_options: dict[str, Any] | None = None, progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Import ``splits`` of the precomp folder ``src`` into ``store_url`` and ``data_dir``; returns a summary."""
    from videxperts.storage.manifest import MANIFEST_NAME, read_manifest, write_captions, write_manifest
    from videxperts.storage.manifest import read_captions as read_caption_table
    from videxperts.storage.store import FeatureStore

    if dataset not in DATASETS:
        raise UserError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if chunk < 1:
        raise UserError(f"--chunk must be >= 1, got {chunk}")
    splits = list(splits or DEFAULT_SPLITS[dataset])
    for s in splits:
        if s not in KNOWN_SPLITS:
            raise UserError(f"unknown precomp split {s!r}; expected some of {', '.join(KNOWN_SPLITS)}")
    if "test" in splits and "testall" in splits:
        raise UserError("test and testall hold the same first 1,000 images: import one of them")
    src = Path(src)
    # check every file before writing anything
    opened = {}
    for s in splits:
        ims = open_features(src / f"{s}_ims.npy")
        lines, cpi = read_captions(src / f"{s}_caps.txt", ims.shape[0])
        opened[s] = (ims.shape, lines, cpi)
        del ims
    shapes = {shape[1:] for shape, _, _ in opened.values()}
    if len(shapes) != 1:
        raise PrecompError(f"{src}: splits disagree on (regions, dim): {sorted(shapes)}")
    regions, dim = shapes.pop()

    store = FeatureStore.open(store_url, mode="a", storage_options=storage_options)
    store.ensure_expert(expert, int(dim), provenance(dataset, int(regions), dtype))
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest, captions, summary = [], [], {"store": store_url, "data": str(data_dir), "expert": expert,
                                           "dtype": dtype, "splits": {}}
    with store.writer(f"precomp-{dataset}") as writer:
        for s, (shape, lines, cpi) in opened.items():
            n = shape[0]
            zeros = np.zeros(regions, np.float64)
            for start in range(0, n, chunk):
                block = _read_chunk(src / f"{s}_ims.npy", start, chunk)
                for j in range(block.shape[0]):
                    writer.write(item_id(dataset, s, start + j), expert, block[j], zeros)
                writer.commit()
                if progress:
                    progress(s, min(start + chunk, n), n)
            split = SPLIT_MAP[s]
            for i in range(n):
                vid = item_id(dataset, s, i)
                manifest.append({"video_id": vid, "path": f"precomp/{s}_ims.npy", "duration": 0.04, "fps": 25.0,
                                 "width": 1, "height": 1, "has_audio": False, "split": split})
                captions += [{"video_id": vid, "caption_idx": k, "caption": lines[i * cpi + k].strip(),
                              "split": split} for k in range(cpi)]
            summary["splits"][s] = {"images": n, "captions": len(lines), "captions_per_image": cpi,
                                    "dataset_split": split}
    # merge with what an earlier import of other splits wrote into the same dataset dir
    if (data_dir / MANIFEST_NAME).is_file():
        new_ids = {r["video_id"] for r in manifest}
        old = [r for r in read_manifest(data_dir).to_pylist() if r["video_id"] not in new_ids]
        for r in old:  # read_manifest resolves paths; the file keeps them relative to the dir
            r["path"] = Path(os.path.relpath(r["path"], data_dir.resolve())).as_posix()
        manifest = old + manifest
        captions = [r for r in read_caption_table(data_dir).to_pylist() if r["video_id"] not in new_ids] + captions
    write_manifest(data_dir, manifest)
    write_captions(data_dir, captions)
    summary["regions"], summary["dim"] = int(regions), int(dim)
    return summary
