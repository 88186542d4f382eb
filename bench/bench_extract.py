"""Benchmark of the extraction pipeline (never a timed test): decode-once gain, overhead, scaling.

Three measurements on the same synthetic clips and the same experts/models, each repeated
``--reps`` times (every repetition runs all jobs in turn, so both sides of a ratio see the same
load); every figure and every ratio (computed per repetition) is reported as median [min-max]:

1. decode-once vs per-expert decoding: one job with every expert (each video decoded once)
   against one job per expert (each expert's job decodes the video itself); ratio of
   processing wall times (actor start-up excluded, it is a fixed cost per job).
2. pipeline overhead: the same work done bare in one process (decode each clip once, then call
   every expert's ``extract`` on the pre-decoded views) against the pipeline with one worker
   per stage; overhead = expert busy time inside actors / bare compute - 1 (per-call cost of
   Ray), and end-to-end = pipeline wall / bare (decode + compute) - 1 (a pipelined run can
   beat the serial sum because stages overlap).
3. scaling: ``--workers 1`` vs ``--workers 2`` on this machine.

Throughput, end to end: videos/s and video-seconds per wall second use the job's processing
wall time (actor start-up excluded; it is reported apart). Video-seconds per CPU-second divides
by the CPU time of the work itself, the sum of:

* the ``cpu_s`` every decode and expert stage reports (``time.process_time`` around each call
  inside the actor);
* the probe child process that every decode pass starts per video (a Python start + PyAV
  demux, often more CPU than the decode itself here), which the actor's ``process_time``
  cannot see: measured in this process on the same clips in every repetition
  (``RUSAGE_CHILDREN`` around ``probe``), and charged once per video per decode pass
  (once for the decode-once job, once per expert for the per-expert baseline);
* the driver process's CPU time over the whole job (``time.process_time`` around
  ``run_extract``, Ray's client threads included).

Not counted, on every side alike: actor start-up and model loading (a fixed cost per job), the
writer actor, and Ray's own daemons (raylet, GCS, object transfers). The per-expert baseline
sums its jobs; "bare" is the single-process decode + compute loop (its ``process_time`` plus its
probe children, measured directly). An untimed warm-up job runs first so the driver's one-off
imports are not charged to the first repetition.

With ``--gpu`` (a CUDA machine; use a profile whose experts ask Ray for GPU fractions, e.g.
``paper``) the same measurements run on the GPU and add video-hours per GPU-hour and the mean
GPU utilisation sampled with nvidia-smi during the decode-once job.

    .venv/bin/python bench/bench_extract.py --videos 12 --seconds 4 --experts audio,scene,inst --reps 3
    .venv/bin/python bench/bench_extract.py --gpu --profile paper --experts scene,inst,i3d,r2p1d,audio

Prints a table and ratios (one JSON document with ``--json``); results go to
bench/results/extract.json and the plot (throughput, 1 -> 2 worker scaling) to
``--plots-dir``/extract.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
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

from bench.report import Panel, add_plots_arg, bar_chart, fmt, pct, ratio, summarize  # noqa: E402


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
    """One extraction job into a fresh store (removed afterwards); adds the driver's CPU time."""
    from videxperts.pipelines.extract import ExtractConfig, run_extract

    cfg = ExtractConfig(input=str(videos), out=str(store), experts=experts, workers=workers, profile=profile,
                        tracking=False, progress=False, captions=False)
    c0 = time.process_time()
    s = run_extract(cfg)
    s["driver_cpu_s"] = time.process_time() - c0
    assert s["done"] == s["inputs"], s
    shutil.rmtree(store, ignore_errors=True)  # the next repetition must not resume from it
    return s


def job_cpu_s(summary: dict[str, Any], probes_cpu_s: float) -> float:
    """CPU seconds of a job's work: every stage's ``cpu_s``, one probe per video, the driver's (see above)."""
    return sum(st.get("cpu_s", 0.0) for st in summary["stages"].values()) + probes_cpu_s + summary["driver_cpu_s"]


def children_cpu_s() -> float:
    """CPU time of this process's finished (reaped) child processes: the decoder's probe children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def probe_cpu_s(videos: Path) -> float:
    """CPU seconds of one probe (a child process) for every clip, summed."""
    from videxperts.extractors.decode import probe

    c0 = children_cpu_s()
    for p in sorted(videos.glob("*.mp4")):
        probe(p)
    return children_cpu_s() - c0


def bare(videos: Path, experts: list[str], profile_name: str = "demo", device: str = "cpu") -> dict[str, float]:
    """Decode each clip once and run every expert on the decoded views, in this one process."""
    import torch

    from videxperts.extractors.decode import decode_windows
    from videxperts.extractors.registry import build_expert, load_profile

    torch.set_num_threads(1)
    profile = load_profile(profile_name)
    built = {e: build_expert(e, profile) for e in experts}
    for ex in built.values():
        ex.load(device)
    needs = {e: ex.needs for e, ex in built.items()}
    t0, c0, k0 = time.perf_counter(), time.process_time(), children_cpu_s()
    decoded = []
    for p in sorted(videos.glob("*.mp4")):
        views: dict[str, list[Any]] = {e: [] for e in experts}
        for window in decode_windows(str(p), needs, backend=profile["decoder"].get("backend", "decord"),
                                     video_id=p.stem):
            for e in experts:
                views[e].append(window[e])
        decoded.append(views)
    out = {"decode_s": time.perf_counter() - t0,
           "decode_cpu_s": time.process_time() - c0 + children_cpu_s() - k0}  # + the probe children
    for e, ex in built.items():
        t0, c0 = time.perf_counter(), time.process_time()
        for views in decoded:
            ex.extract(views[e])
        out[f"{e}_s"] = time.perf_counter() - t0
        out[f"{e}_cpu_s"] = time.process_time() - c0
    out["compute_s"] = sum(out[f"{e}_s"] for e in experts)
    out["compute_cpu_s"] = sum(out[f"{e}_cpu_s"] for e in experts)
    return out


def one_rep(vids: Path, work: Path, experts: list[str], args: argparse.Namespace, num_gpus: int) -> dict[str, float]:
    """Every job of one repetition, always in the same order; the raw figures of that repetition."""
    prof, r = args.profile, {}
    with GpuUtilisation() if args.gpu else contextlib.nullcontext() as util:
        once = pipeline(vids, work / "once.zarr", experts, workers=1, profile=prof)
    if args.gpu:
        r["gpu_util_mean_pct"] = util.mean
        r["video_hours_per_gpu_hour"] = args.videos * args.seconds / (once["processing_s"] * num_gpus)
    separate = {e: pipeline(vids, work / f"sep-{e}.zarr", [e], workers=1, profile=prof) for e in experts}
    two = pipeline(vids, work / "two.zarr", experts, workers=2, profile=prof)
    b = bare(vids, experts, prof, "cuda" if args.gpu else "cpu")
    probes = probe_cpu_s(vids)  # one probe of every clip: charged per decode pass below
    r.update({
        "decode_once_s": once["processing_s"],
        **{f"per_expert_{e}_s": s["processing_s"] for e, s in separate.items()},
        "per_expert_total_s": sum(s["processing_s"] for s in separate.values()),
        "workers_2_s": two["processing_s"],
        "bare_decode_s": b["decode_s"],
        "bare_compute_s": b["compute_s"],
        "bare_total_s": b["decode_s"] + b["compute_s"],
        "decode_busy_once_s": once["stages"]["decode"]["busy_s"],
        "decode_busy_per_expert_s": sum(s["stages"]["decode"]["busy_s"] for s in separate.values()),
        # wall-clock busy time inflates with contention (stages share the cores); CPU time does not
        "pipeline_expert_busy_s": sum(once["stages"][e]["busy_s"] for e in experts),
        "pipeline_expert_cpu_s": sum(once["stages"][e]["cpu_s"] for e in experts),
        "bare_compute_cpu_s": b["compute_cpu_s"],
        "probe_cpu_s": probes,
        "cpu_decode_once_s": job_cpu_s(once, probes),
        "cpu_per_expert_s": sum(job_cpu_s(s, probes) for s in separate.values()),
        "cpu_workers_2_s": job_cpu_s(two, probes),
        "cpu_bare_s": b["decode_cpu_s"] + b["compute_cpu_s"],
        "driver_cpu_once_s": once["driver_cpu_s"],
        "startup_s": once["startup_s"],
    })
    return r


# name -> (wall seconds key, CPU seconds key) of each way of doing the same work
WAYS = {"decode_once": ("decode_once_s", "cpu_decode_once_s"), "per_expert": ("per_expert_total_s", "cpu_per_expert_s"),
        "workers_2": ("workers_2_s", "cpu_workers_2_s"), "bare": ("bare_total_s", "cpu_bare_s")}


def summarise(reps: list[dict[str, float]], videos: int, video_s: float) -> dict[str, Any]:
    """Median [min-max] of every figure, of the throughputs, and of every ratio taken per repetition."""

    def col(k: str) -> list[float]:
        return [r[k] for r in reps]

    throughput = {
        way: {"videos_per_s": summarize([videos / t for t in col(wall)]),
              "video_s_per_wall_s": summarize([video_s / t for t in col(wall)]),
              "video_s_per_cpu_s": summarize([video_s / t for t in col(cpu)])}
        for way, (wall, cpu) in WAYS.items()
    }
    ratios = {
        "decode_once_speedup": ratio(col("per_expert_total_s"), col("decode_once_s")),
        "decode_once_cpu_saving": ratio(col("cpu_per_expert_s"), col("cpu_decode_once_s")),
        "expert_call_overhead_cpu": ratio(col("pipeline_expert_cpu_s"), col("bare_compute_cpu_s"), offset=-1),
        "expert_call_overhead_wall": ratio(col("pipeline_expert_busy_s"), col("bare_compute_s"), offset=-1),
        "end_to_end_overhead": ratio(col("decode_once_s"), col("bare_total_s"), offset=-1),
        "scaling_1_to_2": ratio(col("decode_once_s"), col("workers_2_s")),
    }
    return {"figures": {k: summarize(col(k)) for k in reps[0]}, "throughput": throughput, "ratios": ratios}


def plot(summary: dict[str, Any], path: Path, title: str) -> Path:
    thr, scaling = summary["throughput"], summary["ratios"]["scaling_1_to_2"]
    labels = {"decode_once": "decode once\n(pipeline)", "per_expert": "per-expert\ndecode (baseline)",
              "bare": "bare serial\n(1 process)"}
    return bar_chart(path, [
        Panel("throughput (1 worker/stage)", "video-seconds per second",
              {labels[w]: {"per wall second": thr[w]["video_s_per_wall_s"],
                           "per CPU second": thr[w]["video_s_per_cpu_s"]} for w in labels}),
        Panel(f"scaling 1 -> 2 workers per stage: {fmt(scaling, unit='x')}", "video-seconds per wall second",
              {"1 worker/stage": thr["decode_once"]["video_s_per_wall_s"],
               "2 workers/stage": thr["workers_2"]["video_s_per_wall_s"]}),
    ], title=title)


def print_table(res: dict[str, Any], experts: list[str]) -> None:
    f, thr, rt = res["summary"]["figures"], res["summary"]["throughput"], res["summary"]["ratios"]
    rows = [
        ("decode once, all experts (1 worker/stage)", "decode_once_s"),
        *[(f"  {e} alone (decodes itself)", f"per_expert_{e}_s") for e in experts],
        ("per-expert decoding, total", "per_expert_total_s"),
        ("decode busy: once / per-expert total", "decode_busy_once_s"),
        ("", "decode_busy_per_expert_s"),
        ("bare: decode once, 1 process", "bare_decode_s"),
        ("bare: experts on pre-decoded views", "bare_compute_s"),
        ("pipeline, 2 workers/stage", "workers_2_s"),
        ("actor start-up (decode-once job)", "startup_s"),
    ]
    print(f"{res['videos']} clips x {res['seconds']:g} s, experts {','.join(experts)}, {res['num_cpus']} CPUs, "
          f"{res['reps']} reps: median [min-max]; load average at the end {res['loadavg']}")
    for name, k in rows:
        print(f"  {name:<44} {fmt(f[k], '.2f', ' s')}")
    print(f"  {'':<44} {'videos/s':<22}{'video-s per wall s':<22}video-s per CPU s")
    for way in WAYS:
        t = thr[way]
        print(f"  {way:<44} {fmt(t['videos_per_s']):<22}{fmt(t['video_s_per_wall_s']):<22}{fmt(t['video_s_per_cpu_s'])}")
    print(f"decode-once speed-up over per-expert decoding: {fmt(rt['decode_once_speedup'], unit='x')} "
          f"(CPU time: {fmt(rt['decode_once_cpu_saving'], unit='x')})")
    print(f"expert compute inside actors vs bare, CPU time: {pct(rt['expert_call_overhead_cpu'])} "
          f"(wall, inflated by core sharing: {pct(rt['expert_call_overhead_wall'])})")
    print(f"end-to-end pipeline vs bare serial decode+compute: {pct(rt['end_to_end_overhead'])}")
    print(f"scaling 1 -> 2 workers per stage: {fmt(rt['scaling_1_to_2'], unit='x')}")
    if "video_hours_per_gpu_hour" in f:
        print(f"video-hours per GPU-hour: {fmt(f['video_hours_per_gpu_hour'], '.1f')}; mean GPU utilisation "
              f"during the decode-once job: {fmt(f['gpu_util_mean_pct'], '.0f', '%')}")
    print(f"plot: {res['plot']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--experts", default="audio,scene,inst")
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every job (median and min-max reported)")
    ap.add_argument("--profile", default="demo", help="extraction profile (configs/extract/NAME.yaml)")
    ap.add_argument("--gpu", action="store_true", help="run on CUDA; adds video-hours per GPU-hour and GPU utilisation")
    ap.add_argument("--json", action="store_true")
    add_plots_arg(ap, "extract.png")
    args = ap.parse_args()
    if args.reps < 1:
        sys.exit(f"bench_extract: --reps must be >= 1, got {args.reps}")
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
                           "reps": args.reps, "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory(prefix="vx-bench-") as d:
        vids = make_clips(Path(d) / "videos", args.videos, args.seconds)
        # untimed warm-up job: the driver's one-off imports and Ray's first actor set-up would
        # otherwise land in the first repetition's driver CPU time
        pipeline(vids, Path(d) / "warmup.zarr", experts, workers=1, profile=args.profile)
        reps = []
        for i in range(args.reps):
            reps.append(one_rep(vids, Path(d), experts, args, num_gpus))
            print(f"rep {i + 1}/{args.reps}: {json.dumps({k: round(v, 3) for k, v in reps[-1].items()})}",
                  file=sys.stderr, flush=True)
    ray.shutdown()
    res["loadavg"] = [round(x, 1) for x in os.getloadavg()]
    res["raw"] = reps
    res["summary"] = summarise(reps, args.videos, args.videos * args.seconds)
    res["plot"] = str(plot(res["summary"], Path(args.plots_dir) / "extract.png",
                           f"extraction, {args.videos} clips x {args.seconds:g} s, {'+'.join(experts)}, "
                           f"{args.num_cpus} CPUs, {args.reps} reps (median, min-max)"))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "extract.json").write_text(json.dumps(res, indent=1))
    if args.json:
        print(json.dumps(res))
        return
    print_table(res, experts)


if __name__ == "__main__":
    main()
