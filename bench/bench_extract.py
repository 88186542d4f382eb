"""Benchmark of the extraction pipeline (never a timed test): decode-once gain, overhead, scaling.

Three measurements on the same synthetic clips and the same experts/models:

1. decode-once vs per-expert decoding: one job with every expert (each video decoded once)
   against one job per expert (each expert's job decodes the video itself); ratio of
   processing wall times (actor start-up excluded, it is a fixed cost per job).
2. pipeline overhead: the same work done bare in one process (decode each clip once, then call
   every expert's ``extract`` on the pre-decoded views) against the pipeline with one worker
   per stage; overhead = expert busy time inside actors / bare compute - 1 (per-call cost of
   Ray), and end-to-end = pipeline wall / bare (decode + compute) - 1 (a pipelined run can
   beat the serial sum because stages overlap).
3. scaling: ``--workers 1`` vs ``--workers 2`` on this machine.

With ``--gpu`` (a CUDA machine; use a profile whose experts ask Ray for GPU fractions, e.g.
``paper``) the same measurements run on the GPU and add video-hours per GPU-hour and the mean
GPU utilisation sampled with nvidia-smi during the decode-once job.

    .venv/bin/python bench/bench_extract.py --videos 16 --experts audio,scene,inst --json
    .venv/bin/python bench/bench_extract.py --gpu --profile paper --experts scene,inst,i3d,r2p1d,audio

Prints a table and ratios (one JSON document with ``--json``); results go to
bench/results/extract.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_clips(root: Path, n: int, seconds: float) -> Path:
    from tests.media import make_clip

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_clip(root / f"b{i:03d}.mp4", seconds=seconds, size=(160, 120))
    return root


class GpuUtilisation:
    """Samples ``nvidia-smi`` GPU utilisation (percent, all GPUs) in a thread while the block runs."""

    def __init__(self, every_s: float = 0.5) -> None:
        self.every_s, self.samples, self._stop = every_s, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        while not self._stop.wait(self.every_s):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout
            self.samples += [float(v) for v in out.split() if v.strip().isdigit()]

    def __enter__(self) -> GpuUtilisation:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples) if self.samples else float("nan")


def pipeline(videos: Path, store: Path, experts: list[str], workers: int, profile: str = "demo") -> dict[str, Any]:
    from pipelines.extract import ExtractConfig, run_extract

    cfg = ExtractConfig(input=str(videos), out=str(store), experts=experts, workers=workers, profile=profile,
                        tracking=False, progress=False, captions=False)
    s = run_extract(cfg)
    assert s["done"] == s["inputs"], s
    return s


def bare(videos: Path, experts: list[str], profile_name: str = "demo", device: str = "cpu") -> dict[str, float]:
    """Decode each clip once and run every expert on the decoded views, in this one process."""
    import torch

    from extractors.decode import decode_windows
    from extractors.registry import build_expert, load_profile

    torch.set_num_threads(1)
    profile = load_profile(profile_name)
    built = {e: build_expert(e, profile) for e in experts}
    for ex in built.values():
        ex.load(device)
    needs = {e: ex.needs for e, ex in built.items()}
    t0, c0 = time.perf_counter(), time.process_time()
    decoded = []
    for p in sorted(videos.glob("*.mp4")):
        views: dict[str, list[Any]] = {e: [] for e in experts}
        for window in decode_windows(str(p), needs, backend=profile["decoder"].get("backend", "decord"),
                                     video_id=p.stem):
            for e in experts:
                views[e].append(window[e])
        decoded.append(views)
    out = {"decode_s": time.perf_counter() - t0, "decode_cpu_s": time.process_time() - c0}
    for e, ex in built.items():
        t0, c0 = time.perf_counter(), time.process_time()
        for views in decoded:
            ex.extract(views[e])
        out[f"{e}_s"] = time.perf_counter() - t0
        out[f"{e}_cpu_s"] = time.process_time() - c0
    out["compute_s"] = sum(out[f"{e}_s"] for e in experts)
    out["compute_cpu_s"] = sum(out[f"{e}_cpu_s"] for e in experts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--experts", default="audio,scene,inst")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--profile", default="demo", help="extraction profile (configs/extract/NAME.yaml)")
    ap.add_argument("--gpu", action="store_true", help="run on CUDA; adds video-hours per GPU-hour and GPU utilisation")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    experts = sorted(args.experts.split(","))

    import ray
    import torch

    num_gpus = torch.cuda.device_count() if args.gpu else 0
    if args.gpu and num_gpus == 0:
        sys.exit("bench_extract: --gpu needs a CUDA device (torch.cuda.is_available() is False here)")
    ray.init(num_cpus=args.num_cpus, num_gpus=num_gpus, include_dashboard=False, logging_level="warning",
             log_to_driver=False)
    res: dict[str, Any] = {"videos": args.videos, "seconds": args.seconds, "experts": experts,
                           "num_cpus": args.num_cpus, "num_gpus": num_gpus, "profile": args.profile,
                           "command": " ".join(sys.argv)}
    prof = args.profile
    with tempfile.TemporaryDirectory(prefix="vx-bench-") as d:
        vids = make_clips(Path(d) / "videos", args.videos, args.seconds)
        # 1. decode once (all experts in one job) vs each expert decoding for itself
        with GpuUtilisation() if args.gpu else _nothing() as util:
            once = pipeline(vids, Path(d) / "once.zarr", experts, workers=1, profile=prof)
        if args.gpu:
            res["gpu_util_mean_pct"] = util.mean
            res["video_hours_per_gpu_hour"] = args.videos * args.seconds / (once["processing_s"] * num_gpus)
        separate = {e: pipeline(vids, Path(d) / f"sep-{e}.zarr", [e], workers=1, profile=prof) for e in experts}
        res["decode_once_s"] = once["processing_s"]
        res["per_expert_s"] = {e: s["processing_s"] for e, s in separate.items()}
        res["per_expert_total_s"] = sum(res["per_expert_s"].values())
        res["decode_once_speedup"] = res["per_expert_total_s"] / once["processing_s"]
        res["decode_busy_once_s"] = once["stages"]["decode"]["busy_s"]
        res["decode_busy_per_expert_s"] = sum(s["stages"]["decode"]["busy_s"] for s in separate.values())
        # 2. overhead against bare compute on pre-decoded views (median of 2)
        bares = [bare(vids, experts, prof, "cuda" if args.gpu else "cpu") for _ in range(2)]
        b = {k: statistics.median(x[k] for x in bares) for k in bares[0]}
        res["bare"] = b
        busy = {e: once["stages"][e]["busy_s"] for e in experts}
        cpu = {e: once["stages"][e]["cpu_s"] for e in experts}
        res["pipeline_expert_busy_s"] = busy
        res["pipeline_expert_cpu_s"] = cpu
        # wall-clock busy time inflates with contention (stages share the cores); CPU time does not
        res["expert_call_overhead_wall"] = sum(busy.values()) / b["compute_s"] - 1
        res["expert_call_overhead_cpu"] = sum(cpu.values()) / b["compute_cpu_s"] - 1
        res["end_to_end_overhead"] = once["processing_s"] / (b["decode_s"] + b["compute_s"]) - 1
        # 3. scaling 1 -> 2 workers per stage
        two = pipeline(vids, Path(d) / "two.zarr", experts, workers=2, profile=prof)
        res["workers_1_s"] = once["processing_s"]
        res["workers_2_s"] = two["processing_s"]
        res["scaling_1_to_2"] = once["processing_s"] / two["processing_s"]
        res["startup_s"] = once["startup_s"]
    ray.shutdown()
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "extract.json").write_text(json.dumps(res, indent=2))
    if args.json:
        print(json.dumps(res))
        return
    rows = [
        ("decode once, all experts (1 worker/stage)", res["decode_once_s"]),
        *[(f"  {e} alone (decodes itself)", s) for e, s in res["per_expert_s"].items()],
        ("per-expert decoding, total", res["per_expert_total_s"]),
        ("bare: decode once, 1 process", b["decode_s"]),
        ("bare: experts on pre-decoded views", b["compute_s"]),
        ("pipeline, 2 workers/stage", res["workers_2_s"]),
    ]
    print(f"{args.videos} clips x {args.seconds:g} s, experts {','.join(experts)}, {args.num_cpus} CPUs")
    for name, s in rows:
        print(f"  {name:<44} {s:8.2f} s")
    print(f"decode-once speed-up over per-expert decoding: {res['decode_once_speedup']:.2f}x")
    print(f"expert compute inside actors vs bare, CPU time: {100 * res['expert_call_overhead_cpu']:+.1f}% "
          f"(wall, inflated by core sharing: {100 * res['expert_call_overhead_wall']:+.1f}%)")
    print(f"end-to-end pipeline vs bare serial decode+compute: {100 * res['end_to_end_overhead']:+.1f}%")
    print(f"scaling 1 -> 2 workers per stage: {res['scaling_1_to_2']:.2f}x")
    if args.gpu:
        print(f"video-hours per GPU-hour: {res['video_hours_per_gpu_hour']:.1f}; "
              f"mean GPU utilisation during the decode-once job: {res['gpu_util_mean_pct']:.0f}%")


def _nothing() -> Any:
    import contextlib

    return contextlib.nullcontext()


if __name__ == "__main__":
    main()
