"""Benchmark the memory of a matching training split: held in RAM (the original's way) vs the
memory-mapped region cache (`training/matching/regions.py`), same rows.

A store of N synthetic images (36 x 2048 region rows, float16 as `import-precomp --dtype
float16` writes them) is made once. Each case runs in its own subprocess so its peak RSS is its
own, and then reads `--batches` training batches of 128 random images as an epoch would:
- `in-ram`: the original's way (VSRN/DCPG `np.load(train_ims.npy)`): the whole split as one
  float32 array in the process; here `load_regions` with `data.in_memory_gb` above the split;
- `mmap-build`: `data.in_memory_gb: 0`, the cache file built from the store (first run);
- `mmap-reuse`: the same with the cache already built (a resumed run, or a second DDP worker).

Reported: peak RSS (MB; also above a process that only imports), the resident memory at the
end split into anonymous and file-backed pages (a map's pages are the page cache's, shared by
the workers of a node and dropped under pressure), wall seconds to have the split, the split's float32 size, and whether
the batches are equal across the cases. Cases alternate over `--reps`; median [min-max].

Usage:
    .venv/bin/python bench/bench_matching_memory.py --images 2000 --reps 2
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import fmt, ratio, summarize  # noqa: E402

REGIONS, DIM, BATCH = 36, 2048, 128
PROVENANCE = {"backbone": "synthetic", "weights": "random-init:seed=0", "sampling": {},
              "extractor_version": "1", "dtype": "float16"}


def _make_store(path: Path, images: int) -> list[str]:
    import numpy as np

    from videxperts.storage.store import FeatureStore

    fs = FeatureStore.open(str(path), mode="w")
    fs.ensure_expert("regions", DIM, PROVENANCE)
    w = fs.writer("bench")
    rng = np.random.default_rng(0)
    ids = [f"img{i:06d}" for i in range(images)]
    t = np.arange(REGIONS, dtype=np.float32)
    for item in ids:
        w.write(item, "regions", rng.standard_normal((REGIONS, DIM), dtype=np.float32), t)
    w.close()
    return ids


def _status_mb() -> dict[str, float]:
    """Resident memory now, split into anonymous (the process's own) and file-backed pages
    (a memory map's pages: shared through the page cache, dropped by the kernel under pressure)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) / 1024
    return out


def _case(store: str, cache: str, gb: float, batches: int) -> dict:
    """In a fresh process: have the split, read the batches; report RSS and a checksum."""
    import numpy as np

    from videxperts.storage.reader import StoreReader
    from videxperts.training.matching.config import parse_config
    from videxperts.training.matching.regions import load_regions

    cfg = parse_config({"task": "matching", "name": "bench", "model": {"img_dim": DIM},
                        "data": {"regions": REGIONS, "in_memory_gb": max(gb, 0.0)}}, "<bench>")
    reader = StoreReader(store)
    ids = sorted(reader.video_ids)
    if gb < 0:  # the process and its imports alone: the floor every case starts from
        return {"ready_s": 0.0, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "checksum": None,
                **_status_mb()}
    t0 = time.perf_counter()
    _, rows = load_regions(reader, cfg, ids, cache)
    ready = time.perf_counter() - t0
    order = np.random.default_rng(0).permutation(len(ids))
    total = 0.0
    for b in range(batches):
        total += float(np.asarray(rows[np.sort(order[b * BATCH:(b + 1) * BATCH])], np.float64).sum())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ready_s": ready, "peak_mb": peak_mb, "checksum": total, **_status_mb()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--_case", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._case:
        gb = -1.0 if a._case[2] == "skip" else float(a._case[2])
        print(json.dumps(_case(a._case[0], a._case[1], gb, int(a._case[3]))))
        return
    tmp = Path(tempfile.mkdtemp(prefix="vx-bench-mem-"))
    try:
        store = tmp / "store.zarr"
        _make_store(store, a.images)
        split_gb = a.images * REGIONS * DIM * 4 / 2**30
        runs: dict[str, list[dict]] = {"imports only": [], "in-ram": [], "mmap-build": [], "mmap-reuse": []}
        for rep in range(a.reps):
            cache = tmp / f"cache{rep}"
            for name, gb in (("imports only", "skip"), ("in-ram", 1e6), ("mmap-build", 0.0), ("mmap-reuse", 0.0)):
                out = subprocess.run([sys.executable, __file__, "--_case", str(store), str(cache), str(gb),  # noqa: S603
                                      str(a.batches)], capture_output=True, text=True, check=True)
                runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
        same = len({r["checksum"] for name, rs in runs.items() if name != "imports only" for r in rs}) == 1
        table = {name: {"peak_mb": summarize([r["peak_mb"] for r in rs]),
                        "ready_s": summarize([r["ready_s"] for r in rs])} for name, rs in runs.items()}
        floor = [r["peak_mb"] for r in runs["imports only"]]
        above = {name: [r["peak_mb"] - f for r, f in zip(rs, floor, strict=True)] for name, rs in runs.items()}
        table = {name: {**t, "above_imports_mb": summarize(above[name]),
                        "anon_mb": summarize([r["RssAnon"] for r in runs[name]]),
                        "file_mb": summarize([r["RssFile"] for r in runs[name]])} for name, t in table.items()}
        rss_ratio = ratio(above["in-ram"], [max(x, 1.0) for x in above["mmap-reuse"]])
        if a.json:
            print(json.dumps({"images": a.images, "split_gb": split_gb, "same_batches": same, "cases": table,
                              "rss_in_ram_over_mmap": rss_ratio}, indent=1))
            return
        print(f"{a.images} images x {REGIONS} x {DIM}: {split_gb:.2f} GiB as float32; {a.batches} batches of "
              f"{BATCH}; same batches in every case: {same}")
        print("| case | peak RSS MB | above the imports MB | at the end: anonymous MB | file-backed MB | "
              "split ready s |\n|---|---|---|---|---|---|")
        for name, t in table.items():
            print(f"| {name} | {fmt(t['peak_mb'], '.0f')} | {fmt(t['above_imports_mb'], '.0f')} | "
                  f"{fmt(t['anon_mb'], '.0f')} | {fmt(t['file_mb'], '.0f')} | {fmt(t['ready_s'], '.2f')} |")
        print(f"memory above the imports, in RAM / memory-mapped (reuse): {fmt(rss_ratio, '.1f')}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
