"""GPU checks and throughput on a CUDA machine (issues 12, 13, 15, 17, 18, 19): one script, one table per part.

Parts (``--parts``, comma-separated; each part reports its own error line and the rest still run):

* ``experts``: the paper profile's CNN experts (scene, inst, i3d, r2p1d, audio) and MTCNN face
  detection on synthetic decoded media (decode excluded), per batch size: video seconds per
  second (= video-hours per GPU-hour), fp32 vs autocast, and the GPU busy fraction sampled with
  NVML while the expert runs. The best batch size per expert is what the profile should ask for.
* ``fit``: the harness's training loop (``videxperts.training.runner.fit``, AMP on) on CUDA with
  NCCL (1 rank: one GPU allows no second NCCL rank) and DDP over gloo with 2 ranks sharing the GPU,
  against the same loop on CPU in fp32: losses and validation metrics must agree closely.
* ``ce_step``: ``bench/bench_train_step.py``'s published-size CE step (original vs videxperts) on CUDA.
* ``steps``: one training step at published sizes with AMP for every published training config
  that ``--configs`` names (captioning and matching configs included) on the task's
  ``example_batch``: seconds per step and samples per second, fp32 vs AMP.

    python bench/bench_gpu.py --parts experts,fit,ce_step,steps --json-out /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.report import summarize  # noqa: E402

PAPER_EXPERTS = ("scene", "inst", "i3d", "r2p1d", "audio", "face")
DEVICE = torch.device("cuda")  # --device cpu: a dry run of the same code on a machine without a GPU


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _reset_memory() -> float:
    """Peak GPU memory since the last call, in GiB (0 on CPU); frees the cache for the next row."""
    if DEVICE.type != "cuda":
        return 0.0
    peak = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return peak


class BusySampler:
    """Samples NVML's GPU utilisation every 20 ms in a thread: the fraction of time a kernel ran."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> BusySampler:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVML: the busy fraction is reported as unknown
            return self

        def run() -> None:
            while not self._stop.is_set():
                self.samples.append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
                time.sleep(0.02)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def busy(self) -> float | None:
        return float(np.mean(self.samples)) if self.samples else None


def synthetic_view(expert: Any, seconds: float) -> Any:
    """Decoded media as the decoder hands it to ``expert``: moving texture frames at its fps and
    size, a tone at its sample rate (decode cost is not part of this measurement)."""
    from videxperts.extractors.base import MediaView

    needs = expert.needs
    view = MediaView(video_id="gpu-bench", duration=seconds)
    if needs.frames is not None:
        n = int(np.floor(seconds * needs.frames.fps + 1e-6))
        side = needs.frames.size or 480
        h, w = side, int(side * 4 / 3)
        yy, xx = np.mgrid[0:h, 0:w]
        frames = np.empty((n, h, w, 3), np.uint8)
        for i in range(n):
            frames[i, ..., 0] = (xx + 4 * i) % 256
            frames[i, ..., 1] = (yy + 2 * i) % 256
            frames[i, ..., 2] = (8 * i) % 256
        view.frames, view.frame_times = frames, np.arange(n) / needs.frames.fps
    if needs.audio is not None:
        sr = needs.audio.sample_rate
        t = np.arange(int(seconds * sr)) / sr
        view.audio, view.sample_rate = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr
    return view


def face_view(seconds: float, fps: float) -> Any:
    """Frames with a real face (scikit-image's astronaut) for MTCNN, at the face expert's fps."""
    from skimage import data

    from videxperts.extractors.base import MediaView

    img = data.astronaut()
    n = int(seconds * fps)
    return MediaView(video_id="gpu-face", duration=seconds, frames=np.repeat(img[None], n, 0),
                     frame_times=np.arange(n) / fps)


def part_experts(args: argparse.Namespace) -> list[dict]:
    from videxperts.extractors.registry import build_expert, load_profile

    profile = load_profile("paper")
    rows = []
    for name in args.experts.split(","):
        cfg = dict(profile["experts"][name])
        base_bs = int(cfg.get("batch_size", 16))
        try:  # one load per expert (random init of the largest nets takes a while); settings vary below
            expert = build_expert(name, dict(cfg, device=DEVICE.type))
            t0 = time.perf_counter()
            expert.load(DEVICE.type)
            load_s = time.perf_counter() - t0
            view = face_view(args.seconds, cfg.get("fps", 2.0)) if name == "face" else \
                synthetic_view(expert, args.seconds)
        except Exception as e:
            rows.append({"expert": name, "error": f"{type(e).__name__}: {e}"[:300]})
            print(json.dumps(rows[-1]), flush=True)
            continue
        for bs in sorted({max(1, base_bs // 2), base_bs, base_bs * 2}):
            for amp in (False, True):
                row: dict[str, Any] = {"expert": name, "batch_size": bs, "amp": amp, "load_s": load_s}
                try:
                    expert.batch_size, expert.amp = bs, amp
                    expert.extract([view])  # warm-up: cudnn autotune, allocator
                    _sync()
                    times = []
                    with BusySampler() as sampler:
                        for _ in range(args.reps):
                            t0 = time.perf_counter()
                            out = expert.extract([view])
                            _sync()
                            times.append(time.perf_counter() - t0)
                    med = float(np.median(times))
                    row.update(seconds=summarize(times), video_s_per_s=args.seconds / med, busy=sampler.busy,
                               rows=int(out[0].features.shape[0]), dim=int(out[0].features.shape[1]))
                except Exception as e:  # one line per failed configuration; the others still run
                    row["error"] = f"{type(e).__name__}: {e}"[:300]
                    row["trace"] = traceback.format_exc(limit=-6)[-2500:]
                row["peak_mem_gb"] = _reset_memory()
                rows.append(row)
                print(json.dumps(row), flush=True)
        del expert
        _reset_memory()
    return rows


def _fit_worker(rank: int, size: int, backend: str, port: int, out: str, videos: int) -> None:
    import torch.distributed as dist

    from videxperts.training.retrieval.config import load_config
    from videxperts.training.retrieval.data import synthetic_splits
    from videxperts.training.runner import LoopOptions, Reporter, fit

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK="0",
                      RANK=str(rank), WORLD_SIZE=str(size))
    use_gpu = backend != "cpu"
    if size > 1 or backend == "nccl":
        kw = {"device_id": torch.device("cuda", 0)} if backend == "nccl" else {}
        dist.init_process_group(backend if backend != "cpu" else "gloo", rank=rank, world_size=size, **kw)
    cfg = load_config(str(ROOT / "configs/train/demo_ce.yaml"))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=4))
    splits = synthetic_splits(cfg, {"train": videos, "val": videos // 4, "test": videos // 4}, seed=0)
    t0 = time.perf_counter()
    result = fit(cfg, splits, LoopOptions(use_gpu=use_gpu, amp=use_gpu), Reporter())
    seconds = time.perf_counter() - t0
    if rank == 0:
        hist = [{k: v for k, v in h.items() if k.startswith(("train/loss", "val/t2v/Geom", "val/t2v/R1"))}
                for h in result["history"]]
        Path(out).write_text(json.dumps({"history": hist, "seconds": seconds, "test": result["test"]}))
    if dist.is_initialized():
        dist.destroy_process_group()


def part_fit(args: argparse.Namespace) -> list[dict]:
    import tempfile

    import torch.multiprocessing as mp

    rows = []
    with tempfile.TemporaryDirectory() as d:
        runs = (("cpu", 1), ("nccl", 1), ("gloo", 2)) if DEVICE.type == "cuda" else (("cpu", 1),)
        for backend, size in runs:
            out = os.path.join(d, f"{backend}{size}.json")
            row: dict[str, Any] = {"backend": backend, "ranks": size, "device": "cpu" if backend == "cpu" else "cuda",
                                   "amp": backend != "cpu"}
            try:
                mp.spawn(_fit_worker, args=(size, backend, 29500 + len(rows), out, args.fit_videos), nprocs=size,
                         join=True)
                row.update(json.loads(Path(out).read_text()))
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"[:500]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
    ref = rows[0].get("history")
    for row in rows[1:]:
        if ref and row.get("history"):
            row["max_rel_diff_train_loss"] = max(
                abs(a["train/loss"] - b["train/loss"]) / abs(a["train/loss"]) for a, b in zip(ref, row["history"],
                                                                                           strict=True))
            row["max_abs_diff_val_geom"] = max(
                abs(a["val/t2v/Geom"] - b["val/t2v/Geom"]) for a, b in zip(ref, row["history"], strict=True))
    return rows


def part_ce_step(args: argparse.Namespace) -> dict:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "ce_step.json"
        cmd = [sys.executable, str(ROOT / "bench/bench_train_step.py"), "--device", DEVICE.type, "--reps", str(args.reps),
               "--json", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
        print(done.stdout[-4000:], done.stderr[-2000:], flush=True)
        return json.loads(out.read_text()) if out.exists() else {"error": (done.stderr or done.stdout)[-500:]}


def part_steps(args: argparse.Namespace) -> list[dict]:
    from videxperts.training.config import load_config
    from videxperts.training.distributed import to_device
    from videxperts.training.task import task_of

    rows = []
    for path in [p for p in args.configs.split(",") if p]:
        for amp in (False, True):
            row: dict[str, Any] = {"config": path, "amp": amp}
            try:
                cfg = load_config(str(ROOT / path))
                task = task_of(cfg)
                torch.manual_seed(0)
                device = DEVICE
                model = task.build_model(cfg).to(device).train()
                opt, _ = task.build_optimizer(model, cfg)
                step = task.step_module(model, cfg)
                bs = int(cfg.train.batch_size)
                batch = to_device(task.example_batch(cfg, bs), device)
                amp = amp and DEVICE.type == "cuda"
                scaler = torch.amp.GradScaler("cuda", enabled=amp)
                times = []
                for i in range(args.reps + 2):
                    _sync()
                    t0 = time.perf_counter()
                    opt.zero_grad(set_to_none=True)
                    with torch.autocast(DEVICE.type, dtype=torch.float16, enabled=amp):
                        named = step(batch)
                    scaler.scale(named["loss"]).backward()
                    scaler.step(opt)
                    scaler.update()
                    _sync()
                    if i >= 2:
                        times.append(time.perf_counter() - t0)
                med = float(np.median(times))
                row.update(parameters=sum(p.numel() for p in model.parameters()), batch_size=bs,
                           seconds=summarize(times), samples_per_s=bs / med,
                           loss=float(named["loss"].detach()))
                del model, opt, step, batch
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"[:400]
                traceback.print_exc(limit=3)
            row["peak_mem_gb"] = _reset_memory()
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


PARTS = {"experts": part_experts, "fit": part_fit, "ce_step": part_ce_step, "steps": part_steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="experts,fit,ce_step")
    ap.add_argument("--experts", default=",".join(PAPER_EXPERTS))
    ap.add_argument("--seconds", type=float, default=8.0, help="synthetic video length per expert call")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fit-videos", type=int, default=512, help="training videos of the fit part")
    ap.add_argument("--configs", default="", help="training configs for --parts steps (comma-separated)")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of the same code (slow, small --seconds)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA device")
    torch.backends.cudnn.benchmark = True
    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": args.device}
    if DEVICE.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(0), nccl=".".join(map(str, torch.cuda.nccl.version())))
    print(json.dumps(env), flush=True)
    results: dict[str, Any] = {"env": env}
    for part in args.parts.split(","):
        t0 = time.perf_counter()
        try:
            results[part] = PARTS[part](args)
        except Exception as e:
            results[part] = {"error": f"{type(e).__name__}: {e}"[:500]}
            traceback.print_exc(limit=4)
        print(f"== part {part} took {time.perf_counter() - t0:.1f} s", flush=True)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
