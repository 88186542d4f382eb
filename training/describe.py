"""`describe_model(cfg)`: what `videxperts train --config CFG --describe` prints, for every task.

Builds the model on the meta device (shapes, no storage) and counts parameters per component, so a
user can check a config against the published architecture before spending a GPU on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from videxperts.training.config import load_config
from videxperts.training.task import task_of


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


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


def describe_model(cfg: Any | str | Path | dict[str, Any]) -> dict[str, Any]:
    """JSON-ready description: task, name, total and trainable parameters, per-component counts, structure."""
    cfg = load_config(cfg)
    task = task_of(cfg)
    with torch.device("meta"):  # shapes only: no memory, instant even for 400M parameters
        model = task.build_model(cfg)
    counted = task.counted_module(model)
    return {
        "task": task.name,
        "name": cfg.name,
        **task.describe(cfg, model),
        "parameters": count_parameters(counted),
        "trainable": count_parameters(counted, trainable_only=True),
        "components": component_counts(counted),
        "structure": str(model),
    }


def format_description(desc: dict[str, Any], structure: bool = False) -> str:
    """Human-readable table of `describe_model` output (the non-`--json` view)."""
    extra = "  ".join(f"{k}={v}" for k, v in desc.items()
                      if k not in ("task", "name", "parameters", "trainable", "components", "structure")
                      and not isinstance(v, dict))
    lines = [f"{desc['name']}  task={desc['task']}  {extra}  parameters={desc['parameters']:,}  "
             f"trainable={desc['trainable']:,}".replace("  " * 2, "  ")]
    width = max(len(k) for k in desc["components"]) if desc["components"] else 0
    for key, n in desc["components"].items():
        lines.append(f"  {key:<{width}}  {n:>14,}")
    if structure:
        lines += ["", desc["structure"]]
    return "\n".join(lines)
