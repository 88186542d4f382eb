"""One CE training step, side by side with the published code's algorithm (issue 13, item 5).

Model: the published MSR-VTT CE architecture (configs/train/msrvtt_ce.yaml, 183 M parameters)
on random inputs of the published shapes (batch 64: mean experts ``[B, D]``, VLAD experts
``[B, L, D]``, caption tokens ``[B, 37, 768]``). One step = forward + ranking loss, backward,
optimiser step (Lookahead included). Three sides share one model (its weights keep moving;
only time is measured) and each has its own optimiser state:

* ``original``: the published algorithm as written here from its description: collaborative
  gating expert after expert (``model.compat.sequential_gating``, BatchNorm per pair) and
  Ranger's per-parameter loop (RAdam with decoupled decay, β1 0.95, eps 1e-5; Lookahead
  α 0.5, k 6), one parameter at a time, as `PerParameterRanger` below;
* ``published``: videxperts with the published config as shipped (sequential gating on) and
  its multi-tensor Ranger (`videxperts.training.optim.RAdamW` + `Lookahead`);
* ``clean``: videxperts' default gating (all pairs at once) and the same optimiser.

The optimiser phase is the mean over k = 6 optimiser steps on the same gradients (one whole
Lookahead cycle, so its slow-weight sync is counted once per 6 steps as in training); "step"
= forward + backward + that mean. The sides take turns within each repetition (after one
warm-up repetition, which allocates the optimiser state), so a ratio pairs steps made under
the same load; every figure is the median over repetitions with its min-max spread. Use few repetitions: a step takes seconds on 1 thread.

    .venv/bin/python bench/bench_train_step.py --threads 1 --reps 3
    .venv/bin/python bench/bench_train_step.py --device cuda --reps 5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.optim import Optimizer  # noqa: E402

from bench.report import fmt, ratio, summarize  # noqa: E402

PHASES = ("forward_loss", "backward", "optimizer", "step")
SIDES = ("original", "published", "clean")
LOOKAHEAD_K = 6


class PerParameterRanger(Optimizer):
    """The published Ranger's update, one parameter at a time (the baseline's algorithm):
    p ← p(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; RAdam's rectified step when
    ρ_t > 5, else momentum only; every k steps slow ← slow + α(p − slow), p ← slow."""

    def __init__(self, params: Any, lr: float, weight_decay: float, betas: tuple[float, float] = (0.95, 0.999),
                 eps: float = 1e-5, alpha: float = 0.5, k: int = 6) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "betas": betas, "eps": eps,
                                  "alpha": alpha, "k": k})

    @staticmethod
    def _size(step: int, b1: float, b2: float) -> tuple[float, bool]:
        rho_inf = 2 / (1 - b2) - 1
        rho = rho_inf - 2 * step * b2**step / (1 - b2**step)
        if rho > 5:
            r = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
            return math.sqrt((1 - b2**step) * r) / (1 - b1**step), True
        return 1 / (1 - b1**step), False

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr, wd, (b1, b2), eps = group["lr"], group["weight_decay"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p), slow=p.detach().clone())
                st["step"] += 1
                g, m, v = p.grad, st["m"], st["v"]
                p.mul_(1 - lr * wd)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                size, rectified = self._size(st["step"], b1, b2)
                if rectified:
                    p.addcdiv_(m, v.sqrt().add_(eps), value=-lr * size)
                else:
                    p.add_(m, alpha=-lr * size)
                if st["step"] % group["k"] == 0:
                    st["slow"].add_(p - st["slow"], alpha=group["alpha"])
                    p.copy_(st["slow"])


def check_same_algorithm() -> float:
    """Both optimisers on the same parameters and gradients for 14 steps (both branches of
    RAdam, two Lookahead syncs): the baseline must compute what videxperts' Ranger computes."""
    from videxperts.training.optim import build_optimizer
    from videxperts.training.retrieval.config import OptimConfig

    g = torch.Generator().manual_seed(0)
    init, grads = torch.randn(300, generator=g, dtype=torch.float64), torch.randn(14, 300, generator=g,
                                                                                   dtype=torch.float64)
    a, b = torch.nn.Parameter(init.clone()), torch.nn.Parameter(init.clone())
    opts = (PerParameterRanger([a], lr=0.1, weight_decay=1e-3),
            build_optimizer([b], OptimConfig(name="ranger", lr=0.1, weight_decay=1e-3)))
    for grad in grads:
        for p, opt in zip((a, b), opts, strict=True):
            p.grad = grad.clone()
            opt.step()
    diff = float((a - b).detach().abs().max())
    if diff > 1e-12:
        raise AssertionError(f"the baseline optimiser differs from videxperts' Ranger by {diff}")
    return diff


def _batch(cfg: Any, b: int, device: torch.device) -> tuple:
    g = torch.Generator().manual_seed(0)
    experts, masks = {}, {}
    for name in cfg.expert_names:
        e = cfg.data.experts[name]
        shape = (b, e.max_tokens, e.dim) if e.temporal == "vlad" else (b, e.dim)
        experts[name] = torch.randn(*shape, generator=g).to(device)
        if e.temporal == "vlad":
            masks[name] = torch.ones(b, e.max_tokens, dtype=torch.bool, device=device)
    available = (torch.rand(b, len(cfg.expert_names), generator=g) > 0.2).to(device)
    available[:, 0] = True
    tokens = torch.randn(b, cfg.data.text.max_tokens, cfg.data.text.dim, generator=g).to(device)
    tmask = torch.ones(b, cfg.data.text.max_tokens, dtype=torch.bool, device=device)
    return experts, masks, available, tokens, tmask


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_step(model: Any, opt: Optimizer, batch: tuple, margin: float, device: torch.device) -> dict[str, float]:
    from videxperts.training.retrieval.losses import max_margin_ranking_loss

    _sync(device)
    t0 = time.perf_counter()
    loss = max_margin_ranking_loss(model(*batch), margin)
    _sync(device)
    t1 = time.perf_counter()
    loss.backward()
    _sync(device)
    t2 = time.perf_counter()
    for _ in range(LOOKAHEAD_K):  # a whole Lookahead cycle: exactly one slow-weight sync
        opt.step()
    _sync(device)
    t3 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    optimizer = (t3 - t2) / LOOKAHEAD_K
    return {"forward_loss": t1 - t0, "backward": t2 - t1, "optimizer": optimizer,
            "step": t2 - t0 + optimizer}


def run(args: argparse.Namespace) -> dict:
    from videxperts.training.optim import build_optimizer
    from videxperts.training.retrieval.config import load_config
    from videxperts.training.retrieval.models import build_model

    torch.set_num_threads(args.threads)
    same = check_same_algorithm()
    device = torch.device(args.device)
    cfg = load_config(args.config)
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    params = list(model.parameters())
    opts = {
        "original": PerParameterRanger(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay),
        "published": build_optimizer(params, cfg.optim),
    }
    opts["clean"] = opts["published"]  # the same algorithm: one state saves 3 copies of the model
    sequential = {"original": True, "published": cfg.model.compat.sequential_gating, "clean": False}
    batch = _batch(cfg, args.batch_size, device)
    times: dict[str, dict[str, list[float]]] = {s: {p: [] for p in PHASES} for s in SIDES}
    for rep in range(args.reps + 1):  # repetition 0 warms up (optimiser state, allocator)
        for side in SIDES:
            model.sequential_gating = sequential[side]
            t = _timed_step(model, opts[side], batch, cfg.loss.margin, device)
            if rep:
                for p in PHASES:
                    times[side][p].append(t[p])
    return {
        "config": args.config, "device": str(device), "threads": args.threads, "batch_size": args.batch_size,
        "parameters": sum(p.numel() for p in params), "reps": args.reps, "optimizer_max_abs_diff": same,
        "seconds": {s: {p: summarize(v) for p, v in times[s].items()} for s in SIDES},
        "speedup_vs_original": {s: {p: ratio(times["original"][p], times[s][p]) for p in PHASES}
                                for s in ("published", "clean")},
    }


def print_table(res: dict) -> None:
    print(f"CE training step: {res['config']} ({res['parameters']:,} parameters), batch {res['batch_size']}, "
          f"{res['device']}, {res['threads']} thread(s), {res['reps']} reps: median [min-max]; "
          f"baseline and videxperts optimisers agree to {res['optimizer_max_abs_diff']:.1e} over 14 steps")
    head = f"{'phase':<14}" + "".join(f"{s + ' s':>24}" for s in SIDES) + "".join(
        f"{'original/' + s:>26}" for s in ("published", "clean"))
    print(head)
    for p in PHASES:
        row = f"{p:<14}" + "".join(f"{fmt(res['seconds'][s][p], '.3f'):>24}" for s in SIDES)
        row += "".join(f"{fmt(res['speedup_vs_original'][s][p], '.2f', 'x'):>26}" for s in ("published", "clean"))
        print(row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="msrvtt_ce", help="a shipped training config name or path")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="also write the results (raw values included) to this file")
    args = ap.parse_args()
    res = run(args)
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
