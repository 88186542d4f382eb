"""Every task's `example_batch` feeds its own step module: the batch a GPU check (bench/bench_gpu.py)
uses at published sizes is checked here at tiny sizes, for every built-in task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from videxperts.resources import config_path
from videxperts.training.config import load_config
from videxperts.training.task import task_of


def _shipped(name: str) -> Callable[[], Any]:
    return lambda: load_config(str(config_path("train", name)))


def _tiny_matching(kind: str) -> Callable[[], Any]:
    def make() -> Any:
        from tests.training.matching.tiny import tiny_cfg

        return tiny_cfg(model={"kind": kind}, name=f"tiny-{kind}")

    return make


def _tiny_captioning(arch: str) -> Callable[[], Any]:
    def make() -> Any:
        from tests.training.captioning.fixtures import tiny_cfg

        return load_config({**tiny_cfg(model={"arch": arch}), "name": f"tiny-{arch}"})

    return make


CONFIGS = {"demo_ce": _shipped("demo_ce"), "tiny_dcpg": _tiny_matching("dcpg"), "tiny_vsrn": _tiny_matching("vsrn"),
           "tiny_bmt": _tiny_captioning("bmt"), "tiny_bmhrl": _tiny_captioning("bmhrl")}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_example_batch_runs_a_training_step(name: str) -> None:
    cfg = CONFIGS[name]()
    task = task_of(cfg)
    torch.manual_seed(0)
    model = task.build_model(cfg)
    model.train()
    step = task.step_module(model, cfg)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer, _ = task.build_optimizer(model, cfg)
    losses = step(task.example_batch(cfg, 6))
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    optimizer.step()
    changed = sum(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters(), strict=True))
    assert changed > 0, "one optimiser step on the example batch changed no parameter"
