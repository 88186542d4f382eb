"""Per-prefix METEOR reward (BMHRL's bottleneck): the original's plain loop vs the memoised and the pooled versions.

    .venv/bin/python bench/bench_caption_reward.py [--reps 5] [--batch 16] [--words 14] [--json]

One batch of ``--batch`` samples, each a sampled hypothesis of ``--words`` tokens scored against
its reference at every prefix (B·(n−1) NLTK METEOR calls), as one training iteration does. The
three sides take turns in every repetition and must return identical floats (checked); ratios are
paired per repetition. The memoised caches persist across iterations, as they do in training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import fmt, ratio, summarize  # noqa: E402
from videxperts.training.captioning.rewards import PrefixMeteor, plain_prefix_meteor, wordnet_source  # noqa: E402

WORDS = ("a man is playing the guitar on stage while people watch and clap woman dog runs across field "
         "then jumps into water ball kicks players team scores goal person rides bike down street cars "
         "drive past camera shows close up of hands cutting vegetables kitchen knife board cooking").split()


def batch(rng: np.random.Generator, b: int, n: int) -> tuple[list[str], list[list[str]], list[int]]:
    refs = [" ".join(rng.choice(WORDS, n)) for _ in range(b)]
    hyps = [list(rng.choice(WORDS, n)) for _ in range(b)]
    return refs, hyps, [n + 1] * b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--words", type=int, default=14)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    cached, pooled = PrefixMeteor(0), PrefixMeteor(a.processes)
    times: dict[str, list[float]] = {"plain": [], "memoised": [], f"pool x{a.processes}": []}
    pooled(*batch(rng, 4, 4))  # start the pool outside the timing
    for _ in range(a.reps):
        refs, hyps, lengths = batch(rng, a.batch, a.words)
        t = time.perf_counter()
        plain = [plain_prefix_meteor(r, h, n) for r, h, n in zip(refs, hyps, lengths, strict=True)]
        times["plain"].append(time.perf_counter() - t)
        t = time.perf_counter()
        fast = cached(refs, hyps, lengths)
        times["memoised"].append(time.perf_counter() - t)
        t = time.perf_counter()
        par = pooled(refs, hyps, lengths)
        times[f"pool x{a.processes}"].append(time.perf_counter() - t)
        assert fast == plain and par == plain, "rewards differ from the plain loop"
    pooled.close()
    calls = a.batch * a.words
    out = {k: {"seconds": summarize(v), "speedup": ratio(times["plain"], v)} for k, v in times.items()}
    if a.json:
        print(json.dumps({"calls_per_batch": calls, "synonyms": wordnet_source()[1], "results": out}, indent=1))
        return
    print(f"per-prefix METEOR, {a.batch} samples x {a.words} prefixes = {calls} calls per batch; "
          f"synonyms: {wordnet_source()[1]}; values identical to the plain loop: yes")
    print(f"{'variant':<12} {'ms / batch':>26} {'speed-up vs plain':>26}")
    for k, v in out.items():
        print(f"{k:<12} {fmt(summarize([x * 1000 for x in times[k]]), '.1f'):>26} {fmt(v['speedup'], '.2f', 'x'):>26}")


if __name__ == "__main__":
    main()
