"""Evaluation of one or several matching models on one split: the VSE++ protocols and ensembles.

An ensemble averages the members' similarity matrices (d = (d1 + d2) / 2), as the published
VSRN and DCPG tables do; the matrices are never materialised (blocks of rows or columns, see
:mod:`.metrics`), so COCO 5K (5,000 images x 25,000 captions) needs bounded memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from videxperts.errors import UserError
from videxperts.training.matching.config import MatchingConfig
from videxperts.training.matching.data import MatchingData
from videxperts.training.matching.task import encode_split


def evaluate_models(members: Sequence[tuple[MatchingConfig, nn.Module, MatchingData]], device: torch.device,
                    protocol: str | None = None) -> dict[str, float]:
    """Metrics of the averaged similarities of ``members`` (config, model in eval mode, its split data)."""
    from videxperts.training.matching.metrics import EmbeddingSims, ensemble, evaluate_protocol

    if not members:
        raise UserError("no models to evaluate")
    first = members[0][2]
    for cfg, _, data in members[1:]:
        if data.item_ids != first.item_ids or data.captions_per_item != first.captions_per_item:
            raise UserError(f"ensemble: {cfg.name} sees other items than {members[0][0].name} on this split "
                            "(both models must score the same images and captions)")
    sims = []
    for cfg, model, data in members:
        model.eval()
        img, cap = encode_split(model, data, cfg, device)
        sims.append(EmbeddingSims(img, cap))
    cfg0 = members[0][0]
    protocol = protocol or cfg0.eval.protocol
    source = sims[0] if len(sims) == 1 else ensemble(*sims)
    try:
        return evaluate_protocol(source, protocol, cfg0.data.captions_per_item, cfg0.eval.fold_size)
    except ValueError as exc:
        raise UserError(f"{protocol}: {exc}") from None
