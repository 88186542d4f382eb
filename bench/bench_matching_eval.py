"""Benchmark the VSE++ matching evaluation: chunked vs the original's dense algorithm, same numbers.

Cases (each in its own subprocess, so peak RSS belongs to that case alone), on COCO-5K sizes
(5,000 images x 25,000 captions) from L2-normalised random embeddings with a signal:
- `chunked`: `videxperts.training.matching.metrics.matching_metrics(EmbeddingSims(im, cap))`,
  blocks of complete rows/columns, never the whole matrix;
- `dense`: the original's way (VSE++ `i2t`/`t2i`): the full [5k, 25k] float32 matrix, then per
  image and per caption a numpy argsort, reversed, and the position of the own item(s).

Both report every metric; the table says whether they agree exactly. Embeddings are float64
here: in float32, some of 25k scores tie exactly and the original's unstable argsort orders
ties arbitrarily (the chunked code uses a fixed tie rule), which would make "same numbers" a
coin toss on a handful of queries. Cases take turns
(`--reps` times) so ratios pair runs made under the same load. Median [min-max].

Usage:
    .venv/bin/python bench/bench_matching_eval.py --reps 3
    .venv/bin/python bench/bench_matching_eval.py --images 1000 --reps 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import fmt, ratio, summarize  # noqa: E402

CPI = 5


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _embeddings(images: int, dim: int, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    im = torch.nn.functional.normalize(torch.randn(images, dim, generator=g), dim=1)
    cap = im.repeat_interleave(CPI, 0) + 6.0 * torch.randn(images * CPI, dim, generator=g) / dim**0.5
    # float64: float32 dot products of 25k captions tie exactly now and then, and the original's
    # unstable argsort orders ties arbitrarily; float64 leaves no ties, so "same numbers" is a test
    return im.double(), torch.nn.functional.normalize(cap, dim=1).double()


def _dense(im, cap) -> dict:
    """The VSE++ loops on the full matrix (argsort default kind, reversed)."""
    import numpy as np

    from videxperts.training.matching.metrics import _flat, recalls_from_ranks

    d = (im @ cap.T).numpy()
    n = d.shape[0]
    i2t = np.zeros(n)
    for i in range(n):
        inds = np.argsort(d[i])[::-1]
        i2t[i] = min(np.where(inds == j)[0][0] for j in range(CPI * i, CPI * i + CPI))
    dt = np.ascontiguousarray(d.T)
    t2i = np.zeros(n * CPI)
    for c in range(n * CPI):
        inds = np.argsort(dt[c])[::-1]
        t2i[c] = np.where(inds == c // CPI)[0][0]
    return _flat(recalls_from_ranks(i2t), recalls_from_ranks(t2i))


def run_case(case: str, images: int, dim: int) -> dict:
    from videxperts.training.matching.metrics import EmbeddingSims, matching_metrics

    im, cap = _embeddings(images, dim)
    base = _rss_mb()
    t0 = time.perf_counter()
    if case == "chunked":
        metrics = matching_metrics(EmbeddingSims(im, cap), CPI)
    elif case == "dense":
        metrics = _dense(im, cap)
    else:
        raise SystemExit(f"unknown case {case!r}")
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": case, "images": images, "captions": images * CPI, "dim": dim, "seconds": round(seconds, 3),
            "peak_over_inputs_mb": round(peak - base, 1), "metrics": metrics}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=["chunked", "dense"], help="run one case in this process")
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.images, args.dim)))
        return
    runs: dict[str, list[dict]] = {"chunked": [], "dense": []}
    for _ in range(args.reps):
        for case in runs:
            print(f"running {case} {args.images} x {args.images * CPI} ...", file=sys.stderr, flush=True)
            out = subprocess.run([sys.executable, __file__, "--case", case, "--images", str(args.images),
                                  "--dim", str(args.dim)], check=True, capture_output=True, text=True, cwd=ROOT)
            runs[case].append(json.loads(out.stdout))
    same = all(c["metrics"] == d["metrics"] for c, d in zip(runs["chunked"], runs["dense"], strict=True))
    summary = {
        "cpus": os.cpu_count(), "loadavg_at_end": [round(x, 1) for x in os.getloadavg()],
        "images": args.images, "captions": args.images * CPI, "dim": args.dim, "same_numbers": same,
        "metrics": runs["chunked"][0]["metrics"],
        **{f"{case}_{k}": summarize([r[k] for r in rs]) for case, rs in runs.items()
           for k in ("seconds", "peak_over_inputs_mb")},
        "dense_over_chunked_time": ratio([r["seconds"] for r in runs["dense"]], [r["seconds"] for r in runs["chunked"]]),
        "dense_over_chunked_memory": ratio([r["peak_over_inputs_mb"] for r in runs["dense"]],
                                           [max(r["peak_over_inputs_mb"], 1.0) for r in runs["chunked"]]),
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"{args.images} images x {args.images * CPI} captions, dim {args.dim}; median [min-max] over {args.reps}")
    print(f"{'case':8} {'seconds':>24} {'peak over inputs MB':>24}")
    for case in runs:
        print(f"{case:8} {fmt(summary[f'{case}_seconds']):>24} {fmt(summary[f'{case}_peak_over_inputs_mb'], '.0f'):>24}")
    print(f"dense / chunked: time {fmt(summary['dense_over_chunked_time'], unit='x')}, "
          f"memory {fmt(summary['dense_over_chunked_memory'], unit='x')}; same numbers: {same}; "
          f"rsum {summary['metrics']['rsum']:.2f}")


if __name__ == "__main__":
    main()
