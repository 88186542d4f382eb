"""Batch size per expert, measured on the device it runs on (never a test).

For each expert of a profile: load it on ``--device``, then ``measure_expert`` (the same
calibration ``videxperts extract`` runs, pipelines/extract_balance.py): cost per unit at each
candidate batch size (CPU: CPU seconds per unit; CUDA: synchronised wall seconds per unit),
the cheapest batch, and the resulting cost per second of video. On CUDA it also reports
video-hours per GPU-hour for each expert alone and for the profile's experts run one after
another on one GPU (1 / the sum of their costs), from the same measurement.

    .venv/bin/python bench/bench_batch.py --profile demo --device cpu --threads 2
    python3 bench/bench_batch.py --profile paper --device cuda --budget 30
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--experts", default="scene,inst,i3d,r2p1d,audio")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    ap.add_argument("--budget", type=float, default=8.0, help="seconds per expert's sweep")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    from videxperts.extractors.registry import build_expert, load_profile
    from videxperts.pipelines.extract_balance import CPU_BATCHES, GPU_BATCHES, measure_expert

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = load_profile(args.profile)
    cuda = args.device.startswith("cuda")
    out = {"profile": args.profile, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
           "threads": torch.get_num_threads(), "experts": {}}
    for name in args.experts.split(","):
        t0 = time.monotonic()
        e = build_expert(name, profile)
        e.load(args.device)
        load_s = time.monotonic() - t0
        m = measure_expert(e, args.device, GPU_BATCHES if cuda else CPU_BATCHES, budget_s=args.budget)
        m["load_s"] = round(load_s, 2)
        if cuda:
            m["video_hours_per_gpu_hour"] = round(1.0 / m["cost_per_video_s"], 1)
        out["experts"][name] = m
        print(f"{name}: batch {m['batch_size']}, cost per unit {m['unit_s']}, "
              f"{m['cost_per_video_s']:.5f} s per video-s", file=sys.stderr, flush=True)
        del e
        if cuda:
            torch.cuda.empty_cache()
    total = sum(m["cost_per_video_s"] for m in out["experts"].values())
    out["all_experts_cost_per_video_s"] = round(total, 6)
    if cuda:
        out["all_experts_video_hours_per_gpu_hour"] = round(1.0 / total, 1)
    if args.json:
        print(json.dumps(out, indent=1))
    print(f"\n{args.profile} on {out['device']} ({out['threads']} CPU threads)")
    print("| expert | cost per unit by batch (s) | chosen batch | s per video-s |")
    print("|---|---|---|---|")
    for name, m in out["experts"].items():
        costs = ", ".join(f"{b}: {v:.4g}" for b, v in m["unit_s"].items())
        print(f"| {name} | {costs} | {m['batch_size']} | {m['cost_per_video_s']:.4g} |")
    if cuda:
        print(f"\nall experts one after another on one GPU: {out['all_experts_video_hours_per_gpu_hour']} "
              "video-hours per GPU-hour (model time only)")


if __name__ == "__main__":
    main()
