"""`build_model(cfg)`: the one place that turns a TrainConfig into a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from videxperts.training.retrieval.config import TrainConfig, load_config
from videxperts.training.retrieval.models.ce import CollaborativeExperts


def build_model(cfg: TrainConfig | str | Path | dict[str, Any]) -> CollaborativeExperts:
    """Build the CE-family model that `cfg.model.variant` names (every variant is one class)."""
    if not isinstance(cfg, TrainConfig):
        cfg = load_config(cfg)
    return CollaborativeExperts(cfg)
