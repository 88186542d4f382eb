"""Optimisers and schedules: Ranger (RAdam + Lookahead), RAdam, Adam; StepLR(1, γ)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import StepLR

from videxperts.errors import UserError


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
            for p, s in zip(self._params(), self.slow, strict=True):
                s.add_(p - s, alpha=self.alpha)
                p.copy_(s)
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
    """`ranger` = RAdam with decoupled weight decay (as the Ranger code applies it) + Lookahead
    (α=0.5, k=6); `radam` and `adam` use plain L2 weight decay."""
    name, lr, wd = optim_cfg.name, optim_cfg.lr, optim_cfg.weight_decay
    if name == "ranger":
        return Lookahead(torch.optim.RAdam(params, lr=lr, weight_decay=wd, decoupled_weight_decay=True),
                         alpha=0.5, k=6)
    if name == "radam":
        return torch.optim.RAdam(params, lr=lr, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    raise UserError(f"optim.name: unknown optimiser {name!r} (choose from ranger, radam, adam)")


def build_scheduler(optimizer: Optimizer, optim_cfg: Any) -> StepLR:
    """StepLR(step_size=1, gamma=step_gamma): call `.step()` once per epoch."""
    return StepLR(optimizer, step_size=1, gamma=optim_cfg.step_gamma)
