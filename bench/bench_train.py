"""Training throughput: the Ray Train/DDP loop against a plain single-process PyTorch loop.

Model: the published MSR-VTT CE architecture (configs/train/msrvtt_ce.yaml, 183 M parameters)
on random features of the published dimensions (videxperts.training.retrieval.data.synthetic_splits). Each mode runs
in its own subprocess so peak memory is that mode's own:

* ``plain``: build_model + Ranger + ranking loss, a bare loop over batches (no Ray, no DDP);
* ``fit``: this project's loop (videxperts.training.runner.fit) in-process, 1 worker, no Ray;
* ``ray``: the same loop under Ray Train's TorchTrainer with N workers (DDP, gathered loss/BN).

Reported per mode: epoch time of the last epoch (the first pays for warm-up), samples/s per
worker, total samples/s, ratio to the plain loop, peak RSS per process (and peak GPU memory).
Every mode's subprocess is repeated ``--reps`` times, the modes taking turns within each
repetition so that a ratio to the plain loop pairs runs made under the same load; each figure
is the median over repetitions with its min-max spread. The plot (samples/s per worker and
total, peak RSS) goes to ``--plots-dir``/train.png.

    .venv/bin/python bench/bench_train.py --videos 128 --epochs 2 --workers 1,2 --threads 1 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import Panel, add_plots_arg, bar_chart, fmt, ratio, summarize  # noqa: E402

LABELS = {"plain": "plain PyTorch loop", "fit": "videxperts.training.runner.fit, no Ray", "ray": "Ray Train"}
FIGURES = ("epoch_time_s", "samples_per_s_worker", "total_samples_per_s", "peak_rss_mb", "peak_gpu_mb")


def _cfg(args: argparse.Namespace):
    import yaml

    from videxperts.training.retrieval.config import load_config

    d = yaml.safe_load((ROOT / args.config).read_text())
    d["data"]["text"]["max_captions"] = 2  # one caption is sampled per video per batch anyway
    d["train"]["epochs"] = args.epochs
    d["train"]["batch_size"] = args.batch_size
    return load_config(d)


def _splits(cfg, args):
    from videxperts.training.retrieval.data import synthetic_splits

    return synthetic_splits(cfg, {"train": args.videos}, captions=2, seed=0)


def run_plain(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from videxperts.training.optim import build_optimizer
    from videxperts.training.retrieval.losses import max_margin_ranking_loss
    from videxperts.training.retrieval.models import build_model
    from videxperts.training.runner import peak_rss_mb

    cfg = _cfg(args)
    train = _splits(cfg, args)["train"]
    device = torch.device("cuda" if args.gpu and torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = build_optimizer(model.parameters(), cfg.optim)
    vids, caps = np.arange(len(train)), np.zeros(len(train), dtype=np.int64)
    times = []
    for epoch in range(args.epochs):
        order = np.random.default_rng(epoch).permutation(vids)
        t0 = time.perf_counter()
        for s in range(0, len(order) - 1, cfg.train.batch_size):
            v = order[s : s + cfg.train.batch_size]
            feats, masks, avail = train.video_batch(v)
            tokens, tmask = train.text_batch(v, caps[v])
            to = {k: x.to(device) for k, x in feats.items()}
            mo = {k: x.to(device) for k, x in masks.items()}
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                sims = model(to, mo, avail.to(device), tokens.to(device), tmask.to(device))
            loss = max_margin_ranking_loss(sims.float(), cfg.loss.margin)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    out = {"mode": "plain", "workers": 1, "epoch_time_s": times[-1], "samples_per_s_worker": len(train) / times[-1],
           "peak_rss_mb": peak_rss_mb()}
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def run_fit(args: argparse.Namespace) -> dict:
    from videxperts.training.runner import LoopOptions, Reporter, fit

    cfg = _cfg(args)
    result = fit(cfg, _splits(cfg, args), LoopOptions(use_gpu=args.gpu), Reporter())
    return _from_history("fit", 1, result["history"])


def run_ray(args: argparse.Namespace) -> dict:
    import ray

    from videxperts.training.runner import LoopOptions, read_result, run_ray_training

    cfg = _cfg(args)
    ray.init(num_cpus=max(2, args.n), include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_ray_training(cfg, {"kind": "arrays", "splits": _splits(cfg, args)}, LoopOptions(use_gpu=args.gpu),
                               num_workers=args.n, storage_path=tmp, name="bench", max_failures=0)
        result, _, _ = read_result(res.checkpoint.to_directory(str(Path(tmp) / "out")))
    return _from_history("ray", args.n, result["history"])


def _from_history(mode: str, workers: int, history: list[dict]) -> dict:
    last = history[-1]
    out = {"mode": mode, "workers": workers, "epoch_time_s": last["train/epoch_time_s"],
           "samples_per_s_worker": last["train/samples_per_s_worker"], "peak_rss_mb": last["train/peak_rss_mb"]}
    if "train/peak_gpu_mb" in last:
        out["peak_gpu_mb"] = last["train/peak_gpu_mb"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/train/msrvtt_ce.yaml")
    ap.add_argument("--videos", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", default="1,2", help="Ray worker counts to measure")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads of the in-process modes (Ray gives each CPU worker 1)")
    ap.add_argument("--modes", default="plain,fit,ray", help="which modes to run")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every mode (median and min-max)")
    ap.add_argument("--out", default="bench/results/train.json")
    add_plots_arg(ap, "train.png")
    ap.add_argument("--mode", choices=["plain", "fit", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:  # child process: one measurement, one JSON line
        import torch

        if args.mode != "ray":
            torch.set_num_threads(args.threads)
        print("RESULT " + json.dumps({"plain": run_plain, "fit": run_fit, "ray": run_ray}[args.mode](args)))
        return
    if args.reps < 1:
        sys.exit(f"bench_train: --reps must be >= 1, got {args.reps}")
    base = [sys.executable, __file__, "--config", args.config, "--videos", str(args.videos), "--epochs",
            str(args.epochs), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    base += ["--gpu"] if args.gpu else []
    modes = args.modes.split(",")
    plans = [["--mode", m] for m in ("plain", "fit") if m in modes]
    plans += [["--mode", "ray", "--n", w] for w in args.workers.split(",")] if "ray" in modes else []
    runs: dict[tuple[str, int], list[dict | None]] = {}
    for rep in range(args.reps):
        for plan in plans:
            proc = subprocess.run(base + plan, capture_output=True, text=True, check=False)  # noqa: S603
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            key = (plan[1], int(plan[3]) if len(plan) > 2 else 1)
            if line is None:  # keep the slot, so repetitions stay paired with the plain loop's
                print(f"rep {rep + 1}: {' '.join(plan)} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                runs.setdefault(key, []).append(None)
                continue
            r = json.loads(line[7:])
            r["total_samples_per_s"] = r["samples_per_s_worker"] * r["workers"]
            runs.setdefault(key, []).append(r)
            print(f"rep {rep + 1}/{args.reps}: {json.dumps(r)}", file=sys.stderr, flush=True)
    rows = summarise(runs)
    if not rows:
        sys.exit("bench_train: every run failed (see the errors above)")
    plot = chart(rows, Path(args.plots_dir) / "train.png", args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(sys.argv), "reps": args.reps,
                                          "loadavg": [round(x, 1) for x in os.getloadavg()], "rows": rows,
                                          "plot": str(plot)}, indent=1))
    print(f"{args.reps} reps, median [min-max]; plot: {plot}")
    print("| mode | workers | epoch time (s) | samples/s per worker | total samples/s | vs plain | "
          "peak RSS/process (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ratio_s = fmt(r["ratio_vs_plain"], unit="x") if r.get("ratio_vs_plain") else "-"
        print(f"| {LABELS[r['mode']]} | {r['workers']} | {fmt(r['epoch_time_s'])} | "
              f"{fmt(r['samples_per_s_worker'], '.1f')} | {fmt(r['total_samples_per_s'], '.1f')} | {ratio_s} | "
              f"{fmt(r['peak_rss_mb'], '.0f')} |")


def summarise(runs: dict[tuple[str, int], list[dict | None]]) -> list[dict]:
    """Median [min-max] per mode; the ratio to the plain loop is taken per repetition (same load)."""
    plain = runs.get(("plain", 1))
    rows = []
    for (mode, workers), rs in runs.items():
        ok = [r for r in rs if r]
        if not ok:
            continue
        row = {"mode": mode, "workers": workers, "runs": ok}
        row.update({k: summarize([r[k] for r in ok]) for k in FIGURES if k in ok[0]})
        if plain:
            pairs = [(r, p) for r, p in zip(rs, plain, strict=True) if r and p]
            if pairs:
                row["ratio_vs_plain"] = ratio([r["total_samples_per_s"] for r, _ in pairs],
                                              [p["samples_per_s_worker"] for _, p in pairs])
        rows.append(row)
    return rows


def chart(rows: list[dict], path: Path, args: argparse.Namespace) -> Path:
    names = {(r["mode"], r["workers"]): f"{r['mode']}, {r['workers']} worker{'s' * (r['workers'] > 1)}" for r in rows}
    return bar_chart(path, [
        Panel("training throughput", "samples/s",
              {names[r["mode"], r["workers"]]: {"per worker": r["samples_per_s_worker"],
                                                "total": r["total_samples_per_s"]} for r in rows}),
        Panel("peak memory", "peak RSS per process (MiB)",
              {names[r["mode"], r["workers"]]: r["peak_rss_mb"] for r in rows}),
    ], title=f"{Path(args.config).stem}, {args.videos} videos, batch {args.batch_size}, "
             f"{args.reps} reps (median, min-max)")

if __name__ == "__main__":
    main()
