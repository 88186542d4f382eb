"""DCPG through the harness under Ray Train: 1 and 2 DDP workers agree, a killed worker resumes.

The in-batch rewards are computed on the gathered global batch and the policy's random draws
are made for the global batch from a (seed, epoch, batch) seed, so two workers follow the
one-worker trajectory; dropout is drawn per worker, so these configs set it to 0 (with dropout,
the trajectories differ and only the loss scale agrees; docs/MATCHING.md).
"""

from __future__ import annotations

import pytest
import torch

from tests.training.matching.tiny import tiny_cfg, tiny_splits
from tests.training.ray_helpers import ray_run
from videxperts.training.runner import LoopOptions

SIZES = {"train": 16, "val": 4, "test": 4}
KEYS = ("train/loss", "train/hinge", "train/id", "train/decoder", "train/pg_discrete", "train/pg_continuous",
        "train/reward", "train/attn_img_mean", "val/rsum", "val/i2t_r1", "val/t2i_r1")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread."""


@pytest.fixture(scope="module")
def cfg():
    return tiny_cfg(train={"batch_size": 16, "epochs": 3, "seed": 0})


@pytest.fixture(scope="module")
def splits(cfg):
    return tiny_splits(cfg, SIZES)


@pytest.fixture(scope="module")
def one_worker(cfg, splits, ray_local, tmp_path_factory):
    return ray_run(cfg, splits, tmp_path_factory.mktemp("m1"), "one")


def _close(a: dict, b: dict, rel: float) -> None:
    for ra, rb in zip(a["history"], b["history"], strict=True):
        for k in KEYS:
            assert rb[k] == pytest.approx(ra[k], rel=rel, abs=rel), k
    assert a["best_epoch"] == b["best_epoch"]
    for k, v in a["test"].items():
        assert b["test"][k] == pytest.approx(v, rel=rel, abs=rel), k


def test_two_workers_agree_with_one(cfg, splits, one_worker, tmp_path_factory):
    result, state, _ = one_worker
    assert state["epoch"] == 3 and result["selection"]["metric"] == "val/rsum_select"
    assert {"train/pg_discrete", "train/reward", "train/attn_txt_std", "val/rsum"} <= set(result["history"][0])
    two, _, _ = ray_run(cfg, splits, tmp_path_factory.mktemp("m2"), "two", num_workers=2)
    _close(result, two, rel=1e-4)


def test_killed_worker_resumes_to_the_same_result(cfg, splits, one_worker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcrash")
    marker = tmp / "crashed"
    opts = LoopOptions(crash_at_epoch=2, crash_marker=str(marker))
    resumed, state, _ = ray_run(cfg, splits, tmp, "crash", options=opts, max_failures=1)
    # continued from an epoch checkpoint (epoch 2's, or epoch 1's if the kill beat the report's upload)
    assert marker.exists() and resumed["resumed_at"] in ([2], [3])
    _close(one_worker[0], resumed, rel=1e-6)
    torch.testing.assert_close(state["model"], one_worker[1]["model"], rtol=1e-6, atol=1e-7)
