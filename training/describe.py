"""`describe_model(cfg)`: what `videxperts train --config CFG --describe` prints.

Builds the model on the meta device (shapes, no storage) and counts parameters per component, so a
user can check a config against the published architecture before spending a GPU on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.config import TrainConfig, load_config
from training.models import build_model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def component_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per top-level block; ModuleDicts (one entry per expert) are split by key.

    Keys look like `text_vlad`, `mixture`, `video_vlad.audio`, `video_proj.scene`,
    `text_proj.scene`, `collab`, `video_gate.scene`. They sum to the model total.
    """
    out: dict[str, int] = {}
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleDict):
            for key, sub in child.items():
                out[f"{name}.{key}"] = count_parameters(sub)
        else:
            out[name] = count_parameters(child)
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        out["(own)"] = own
    return out


def describe_model(cfg: TrainConfig | str | Path | dict[str, Any]) -> dict[str, Any]:
    """JSON-ready description: name, variant, total parameters, per-component counts, structure."""
    if not isinstance(cfg, TrainConfig):
        cfg = load_config(cfg)
    with torch.device("meta"):  # shapes only: no memory, instant even for 400M parameters
        model = build_model(cfg)
    return {
        "name": cfg.name,
        "variant": cfg.model.variant,
        "experts": {n: cfg.data.experts[n].temporal for n in cfg.expert_names},
        "shared_dim": cfg.model.shared_dim,
        "parameters": count_parameters(model),
        "components": component_counts(model),
        "structure": str(model),
    }


def format_description(desc: dict[str, Any], structure: bool = False) -> str:
    """Human-readable table of `describe_model` output (the non-`--json` view)."""
    lines = [f"{desc['name']}  variant={desc['variant']}  parameters={desc['parameters']:,}"]
    width = max(len(k) for k in desc["components"]) if desc["components"] else 0
    for key, n in desc["components"].items():
        lines.append(f"  {key:<{width}}  {n:>14,}")
    if structure:
        lines += ["", desc["structure"]]
    return "\n".join(lines)
