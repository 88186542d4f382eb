"""DCPG's attention policy per batch: the published step-by-step loop against the fused loop.

The policy walks T elements (36 regions, or 87 word slots) with a GRUCell and two heads per
step. ``loop``: the GRUCell and both head Linears on [x_t ; h_t] at every step, as published.
``fused``: the input halves of the GRUCell and of both heads are computed for all T steps in
one matmul each before the loop (``model.policy.fused: true``); only the h-dependent halves stay
in the loop. Same weights and the same random draws: the outputs agree (checked every run, max
abs difference printed). The two sides take turns within each repetition (paired under the same
load); figures are median [min-max] over repetitions; forward only and forward+backward of the
policy's log-probs and output (training mode, with noise).

    .venv/bin/python bench/bench_matching_policy.py --threads 1 --reps 5
    .venv/bin/python bench/bench_matching_policy.py --dim 2048 --batch 128 --device cuda   # published sizes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.report import fmt, ratio, summarize  # noqa: E402
from videxperts.training.matching.layers import AttentionPolicy, PolicyNoise  # noqa: E402


def _time(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=512, help="element width (2048 published image branch, 300 text)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=36)
    ap.add_argument("--bins", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    loop = AttentionPolicy(args.dim, 2, args.bins, 0.8, 20.0).to(device)
    fused = AttentionPolicy(args.dim, 2, args.bins, 0.8, 20.0, fused=True).to(device)
    fused.load_state_dict(loop.state_dict())
    x = torch.randn(args.batch, args.steps, args.dim, device=device, requires_grad=True)
    noise = PolicyNoise.draw((args.batch, args.steps, 2, args.bins), None, device)
    (a, ta), (b, tb) = loop(x, noise), fused(x, noise)
    diff = max(float((a - b).detach().abs().max()), float((ta.discrete_logp - tb.discrete_logp).detach().abs().max()))

    def fwd(p):
        with torch.no_grad():
            p(x, noise)

    def fwd_bwd(p):
        out, tr = p(x, noise)
        (out.sum() + tr.discrete_logp.sum() + tr.continuous_logp.sum()).backward()

    times: dict[str, list[float]] = {f"{k}/{s}": [] for k in ("forward", "forward+backward") for s in ("loop", "fused")}
    for rep in range(args.reps + 1):  # the first repetition warms up
        for kind, fn in (("forward", fwd), ("forward+backward", fwd_bwd)):
            for side, pol in (("loop", loop), ("fused", fused)):
                t = _time(lambda pol=pol, fn=fn: fn(pol), device)
                if rep:
                    times[f"{kind}/{side}"].append(t)
    out = {"args": vars(args), "max_abs_diff": diff, "times_s": {k: summarize(v) for k, v in times.items()},
           "speedup": {k: ratio(times[f"{k}/loop"], times[f"{k}/fused"]) for k in ("forward", "forward+backward")}}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"policy loop: B={args.batch} T={args.steps} D={args.dim} bins={args.bins} device={args.device} "
          f"threads={args.threads}; max |loop - fused| = {diff:.2e}")
    print(f"{'phase':<18} {'loop ms':>24} {'fused ms':>24} {'loop/fused':>22}")
    for k in ("forward", "forward+backward"):
        ms = {s: {**summarize([v * 1000 for v in times[f'{k}/{s}']])} for s in ("loop", "fused")}
        print(f"{k:<18} {fmt(ms['loop'], '.1f'):>24} {fmt(ms['fused'], '.1f'):>24} "
              f"{fmt(out['speedup'][k], '.2f', 'x'):>22}")


if __name__ == "__main__":
    main()
