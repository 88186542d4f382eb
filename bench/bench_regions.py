"""Benchmark the regions expert: CPU seconds per image, against its own ResNet trunk alone.

For each profile (demo: Faster R-CNN ResNet-50 FPN at 160 px; paper: ResNet-101 FPN at 600 px,
1,601 classes, 300 proposals) the expert's `extract` runs on `--images` 320x240 frames (a
batch), and the baseline is the same ResNet trunk (`backbone.body`) on the same frames at the
detector's input size: the ratio is what proposals, box head, per-class NMS and RoI pooling
add. Weights are seeded random (cost does not depend on them). Median [min-max] over `--reps`.

Usage:
    .venv/bin/python bench/bench_regions.py --images 4 --reps 3
    .venv/bin/python bench/bench_regions.py --profiles demo --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import fmt, ratio, summarize  # noqa: E402


def measure(profile: str, images: int, reps: int, threads: int) -> dict:
    import numpy as np
    import torch

    from videxperts.extractors.base import MediaView
    from videxperts.extractors.registry import build_expert, load_profile

    torch.set_num_threads(threads)
    cfg = dict(load_profile(profile)["experts"]["regions"], device="cpu", batch_size=images)
    expert = build_expert("regions", cfg)
    expert.load("cpu")
    frames = np.random.default_rng(0).integers(0, 255, (images, 240, 320, 3), dtype=np.uint8)
    view = MediaView("bench", 1.0, frames, np.zeros(images))
    expert.extract([view])  # warm-up
    full, trunk = [], []
    for _ in range(reps):
        t = time.perf_counter()
        expert.extract([view])
        full.append((time.perf_counter() - t) / images)
        with torch.inference_mode():
            imgs = [torch.as_tensor(f).permute(2, 0, 1).float() / 255 for f in frames]
            t = time.perf_counter()
            batch, _ = expert.model.transform(imgs)
            expert.model.backbone.body(batch.tensors)
            trunk.append((time.perf_counter() - t) / images)
    return {"profile": profile, "variant": expert.variant, "input": f"{expert.size}/{expert.max_size}",
            "images": images, "threads": threads, "seconds_per_image": summarize(full),
            "trunk_seconds_per_image": summarize(trunk), "over_trunk": ratio(full, trunk)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="demo,paper")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [measure(p, args.images, args.reps, args.threads) for p in args.profiles.split(",")]
    if args.json:
        print(json.dumps({"results": rows, "loadavg_at_end": os.getloadavg()}, indent=1))
        return
    print(f"regions expert on CPU ({args.threads} thread(s)), {args.images} 320x240 images per call; "
          f"median [min-max] over {args.reps}; load average at end {os.getloadavg()[0]:.1f}")
    print(f"{'profile':8} {'variant':26} {'input':9} {'s/image':>22} {'trunk s/image':>22} {'full/trunk':>20}")
    for r in rows:
        print(f"{r['profile']:8} {r['variant']:26} {r['input']:9} {fmt(r['seconds_per_image']):>22} "
              f"{fmt(r['trunk_seconds_per_image']):>22} {fmt(r['over_trunk'], unit='x'):>20}")


if __name__ == "__main__":
    main()
