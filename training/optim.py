"""Optimisers and schedules: Ranger (RAdam + Lookahead), RAdam, Adam; StepLR(1, γ)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import StepLR

from videxperts.errors import UserError

# The published Ranger's settings (its defaults, which the CE configs used unchanged).
RANGER_BETAS = (0.95, 0.999)
RANGER_EPS = 1e-5
RANGER_ALPHA, RANGER_K = 0.5, 6
RADAM_THRESHOLD = 5.0  # rectify only when the SMA length ρ_t exceeds 5 (as RAdam and Ranger)


def radam_step_size(step: int, beta1: float, beta2: float) -> tuple[float, bool]:
    """RAdam's per-step multiplier of lr and whether the adaptive (rectified) form applies.

    ρ∞ = 2/(1−β2) − 1, ρ_t = ρ∞ − 2tβ2^t/(1−β2^t). Rectified (ρ_t > 5):
    √((1−β2^t)(ρ_t−4)(ρ_t−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρ_t)) / (1−β1^t), applied to m/(√v+eps);
    otherwise 1/(1−β1^t), applied to m (SGD with momentum).
    """
    b1t, b2t = beta1**step, beta2**step
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * step * b2t / (1.0 - b2t)
    if rho_t > RADAM_THRESHOLD:
        rect = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        return math.sqrt((1.0 - b2t) * rect) / (1.0 - b1t), True
    return 1.0 / (1.0 - b1t), False


class RAdamW(Optimizer):
    """RAdam with decoupled weight decay, the update rule inside the published Ranger.

    Per step: p ← p(1 − lr·wd); m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²; then
    p ← p − lr·s·m/(√v + eps) when rectified, else p ← p − lr·s·m (s from `radam_step_size`).
    torch's RAdam computes the same rule but runs its per-parameter loop on CPU, several
    times slower. Here small tensors are updated together with multi-tensor ops, and large
    ones block by block so each element is read from memory once per step, not once per
    operation (`_update`; bench/bench_train_step.py); once rectified, large CPU tensors go
    through torch's fused AdamW kernel with mapped hyperparameters (`_fused_rectified`), one
    pass over memory per step.
    """

    def __init__(self, params: Iterable[Any], lr: float, betas: tuple[float, float] = RANGER_BETAS,
                 eps: float = RANGER_EPS, weight_decay: float = 0.0) -> None:
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"RAdamW: invalid lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    def _buckets(self, group: dict[str, Any]) -> dict[int, tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]]:
        """Parameters with a gradient, their state advanced one step, grouped by step count."""
        out: dict[int, tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError("RAdamW does not support sparse gradients")
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["step"] += 1
            ps, gs, ms, vs = out.setdefault(st["step"], ([], [], [], []))
            ps.append(p)
            gs.append(p.grad)
            ms.append(st["exp_avg"])
            vs.append(st["exp_avg_sq"])
        return out

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            hyper = (group["lr"], *group["betas"], group["eps"], group["weight_decay"])
            for step, tensors in self._buckets(group).items():
                small, large = _split_by_size(tensors)
                if small[0]:
                    _update(*small, step, *hyper)
                if large[0] and FUSED and radam_step_size(step, *group["betas"])[1]:
                    _fused_rectified(*large, step, *hyper)
                    continue
                for p, g, m, v in zip(*large, strict=True):
                    flat = [t.view(-1) for t in (p, g, m, v)]
                    for sl in _blocks(p.numel()):
                        _update_block(*(t[sl] for t in flat), step, *hyper)
        return loss


BLOCK = 1 << 17  # elements per cache block: p, g, m, v and the denominator (2.5 MB) stay in cache

Tensors = tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor]]


def _split_by_size(tensors: Tensors) -> tuple[Tensors, Tensors]:
    """(tensors updated together with foreach ops, large contiguous ones updated block by block).

    Blocking pays only on CPU, where the update is memory bound and a block stays in cache; on
    a GPU each block would cost a kernel launch per operation (thousands per step for 183 M
    parameters: 8x slower than the per-parameter loop it replaces), so there every tensor
    takes the multi-tensor path."""
    small: Tensors = ([], [], [], [])
    large: Tensors = ([], [], [], [])
    for quad in zip(*tensors, strict=True):
        big = quad[0].device.type == "cpu" and quad[0].numel() > BLOCK and all(t.is_contiguous() for t in quad)
        for dst, t in zip(large if big else small, quad, strict=True):
            dst.append(t)
    return small, large


def _blocks(n: int) -> list[slice]:
    return [slice(s, min(s + BLOCK, n)) for s in range(0, n, BLOCK)]


def _update_block(p: Tensor, g: Tensor, m: Tensor, v: Tensor, step: int,
                  lr: float, b1: float, b2: float, eps: float, wd: float) -> None:
    """`_update` on one block with plain tensor methods (the same kernels as the multi-tensor
    ops' CPU path, so the same bits, with less call overhead per block)."""
    if wd:
        p.mul_(1.0 - lr * wd)
    m.lerp_(g, 1.0 - b1)
    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
    size, rectified = radam_step_size(step, b1, b2)
    if rectified:
        p.addcdiv_(m, v.sqrt().add_(eps), value=-lr * size)
    else:
        p.add_(m, alpha=-lr * size)


FUSED = hasattr(torch, "_fused_adamw_")  # torch's one-pass AdamW kernel (taken by the large CPU tensors)


def _fused_rectified(ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], vs: list[Tensor], step: int,
                     lr: float, b1: float, b2: float, eps: float, wd: float) -> None:
    """A rectified RAdamW step (ρ_t > 5) through torch's fused AdamW kernel, which reads and
    writes each element once per step (the blocked path still makes six passes over a block).

    AdamW's rule with lr_f, eps_f, wd_f at step t is p ← p(1 − lr_f·wd_f), then
    p ← p − lr_f/(1−β1^t)·m/(√v/√(1−β2^t) + eps_f) = p − lr_f·√(1−β2^t)/(1−β1^t)·m/(√v + eps_f·√(1−β2^t)).
    RAdamW's is p ← p(1 − lr·wd), then p ← p − lr·√((1−β2^t)·r)/(1−β1^t)·m/(√v + eps). They are
    the same rule for lr_f = lr·√r, eps_f = eps/√(1−β2^t), wd_f = wd/√r (equal up to float
    rounding; tests/training/test_losses_optim.py)."""
    size, _ = radam_step_size(step, b1, b2)
    bc1, bc2 = 1.0 - b1**step, 1.0 - b2**step
    sqrt_r = size * bc1 / math.sqrt(bc2)
    steps = [torch.tensor(float(step))] * len(ps)
    torch._fused_adamw_(ps, gs, ms, vs, [], steps, lr=lr * sqrt_r, beta1=b1, beta2=b2,
                        weight_decay=wd / sqrt_r, eps=eps / math.sqrt(bc2), amsgrad=False, maximize=False,
                        grad_scale=None, found_inf=None)


def _update(ps: list[Tensor], gs: list[Tensor], ms: list[Tensor], vs: list[Tensor], step: int,
            lr: float, b1: float, b2: float, eps: float, wd: float) -> None:
    """One RAdamW step on these tensors (element-wise, so a block gives the same bits as the
    whole tensor). Running every operation on one cache-sized block before the next block
    reads each tensor from memory once instead of once per operation: the update is memory
    bound on CPU."""
    if wd:
        torch._foreach_mul_(ps, 1.0 - lr * wd)
    torch._foreach_lerp_(ms, gs, 1.0 - b1)
    torch._foreach_mul_(vs, b2)
    torch._foreach_addcmul_(vs, gs, gs, value=1.0 - b2)
    size, rectified = radam_step_size(step, b1, b2)
    if rectified:
        denom = torch._foreach_sqrt(vs)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(ps, ms, denom, value=-lr * size)
    else:
        torch._foreach_add_(ps, ms, alpha=-lr * size)


class Lookahead(Optimizer):
    """Lookahead (Zhang et al. 2019) around any optimiser: every k steps the slow weights move
    α of the way to the fast weights and the fast weights are reset to them.

    Shares `param_groups` with the inner optimiser, so LR schedulers act on both. The slow
    weights are taken from the parameters at the first step (so loading model weights after
    building the optimiser is safe) and are part of `state_dict`, so a resumed run continues
    bit for bit.
    """

    def __init__(self, base: Optimizer, alpha: float = 0.5, k: int = 6) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"Lookahead alpha must be in (0, 1], got {alpha}")
        if k < 1:
            raise ValueError(f"Lookahead k must be >= 1, got {k}")
        super().__init__(base.param_groups, base.defaults)  # sets up hooks and bookkeeping
        self.base = base
        self.param_groups = base.param_groups  # shared: schedulers change both
        self.defaults = base.defaults
        self.alpha, self.k = alpha, k
        self.steps = 0
        self.slow: list[torch.Tensor] | None = None

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        if self.slow is None:
            self.slow = [p.detach().clone() for p in self._params()]
        loss = self.base.step(closure)
        self.steps += 1
        if self.steps % self.k == 0:
            params = self._params()
            torch._foreach_lerp_(self.slow, params, self.alpha)  # s ← s + α(p − s)
            torch._foreach_copy_(params, self.slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {
            "base": self.base.state_dict(),
            "lookahead": {"alpha": self.alpha, "k": self.k, "steps": self.steps,
                          "slow": None if self.slow is None else [s.clone() for s in self.slow]},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        self.base.load_state_dict(state_dict["base"])
        self.param_groups = self.base.param_groups  # load_state_dict replaced the base's list
        la = state_dict["lookahead"]
        self.alpha, self.k, self.steps = la["alpha"], la["k"], la["steps"]
        if la["slow"] is None:
            self.slow = None
        else:
            params = self._params()
            if len(params) != len(la["slow"]):
                raise ValueError(f"Lookahead state has {len(la['slow'])} slow tensors, model has {len(params)}")
            self.slow = [s.to(device=p.device, dtype=p.dtype).clone() for p, s in zip(params, la["slow"], strict=True)]


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict], optim_cfg: Any) -> Optimizer:
    """`ranger` = the published Ranger: RAdam with decoupled weight decay, β1 0.95, eps 1e-5
    (`RAdamW`) + Lookahead (α 0.5, k 6); `radam` and `adam` are torch's, with plain L2 weight
    decay and torch's defaults."""
    name, lr, wd = optim_cfg.name, optim_cfg.lr, optim_cfg.weight_decay
    if name == "ranger":
        return Lookahead(RAdamW(params, lr=lr, betas=RANGER_BETAS, eps=RANGER_EPS, weight_decay=wd),
                         alpha=RANGER_ALPHA, k=RANGER_K)
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    raise UserError(f"optim.name: unknown optimiser {name!r} (choose from ranger, radam, adam)")


def build_scheduler(optimizer: Optimizer, optim_cfg: Any) -> StepLR:
    """StepLR(step_size=1, gamma=step_gamma): call `.step()` once per epoch."""
    return StepLR(optimizer, step_size=1, gamma=optim_cfg.step_gamma)
