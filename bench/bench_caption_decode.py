"""Greedy caption decoding: the original's full re-run of the prefix at every step vs the cached one.

    .venv/bin/python bench/bench_caption_decode.py [--reps 5] [--arch bmhrl] [--batch 8] [--json]

A BMHRL agent (or BMT) with the published caption side (d_caps 300, 2 layers, 4 heads) and a
smaller feature side (``--d-model``), random weights, ``</s>`` suppressed so every sequence runs
the full 30 steps; both decoders must emit the same tokens (checked). Ratios are paired per
repetition (the two sides take turns).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import fmt, ratio, summarize  # noqa: E402
from videxperts.training.captioning.config import parse_config  # noqa: E402
from videxperts.training.captioning.decode import greedy, greedy_full  # noqa: E402
from videxperts.training.captioning.models import BMHRLSystem, BMTCaptioner  # noqa: E402
from videxperts.training.captioning.vocab import EOS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--arch", choices=("bmhrl", "bmt"), default="bmhrl")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--max-len", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = parse_config({"task": "captioning", "name": "bench", "model": {
        "arch": a.arch, "vocab_size": a.vocab, "d_vid": 1024, "d_aud": 128, "d_model": a.d_model, "ff_vid": a.d_model,
        "critic": {"hidden": 64, "lstm_layers": 1, "gru_layers": 1}}}, "<bench>")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = (BMHRLSystem(cfg).agent if a.arch == "bmhrl" else BMTCaptioner(cfg)).eval()
    proj = model.worker_proj if a.arch == "bmhrl" else model.generator
    with torch.no_grad():
        proj.bias[EOS] = -1e4
        v, au = torch.rand(a.batch, 20, 1024), torch.rand(a.batch, 50, 128)
        mem = model.encode(v, au)
    greedy(model, mem, a.batch, a.max_len)  # warm-up
    times: dict[str, list[float]] = {"full re-run": [], "cached": []}
    for _ in range(a.reps):
        t = time.perf_counter()
        full = greedy_full(model, mem, a.batch, a.max_len)
        times["full re-run"].append(time.perf_counter() - t)
        t = time.perf_counter()
        inc = greedy(model, mem, a.batch, a.max_len)
        times["cached"].append(time.perf_counter() - t)
        assert torch.equal(full, inc), "the cached decoder emitted other tokens"
    out = {k: {"seconds": summarize(v), "speedup": ratio(times["full re-run"], v)} for k, v in times.items()}
    if a.json:
        print(json.dumps({"arch": a.arch, "batch": a.batch, "steps": a.max_len, "results": out}, indent=1))
        return
    print(f"{a.arch} greedy decoding, batch {a.batch}, {a.max_len} steps, torch threads {torch.get_num_threads()}; "
          "identical tokens: yes")
    print(f"{'decoder':<12} {'ms / batch':>26} {'speed-up':>22}")
    for k, v in out.items():
        print(f"{k:<12} {fmt(summarize([x * 1000 for x in times[k]]), '.1f'):>26} {fmt(v['speedup'], '.2f', 'x'):>22}")


if __name__ == "__main__":
    main()
