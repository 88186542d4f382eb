"""A fourth task, defined only in tests: a linear probe that classifies a synthetic attribute of a
video from one expert's mean features.

It plugs into the harness exactly as a shipped task does (``task: tests.training.toy_task:LinearProbeTask``
in its config) and shares nothing with retrieval: its own config, model, batches, loss, metrics,
selection metric and report columns. The attribute is the argmax of a fixed, seeded linear map of
the features, so a linear probe can learn it and chance is about 1/classes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videxperts.errors import UserError
from videxperts.training.config import Parser, flatten
from videxperts.training.distributed import gather_cat
from videxperts.training.task import Column, Evaluation, Selection, Task

TASK = "tests.training.toy_task:LinearProbeTask"


@dataclass(frozen=True)
class ProbeTrain:
    batch_size: int = 8
    epochs: int = 4
    seed: int = 0
    val_every: int = 1


@dataclass(frozen=True)
class ProbeOptim:
    name: str = "adam"
    lr: float = 0.05
    weight_decay: float = 0.0
    step_gamma: float = 0.95


@dataclass(frozen=True)
class ProbeConfig:
    name: str
    expert: str
    dim: int
    classes: int
    train: ProbeTrain
    optim: ProbeOptim
    task: str = TASK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flatten(self) -> dict[str, Any]:
        return flatten(self.to_dict())


@dataclass
class ProbeData:
    x: np.ndarray  # [N, D] mean features
    y: np.ndarray  # [N] attribute

    def __len__(self) -> int:
        return len(self.y)


def attribute(x: np.ndarray, classes: int) -> np.ndarray:
    """The synthetic attribute: argmax of a fixed seeded linear map (learnable by a linear probe)."""
    w = np.random.default_rng(1234).standard_normal((x.shape[1], classes)).astype(np.float32)
    return np.argmax(x @ w, axis=1).astype(np.int64)


class ProbeStep(nn.Module):
    """Cross-entropy over the gathered global batch: N workers compute one worker's loss."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = gather_cat(self.model(batch["x"]))
        labels = gather_cat(batch["y"], differentiable=False)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean() * 100
        return {"loss": loss, "accuracy": accuracy.detach()}


class LinearProbeTask(Task):
    name = "probe"
    selection = Selection("val/accuracy", "max")
    report_tables = {"attribute probe": (Column("accuracy", "Acc"), Column("nll", "NLL", 3))}

    def parse_config(self, raw: dict[str, Any], source: str) -> ProbeConfig:
        p = Parser(source)
        top = p.section(raw, "", {"task", "name", "expert", "dim", "classes", "train", "optim"},
                        {"name", "expert", "dim", "classes"})
        t = p.section(top.get("train") or {}, "train", {"batch_size", "epochs", "seed", "val_every"})
        o = p.section(top.get("optim") or {}, "optim", {"name", "lr", "weight_decay", "step_gamma"})
        return ProbeConfig(
            name=p.str_(top, "", "name"), expert=p.str_(top, "", "expert"), dim=p.int_(top, "", "dim"),
            classes=p.int_(top, "", "classes", minimum=2),
            train=ProbeTrain(p.int_(t, "train", "batch_size", 8, minimum=2), p.int_(t, "train", "epochs", 4),
                             p.int_(t, "train", "seed", 0, minimum=0), p.int_(t, "train", "val_every", 1)),
            optim=ProbeOptim(p.str_(o, "optim", "name", "adam", ("adam", "radam", "ranger")),
                             p.float_(o, "optim", "lr", 0.05, strict=True),
                             p.float_(o, "optim", "weight_decay", 0.0), p.float_(o, "optim", "step_gamma", 0.95,
                                                                                  strict=True)),
            task=str(top["task"]),
        )

    def build_model(self, cfg: ProbeConfig) -> nn.Module:
        return nn.Sequential(nn.BatchNorm1d(cfg.dim), nn.Linear(cfg.dim, cfg.classes))

    def check_store(self, cfg: ProbeConfig, store: Any, source: str, url: str) -> None:
        have = store.experts
        if cfg.expert not in have:
            raise UserError(f"{source}: expert: store {url} has no features for {cfg.expert!r}")
        if int(have[cfg.expert]["dim"]) != cfg.dim:
            raise UserError(f"{source}: dim is {cfg.dim} but store {url} holds {have[cfg.expert]['dim']}")

    def load_split(self, reader: Any, cfg: ProbeConfig, video_ids: list[str],
                   resources: Mapping[str, Any]) -> ProbeData:
        x, available = reader.load_expert(cfg.expert, list(video_ids), mode="mean")
        x = np.asarray(x[available], np.float32)
        return ProbeData(x, attribute(x, cfg.classes))

    def step_module(self, model: nn.Module, cfg: ProbeConfig) -> nn.Module:
        return ProbeStep(model)

    def epoch_batches(self, cfg: ProbeConfig, splits: Mapping[str, Any], resources: Mapping[str, Any],
                      epoch: int, rank: int, world_size: int) -> Iterator[dict[str, torch.Tensor]]:
        data = splits["train"]
        order = np.random.default_rng([cfg.train.seed, epoch]).permutation(len(data))
        for start in range(0, len(order), cfg.train.batch_size):
            rows = order[start : start + cfg.train.batch_size]
            if len(rows) < max(2, world_size):
                continue
            mine = np.array_split(rows, world_size)[rank]
            yield {"x": torch.from_numpy(data.x[mine]), "y": torch.from_numpy(data.y[mine])}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: ProbeData, device: torch.device) -> Evaluation:
        logits = model(torch.from_numpy(data.x).to(device)).float().cpu()
        y = torch.from_numpy(data.y)
        accuracy = float((logits.argmax(1) == y).float().mean() * 100) if len(y) else float("nan")
        nll = float(F.cross_entropy(logits, y)) if len(y) else float("nan")
        return Evaluation({"accuracy": accuracy, "nll": nll}, {"predictions": logits.argmax(1).numpy()},
                          {"videos": len(y)})
