"""In-process training of the matching task: it learns above chance on class-conditioned toy data,
and a run resumed from an epoch checkpoint ends exactly where an uninterrupted run does."""

from __future__ import annotations

import pytest

from tests.training.matching.tiny import tiny_cfg, tiny_splits
from videxperts.training.runner import LoopOptions, Reporter, fit


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread."""


class _From(Reporter):
    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def checkpoint_in(self) -> str | None:
        return self.where


def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path) -> None:
    cfg = tiny_cfg(train={"batch_size": 16, "epochs": 2, "seed": 0})
    splits = tiny_splits(cfg, {"train": 16, "val": 4, "test": 4})
    full = fit(cfg, splits, LoopOptions(), Reporter())
    fit(tiny_cfg(train={"batch_size": 16, "epochs": 1, "seed": 0}), splits, LoopOptions(), Reporter(str(tmp_path)))
    resumed = fit(cfg, splits, LoopOptions(), _From(str(tmp_path / "checkpoint_0001")))
    assert resumed["resumed_at"] == [2]
    for a, b in zip(full["history"], resumed["history"], strict=True):
        for k in ("train/loss", "train/pg_continuous", "train/reward", "val/rsum"):
            assert b[k] == pytest.approx(a[k], rel=1e-6), k
    assert resumed["test"] == pytest.approx(full["test"])


@pytest.mark.parametrize("kind", ["vsrn", "dcpg"])
def test_learns_far_above_chance(kind: str) -> None:
    cfg = tiny_cfg(model={**tiny_cfg().to_dict()["model"], "kind": kind},
                   train={"batch_size": 20, "epochs": 4, "seed": 0})
    splits = tiny_splits(cfg, {"train": 40, "val": 8, "test": 8})
    res = fit(cfg, splits, LoopOptions(), Reporter())
    # 8 test images and 40 captions: chance R@1 is 12.5 in both directions (1/8, 5/40)
    assert res["test"]["t2i_r1"] >= 25.0
    assert res["history"][-1]["train/hinge"] < res["history"][0]["train/hinge"]
