"""Start a captioner from another run's weights (``model.init_checkpoint``).

The published BMHRL run does not start from scratch: it loads a separately warm-started
checkpoint (``--rl_pretrained_model_dir``) and then runs its own schedule. Here that checkpoint is
the ``model.pt`` of a videxperts run of the same architecture and dims (for example a BMHRL run
with ``train.epochs`` equal to ``rl.warmstart_epochs``), or a bare state_dict; every weight must
fit, so a wrong file is one line, never a half-initialised model.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from videxperts.errors import UserError


def load_initial_weights(model: nn.Module, cfg: Any) -> None:
    from videxperts.training.checkpoint import read_weights

    where = f"{cfg.source}: model.init_checkpoint"
    try:
        state, run_cfg = read_weights(cfg.model.init_checkpoint)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None
    arch = (run_cfg.get("model") or {}).get("arch") if isinstance(run_cfg, dict) else None
    if arch is not None and arch != cfg.model.arch:
        raise UserError(f"{where}: {cfg.model.init_checkpoint}: a {arch} checkpoint cannot start a "
                        f"{cfg.model.arch} model")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: {cfg.model.init_checkpoint}: does not fit this model "
                        f"({str(exc).splitlines()[0][:200]})") from None
