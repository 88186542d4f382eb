"""The segment critic's boundary labels (rule-based labeller) and loading its checkpoint into the agent.

Labels: 1 at an input position means "a segment ends at this token". The original's critic was
trained on Charades captions with per-word labels that were never released; videxperts labels
captions by rule (:func:`boundary_labels`): a clause ends at the word before a clause connective
(``and``, ``then``, ``while``, ``after``, ``before``, ``as``, ``when``, ``until``, ``but``, ``so``)
or a clause punctuation mark (``,`` ``;`` ``.``), and at the caption's last word. Synthetic
captions built from clauses joined by these connectives are labelled exactly by it.

The checkpoint is a ``model.pt`` of a ``task: segment_critic`` run or a bare state_dict of
``SegmentCritic``.

The original requires the file to build the agent at all (compat.critic_required); here a
missing checkpoint leaves the critic at its seeded initialisation, which a warning names.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from videxperts.errors import UserError

CONNECTIVES = frozenset({"and", "then", "while", "after", "before", "as", "when", "until", "but", "so",
                         ",", ";", "."})
_SPECIAL_IDS = 4


def boundary_labels(tokens: list[int], itos: list[str]) -> list[int]:
    """Per *input* position of ``<s> w1 .. wn </s>`` minus its last token: 1 where a clause ends."""
    inp = tokens[:-1]
    out = [0] * len(inp)
    words = [itos[t] if t < len(itos) else "" for t in tokens]
    for i in range(1, len(inp)):
        if tokens[i] < _SPECIAL_IDS or words[i] in CONNECTIVES:
            continue
        nxt = words[i + 1] if i + 1 < len(tokens) else "</s>"
        if nxt in CONNECTIVES or tokens[i + 1] == 3:
            out[i] = 1
    return out


def load_critic(critic: nn.Module, cfg: Any) -> None:
    path = cfg.model.critic.checkpoint
    if not path:
        if cfg.model.compat.critic_required:
            raise UserError(f"{cfg.source}: model.critic.checkpoint: the agent needs a trained segment critic "
                            "(compat.critic_required); train one with a critic config or turn the switch off")
        warnings.warn("model.critic.checkpoint is not set: the segment critic keeps its seeded initialisation",
                      stacklevel=2)
        return
    from videxperts.training.checkpoint import read_weights

    try:
        state, _ = read_weights(path)  # a model.pt of a `task: segment_critic` run, or a bare state_dict
    except UserError as exc:
        raise UserError(f"{cfg.source}: model.critic.checkpoint: {exc}") from None
    if any(k.startswith("critic.") for k in state):
        state = {k[len("critic."):]: v for k, v in state.items() if k.startswith("critic.")}
    try:
        critic.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise UserError(f"{cfg.source}: model.critic.checkpoint: {path}: does not fit this critic "
                        f"({str(exc).splitlines()[0]})") from None
    critic.requires_grad_(False)
