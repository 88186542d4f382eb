"""The task interface: what a model family hands the training harness.

The harness (:mod:`.runner`, :mod:`.checkpoint`, :mod:`.tracking`, ``pipelines.train_job``) knows
nothing about retrieval, captioning or matching. A task says how to read its config, build its
model, load a split through the store reader, form the batches of an epoch, compute one step's
named losses and evaluate a split into named metrics; it declares the metric that selects the
best epoch and the columns of its report. See docs/TRAINING.md "Adding a task".

A task's config must have ``name``, ``task``, ``train`` (``seed``, ``epochs``, ``val_every``),
``optim`` (what :func:`videxperts.training.optim.build_optimizer` reads, unless the task builds
its own optimiser) and ``to_dict()`` / ``flatten()``.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from videxperts.errors import UserError

# The tasks that ship; any other name of the form "package.module:Class" is imported (plug-ins).
BUILTIN_TASKS = {
    "retrieval": "videxperts.training.retrieval.task:RetrievalTask",
    "matching": "videxperts.training.matching.task:MatchingTask",
    "captioning": "videxperts.training.captioning.task:CaptioningTask",
    "segment_critic": "videxperts.training.captioning.task:SegmentCriticTask",
}


@dataclass(frozen=True)
class Selection:
    """The validation metric that picks the best epoch (a key of the per-epoch row) and its direction."""

    metric: str
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"selection mode must be 'max' or 'min', got {self.mode!r}")

    @property
    def worst(self) -> float:
        return -math.inf if self.mode == "max" else math.inf

    def better(self, value: float, than: float) -> bool:
        """Strictly better (a tie keeps the earlier epoch); NaN is never better."""
        if not math.isfinite(value):
            return False
        return value > than if self.mode == "max" else value < than


@dataclass(frozen=True)
class Column:
    """One column of ``videxperts report``: a test metric (without ``test/``) and its header."""

    metric: str
    header: str
    digits: int = 1


@dataclass
class Evaluation:
    """A split's named metrics (flat: ``"t2v/R1"``) and arrays worth keeping (per-query ranks, ...)."""

    metrics: dict[str, float]
    arrays: dict[str, np.ndarray]
    counts: dict[str, int]  # what was scored: videos, queries, ...


class Task(ABC):
    """Base class of a task; subclasses are stateless (one instance serves every run)."""

    name: str
    selection: Selection
    # report tables: title -> columns (the first table is the default view)
    report_tables: Mapping[str, tuple[Column, ...]]

    # ------------------------------------------------------------------ config and model
    @abstractmethod
    def parse_config(self, raw: dict[str, Any], source: str) -> Any:
        """The merged YAML mapping as the task's typed config (one ConfigError per problem)."""

    @abstractmethod
    def build_model(self, cfg: Any) -> nn.Module:
        """The model of ``cfg`` (also on the meta device, for ``--describe``)."""

    def describe(self, cfg: Any, model: nn.Module) -> dict[str, Any]:
        """Task-specific lines of ``--describe`` (variant, dims, ...) beside the parameter counts."""
        return {}

    def with_data(self, cfg: Any, data_dir: str | None) -> Any:
        """The config completed by the command's ``--data DIR`` (captioning reads its timed captions there)."""
        return cfg

    def counted_module(self, model: nn.Module) -> nn.Module:
        """The module whose parameters ``--describe`` counts (a task may keep auxiliary heads beside it)."""
        return model

    def run_tags(self, cfg: Any) -> dict[str, str]:
        """MLflow tags of a training run beside the harness's own (model.name, task, ...)."""
        return {}

    def run_params(self, cfg: Any) -> dict[str, Any]:
        """Extra MLflow params of a training run (the config's flattened keys are logged anyway)."""
        return {}

    # ------------------------------------------------------------------ data
    def check_store(self, cfg: Any, store: Any, source: str, url: str) -> None:
        """Raise one UserError when ``store`` cannot feed ``cfg`` (missing expert, other dim, ...)."""
        return None

    @abstractmethod
    def load_split(self, reader: Any, cfg: Any, video_ids: list[str], resources: Mapping[str, Any]) -> Any:
        """One split read through ``StoreReader`` (inside a worker); models never see paths."""

    def check_resources(self, cfg: Any) -> None:
        """Check, without side effects, what the config references besides the store (files by path)."""
        return None

    def resolve_references(self, cfg: Any, tracking_uri: str, work_dir: Path) -> Any:
        """The config with its references to other runs (MLflow run ids) replaced by local paths
        under ``work_dir``, so workers and the logged config name files (captioning's critic)."""
        return cfg

    def driver_resources(self, cfg: Any, tracking_uri: str | None, work_dir: Path) -> dict[str, Any]:
        """Picklable things the workers need beyond the store (checkpoint paths of teachers, ...)."""
        return {}

    def data_resources(self, cfg: Any, data_dir: str | Path, work_dir: Path) -> dict[str, Any]:
        """Picklable things read from the dataset folder ``--data`` (caption strings, a vocabulary, ...)."""
        return {}

    def worker_resources(self, cfg: Any, resources: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
        """Turn :meth:`driver_resources` into live objects inside a worker (load teacher models, ...)."""
        return dict(resources)

    # ------------------------------------------------------------------ training
    def example_batch(self, cfg: Any, batch_size: int, seed: int = 0) -> Any:
        """A random global batch of ``batch_size`` with the shapes ``cfg`` trains on (CPU tensors).

        What `step_module` takes, without a store: published-size steps on a GPU
        (bench/bench_gpu.py) and shape tests at tiny sizes.
        """
        raise NotImplementedError(f"task {self.name!r} has no example batch")

    def build_optimizer(self, model: nn.Module, cfg: Any) -> tuple[torch.optim.Optimizer, Any]:
        """(optimiser, per-epoch scheduler); the default reads ``cfg.optim``."""
        from videxperts.training.optim import build_optimizer, build_scheduler

        optimizer = build_optimizer(model.parameters(), cfg.optim)
        return optimizer, build_scheduler(optimizer, cfg.optim)

    @abstractmethod
    def step_module(self, model: nn.Module, cfg: Any) -> nn.Module:
        """A module whose ``forward(batch)`` returns named losses; ``"loss"`` is the one optimised.

        The whole per-batch computation lives in one forward so DDP sees every parameter use.
        """

    @abstractmethod
    def epoch_batches(self, cfg: Any, splits: Mapping[str, Any], resources: Mapping[str, Any], epoch: int,
                      rank: int, world_size: int) -> Iterable[Any]:
        """This worker's share of each global batch of ``epoch`` (tensors on CPU; the runner moves them).

        The batch composition must depend on (seed, epoch) only, never on the world size, so that
        one worker and N workers follow the same trajectory.
        """

    def prepare(self, cfg: Any, splits: Mapping[str, Any], resources: dict[str, Any],
                device: torch.device) -> None:
        """Once per run before the first epoch, after the model is built (e.g. caption denoising)."""
        return None

    def should_stop(self, cfg: Any, history: list[dict]) -> bool:
        """Early stopping: True ends training after this epoch (the history holds its row)."""
        return False

    # ------------------------------------------------------------------ evaluation
    @abstractmethod
    def evaluate(self, model: nn.Module, data: Any, device: torch.device) -> Evaluation:
        """Named metrics of one split (the model in eval mode; the caller restores the mode)."""

    def plots(self, result: dict[str, Any], arrays: Mapping[str, np.ndarray], out_dir: Path, title: str) -> None:
        """Task-specific figures of a finished seed (the training curve is drawn by the harness)."""
        return None


_INSTANCES: dict[str, Task] = {}


def task_names() -> list[str]:
    return sorted(BUILTIN_TASKS)


def get_task(name: str, source: str = "config") -> Task:
    """The task instance named ``name``: a built-in or ``package.module:Class``."""
    if name in _INSTANCES:
        return _INSTANCES[name]
    target = BUILTIN_TASKS.get(name, name)
    module, sep, attr = target.partition(":")
    if not sep:
        raise UserError(f"{source}: task: unknown task {name!r} (choose from {', '.join(task_names())}, "
                        "or give a plug-in as package.module:Class)")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"{source}: task: cannot import {target!r} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise UserError(f"{source}: task: {target!r} is not a videxperts.training.task.Task")
    _INSTANCES[name] = cls()
    return _INSTANCES[name]


def task_of(cfg: Any) -> Task:
    """The task a typed config belongs to."""
    return get_task(cfg.task)
