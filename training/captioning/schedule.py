"""Which phase each epoch trains (spec section 2.4) and whether the manager explores.

Epochs here are 0-based (the original's numbering; the harness's epoch e is e−1 here).

* intended: W warm-start epochs, then worker and manager epochs alternating (worker first unless
  ``rl.train_worker_first`` is false); exploration exactly in manager epochs.
* ``compat.warmstart_schedule`` (the original): warm-start runs W+1 epochs when W ≥ 1 and the
  worker/manager flag toggles at the end of every epoch, warm-start included — W = 1: warm, warm,
  W, M, …; W = 2: warm, warm, warm, M, W, …
* ``compat.stale_exploration_flag`` (the original): warm-start epochs explore until the first
  evaluation, which happens after epoch 1 (so epochs 0 and 1 explore).
"""

from __future__ import annotations

PHASES = ("warm", "worker", "manager")
# optimiser groups trained in each phase (BMHRL); BMT trains everything in "warm"
PHASE_GROUPS = {
    "warm": ("enc", "worker_fus", "manager_fus", "manager", "worker", "worker_value", "manager_value"),
    "worker": ("enc", "worker_fus", "worker", "worker_value"),
    "manager": ("manager_fus", "manager", "manager_value"),
}


def phase_of(epoch: int, warmstart_epochs: int, worker_first: bool = True, original: bool = False) -> str:
    w = warmstart_epochs
    if original:
        if w >= 1 and epoch <= w:
            return "warm"
        worker = (epoch % 2 == 0) == worker_first
    else:
        if epoch < w:
            return "warm"
        worker = ((epoch - w) % 2 == 0) == worker_first
    return "worker" if worker else "manager"


def explores(epoch: int, phase: str, stale_flag: bool = False) -> bool:
    if phase == "manager":
        return True
    return phase == "warm" and stale_flag and epoch <= 1


def phases(epochs: int, warmstart_epochs: int, worker_first: bool = True, original: bool = False) -> list[str]:
    return [phase_of(e, warmstart_epochs, worker_first, original) for e in range(epochs)]
