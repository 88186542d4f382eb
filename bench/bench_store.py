"""Feature-store throughput vs a numpy.save-per-video baseline, and the resume-scan time.

Same data for both: N videos x a few experts with variable row counts, float16 at rest.
Write: the store (one writer, a commit every 50 videos, timestamps included) vs one
``np.save`` file per (video, expert). Read: training-sized requests (all N videos, each
expert, mode mean and seq) through ``StoreReader`` on the freshly written store and after
``compact``, vs ``np.load`` of every file plus the same mean/padding in numpy.
Resume scan: ``FeatureStore.open`` + ``pending`` over 100k videos x 2 experts, before and
after compaction. Each figure is the median of ``--reps`` runs with the min-max spread; store and numpy
runs alternate so both see the same load on a shared machine, and the speed-up is taken per
repetition (numpy time / store time) before its median. The plot (MB/s store vs numpy per
operation, resume-scan time against the 10 s target) goes to ``--plots-dir``/store.png.

    .venv/bin/python bench/bench_store.py --videos 2000 --reps 5 --resume-videos 100000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Panel, add_plots_arg, bar_chart, fmt, ratio, summarize  # noqa: E402
from videxperts.storage.reader import StoreReader  # noqa: E402
from videxperts.storage.store import FeatureStore  # noqa: E402

# name -> (dim, min rows, max rows): scene 1 fps over ~15 s clips, audio 0.96 s segments, i3d clips
EXPERTS = {"scene": (2208, 5, 25), "audio": (128, 10, 30), "i3d": (1024, 3, 10)}
PROV = {"backbone": "bench", "weights": "random-init:seed=0", "sampling": {}, "extractor_version": "1"}


def make_data(n: int, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    data: dict[str, dict[str, np.ndarray]] = {}
    for e, (dim, lo, hi) in EXPERTS.items():
        data[e] = {}
        for i in range(n):
            rows = int(rng.integers(lo, hi + 1))
            data[e][f"v{i:06d}"] = rng.standard_normal((rows, dim), dtype=np.float32).astype(np.float16)
    return data


def nbytes(data: dict) -> int:
    return sum(x.nbytes for per in data.values() for x in per.values())


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def write_store(url: str, data: dict) -> None:
    store = FeatureStore.open(url, "w")
    for e, (dim, _, _) in EXPERTS.items():
        store.ensure_expert(e, dim, PROV)
    vids = list(next(iter(data.values())))
    with store.writer("bench") as w:
        for i, v in enumerate(vids):
            for e in EXPERTS:
                x = data[e][v]
                w.write(v, e, x, np.arange(len(x), dtype=np.float32))
            if i % 50 == 49:
                w.commit()


def write_numpy(root: Path, data: dict) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for e, per in data.items():
        (root / e).mkdir(parents=True)
        for v, x in per.items():
            np.save(root / e / f"{v}.npy", x)


def read_store(url: str, vids: list[str], mode: str) -> None:
    r = StoreReader(url)
    for e in EXPERTS:
        r.load_expert(e, vids, mode=mode)


def read_numpy(root: Path, vids: list[str], mode: str) -> None:
    for e, (dim, _, _) in EXPERTS.items():
        xs = [np.load(root / e / f"{v}.npy") for v in vids]
        if mode == "mean":
            np.stack([x.astype(np.float32).mean(0) for x in xs])
        else:
            out = np.zeros((len(xs), max(len(x) for x in xs), dim), np.float32)
            for i, x in enumerate(xs):
                out[i, : len(x)] = x


def paired(store_fn, numpy_fn, reps: int) -> tuple[list[float], list[float]]:
    """Alternate the two (order flipped every rep) so both see the same machine load."""
    st, nt = [], []
    for i in range(reps):
        if i % 2:
            nt.append(timed(numpy_fn))
            st.append(timed(store_fn))
        else:
            st.append(timed(store_fn))
            nt.append(timed(numpy_fn))
    return st, nt


def stats(times: list[float], mb: float) -> dict:
    """Seconds and MB/s (one value per repetition), each as median [min-max]."""
    return {"s": summarize(times), "mb_s": summarize([mb / t for t in times])}


def resume_scan(work: Path, n: int, reps: int) -> dict:
    """Status of n videos x 2 experts (1-row features, 200 commits), scanned with pending()."""
    url = str(work / "resume.zarr")
    store = FeatureStore.open(url, "w")
    experts = ["audio", "scene"]
    for e in experts:
        store.ensure_expert(e, 4, PROV)
    vids = [f"v{i:07d}" for i in range(n)]
    x = np.ones((1, 4), np.float32)
    t = np.zeros(1, np.float32)
    per_commit = max(1, n // 200)
    with store.writer("bench") as w:
        for i, v in enumerate(vids):
            for e in experts:
                w.write(v, e, x, t)
            if i % per_commit == per_commit - 1:
                w.commit()
    extra = [f"new{i}" for i in range(1000)]

    def scan() -> None:
        todo = FeatureStore.open(url, "r").pending(vids + extra, experts)
        assert len(todo) == len(extra), len(todo)

    out = {"commit_files": len(store._root.list_names("commits"))}
    out["uncompacted"] = [timed(scan) for _ in range(reps)]
    store.compact()
    out["compacted"] = [timed(scan) for _ in range(reps)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--resume-videos", type=int, default=100_000)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir, removed)")
    ap.add_argument("--json", dest="json_out", default=None, help="also write the results here")
    add_plots_arg(ap, "store.png")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_store_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = make_data(args.videos)
        mb = nbytes(data) / 2**20
        vids = list(data["scene"])
        url, npdir = str(work / "store.zarr"), work / "npy"
        rows: list[tuple[str, dict, dict]] = []
        sw, nw = paired(lambda: write_store(url, data), lambda: write_numpy(npdir, data), args.reps)
        rows.append(("write (1 writer, commit/50 videos)", stats(sw, mb), stats(nw, mb)))
        for mode in ("mean", "seq"):
            s, n = paired(lambda m=mode: read_store(url, vids, m), lambda m=mode: read_numpy(npdir, vids, m), args.reps)
            rows.append((f"read {len(vids)} videos x {len(EXPERTS)} experts, {mode}, shard", stats(s, mb), stats(n, mb)))
        FeatureStore.open(url, "a").compact()
        for mode in ("mean", "seq"):
            s, n = paired(lambda m=mode: read_store(url, vids, m), lambda m=mode: read_numpy(npdir, vids, m), args.reps)
            rows.append((f"read {len(vids)} videos x {len(EXPERTS)} experts, {mode}, compacted", stats(s, mb), stats(n, mb)))
        sub = vids[:: max(1, len(vids) // 256)][:256]
        s, n = paired(lambda: read_store(url, sub, "seq"), lambda: read_numpy(npdir, sub, "seq"), args.reps)
        sub_mb = sum(data[e][v].nbytes for e in EXPERTS for v in sub) / 2**20
        rows.append((f"read {len(sub)} scattered videos, seq, compacted", stats(s, sub_mb), stats(n, sub_mb)))
        data.clear()  # free memory before the resume benchmark
        resume = resume_scan(work, args.resume_videos, args.reps) if args.resume_videos else None
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    table = [(name, st, nt, ratio(nt["s"]["values"], st["s"]["values"])) for name, st, nt in rows]
    scans = {k: summarize(resume[k]) for k in ("uncompacted", "compacted")} if resume else {}
    plot = chart(table, scans, Path(args.plots_dir) / "store.png", args)
    print(f"data: {args.videos} videos x {list(EXPERTS)}, {mb:.0f} MiB float16; {args.reps} reps, median [min-max]")
    print(f"{'operation':<52}{'store MB/s':>12}{'numpy MB/s':>12}{'store s':>24}{'numpy s':>24}{'speedup':>22}")
    for name, st, nt, sp in table:
        print(f"{name:<52}{st['mb_s']['median']:>12.0f}{nt['mb_s']['median']:>12.0f}"
              f"{fmt(st['s'], '.3f'):>24}{fmt(nt['s'], '.3f'):>24}{fmt(sp, unit='x'):>22}")
    for k, t in scans.items():
        print(f"resume scan, {args.resume_videos} videos x 2 experts + 1000 new, {k:<11} "
              f"({resume['commit_files'] if k == 'uncompacted' else 1} record files): {fmt(t, unit=' s')}")
    print(f"plot: {plot}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(
            {"rows": [{"operation": n, "store": st, "numpy": nt, "speedup": sp} for n, st, nt, sp in table],
             "resume": {"commit_files": resume["commit_files"], **scans} if resume else None,
             "args": vars(args), "loadavg": [round(x, 1) for x in os.getloadavg()]}, indent=1))


def chart(rows: list, scans: dict, path: Path, args: argparse.Namespace) -> Path:
    short = {"scattered": "read scattered\n(compacted)", "write": "write", "mean, shard": "read mean\n(as written)",
             "seq, shard": "read seq\n(as written)", "mean, compacted": "read mean\n(compacted)", "seq, compacted": "read seq\n(compacted)"}

    def label(name: str) -> str:
        return next(v for k, v in short.items() if k in name)

    panels = [Panel(f"store vs one numpy file per video ({args.videos} videos)", "MB/s (float16 features)",
                    {label(n): {"store": st["mb_s"], "numpy": nt["mb_s"]} for n, st, nt, _ in rows}, width=2.0)]
    if scans:
        panels.append(Panel(f"resume scan, {args.resume_videos // 1000}k videos x 2 experts", "seconds",
                            {f"{k}": t for k, t in scans.items()}, hline=(10.0, "target < 10 s"), width=0.8))
    return bar_chart(path, panels, title=f"feature store, {args.reps} reps (median, min-max)")


if __name__ == "__main__":
    main()
