"""Benchmark retrieval evaluation: time and peak memory of the chunked metrics.

Cases (each in its own subprocess so that peak RSS belongs to that case alone):
- `chunked` at 1k videos × 20k captions and 10k × 200k, from L2-normalised embeddings of
  dim 768 with a dot-product similarity (`videxperts.training.retrieval.metrics.retrieval_metrics_from_embeddings`);
- `naive` at 1k × 20k: the full similarity matrix and a per-row / per-column argsort, the
  way evaluation code commonly does it (no tie averaging), as the baseline for a ratio.

The 1k × 20k cases run ``--reps`` times (chunked and naive taking turns, so the naive/chunked
ratios pair runs made under the same load); the 10k × 200k case, minutes per run, runs
``--big-reps`` times. Figures are median [min-max]; the plot (time and peak memory per case)
goes to ``--plots-dir``/eval.png.

Usage:
    .venv/bin/python bench/bench_eval.py --big-dim 256 --reps 3 --big-reps 2
    .venv/bin/python bench/bench_eval.py                 # all cases, table on stdout
    .venv/bin/python bench/bench_eval.py --json          # one JSON document
    .venv/bin/python bench/bench_eval.py --small         # only 1k × 20k (chunked + naive)
    .venv/bin/python bench/bench_eval.py --case chunked --videos 1000 --captions 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import Panel, add_plots_arg, bar_chart, fmt, ratio, summarize  # noqa: E402

FIGURES = ("seconds", "peak_rss_mb", "inputs_rss_mb", "peak_over_inputs_mb")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _embeddings(videos: int, captions: int, dim: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    video = torch.nn.functional.normalize(torch.randn(videos, dim, generator=g), dim=1)
    cv = torch.arange(captions) % videos
    text = torch.empty(captions, dim)
    step = 50_000  # build in slices to keep the setup's own peak small
    for s in range(0, captions, step):
        e = min(s + step, captions)
        text[s:e] = video[cv[s:e]] + 8.0 * torch.randn(e - s, dim, generator=g) / dim**0.5  # R@1 well below 100
    return torch.nn.functional.normalize(text, dim=1), video, cv


def run_case(case: str, videos: int, captions: int, dim: int, chunk: int, threads: int | None) -> dict:
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)
    text, video, cv = _embeddings(videos, captions, dim, seed=0)
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    if case == "chunked":
        from videxperts.training.retrieval.metrics import retrieval_metrics_from_embeddings

        metrics = retrieval_metrics_from_embeddings(text, video, None, cv, chunk=chunk)
    elif case == "naive":
        sims = (text @ video.T).numpy()
        cvn = cv.numpy()
        order = np.argsort(-sims, axis=1)
        t2v = np.nonzero(order == cvn[:, None])[1]
        col_order = np.argsort(-sims, axis=0)  # [C, V]: captions per video, best first
        pos = np.empty_like(col_order)
        np.put_along_axis(pos, col_order, np.arange(captions)[:, None].repeat(videos, 1), axis=0)
        v2t = np.full(videos, captions)
        np.minimum.at(v2t, cvn, pos[np.arange(captions), cvn])
        metrics = {"t2v": {"R1": float(100 * np.mean(t2v < 1))}, "v2t": {"R1": float(100 * np.mean(v2t < 1))}}
    else:
        raise SystemExit(f"unknown case {case!r}")
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    return {
        "case": case, "videos": videos, "captions": captions, "dim": dim, "chunk": chunk if case == "chunked" else None,
        "seconds": round(seconds, 3), "peak_rss_mb": round(peak, 1), "inputs_rss_mb": round(base_rss, 1),
        "peak_over_inputs_mb": round(peak - base_rss, 1), "threads": torch.get_num_threads(),
        "t2v_R1": metrics["t2v"]["R1"], "v2t_R1": metrics["v2t"]["R1"],
    }


def _subprocess(case: str, videos: int, captions: int, dim: int, chunk: int, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--case", case, "--videos", str(videos), "--captions", str(captions),
           "--dim", str(dim), "--chunk", str(chunk), "--json"]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=["chunked", "naive"], help="run one case in this process")
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--captions", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--small", action="store_true", help="skip the 10k × 200k case")
    ap.add_argument("--big-dim", type=int, default=None,
                    help="embedding dim of the 10k × 200k case (default: --dim; time scales linearly with it)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the 1k x 20k cases")
    ap.add_argument("--big-reps", type=int, default=1, help="repetitions of the 10k x 200k case (minutes each)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    add_plots_arg(ap, "eval.png")
    args = ap.parse_args()

    if args.case:
        result = run_case(args.case, args.videos, args.captions, args.dim, args.chunk, args.threads)
        print(json.dumps(result) if args.json else result)
        return

    if args.reps < 1 or args.big_reps < 0:
        raise SystemExit(f"bench_eval: --reps must be >= 1 and --big-reps >= 0, got {args.reps}, {args.big_reps}")
    plan = [("chunked", 1000, 20000, args.dim), ("naive", 1000, 20000, args.dim)] * args.reps
    if not args.small:
        plan += [("chunked", 10000, 200000, args.big_dim or args.dim)] * args.big_reps
    runs: dict[tuple, list[dict]] = {}
    for case, v, c, dim in plan:
        print(f"running {case} {v} x {c} (dim {dim}) ...", file=sys.stderr, flush=True)
        runs.setdefault((case, v, c, dim), []).append(_subprocess(case, v, c, dim, args.chunk, args.threads))
    rows = [{"case": case, "videos": v, "captions": c, "dim": dim, "runs": rs,
             **{k: summarize([r[k] for r in rs]) for k in FIGURES}} for (case, v, c, dim), rs in runs.items()]
    small = {r["case"]: r["runs"] for r in rows if r["videos"] == 1000}
    summary = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_at_end": [round(x, 1) for x in os.getloadavg()]},
        "reps": args.reps, "big_reps": 0 if args.small else args.big_reps,
        "results": rows,
        "naive_over_chunked_time_1k": ratio([r["seconds"] for r in small["naive"]],
                                            [r["seconds"] for r in small["chunked"]]),
        "naive_over_chunked_peak_over_inputs_1k": ratio(
            [r["peak_over_inputs_mb"] for r in small["naive"]],
            [max(r["peak_over_inputs_mb"], 1e-9) for r in small["chunked"]]),
    }
    summary["plot"] = str(chart(rows, Path(args.plots_dir) / "eval.png"))
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"median [min-max] over the runs (n); plot: {summary['plot']}")
    print(f"{'case':8} {'videos':>7} {'captions':>9} {'dim':>5} {'n':>2} {'seconds':>22} {'peak RSS MB':>16} "
          f"{'over inputs MB':>16}")
    for r in rows:
        print(f"{r['case']:8} {r['videos']:>7} {r['captions']:>9} {r['dim']:>5} {len(r['runs']):>2} "
              f"{fmt(r['seconds']):>22} {fmt(r['peak_rss_mb'], '.0f'):>16} {fmt(r['peak_over_inputs_mb'], '.0f'):>16}")
    print(f"naive / chunked at 1k x 20k: time {fmt(summary['naive_over_chunked_time_1k'], unit='x')}, "
          f"extra memory {fmt(summary['naive_over_chunked_peak_over_inputs_1k'], unit='x')}")


def chart(rows: list[dict], path: Path) -> Path:
    names = {id(r): f"{r['case']}\n{r['videos'] // 1000}k x {r['captions'] // 1000}k, d{r['dim']}" for r in rows}
    return bar_chart(path, [
        Panel("evaluation time", "seconds (log scale)", {names[id(r)]: r["seconds"] for r in rows}, log=True),
        Panel("peak memory", "MB",
              {names[id(r)]: {"peak RSS": r["peak_rss_mb"], "peak - inputs": r["peak_over_inputs_mb"]} for r in rows}),
    ], title="retrieval metrics: chunked vs naive full-matrix argsort (median, min-max)")

if __name__ == "__main__":
    main()
