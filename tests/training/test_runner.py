"""The training runner (with the retrieval task): it learns; 1 and 2 Ray Train workers agree; a killed run resumes to the same result.

Ray Train runs are slow to start, so this module runs three of them (shared by module fixtures).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.golden import check_golden, golden_view
from tests.training.ray_helpers import ray_run
from videxperts.training.describe import count_parameters
from videxperts.training.retrieval.config import load_config
from videxperts.training.retrieval.data import synthetic_splits
from videxperts.training.retrieval.models import build_model
from videxperts.training.runner import LoopOptions, Reporter, fit

CFG = {
    "task": "retrieval",
    "name": "tiny-ce",
    "data": {
        "experts": {"a": {"dim": 12}, "b": {"dim": 10},
                    "s": {"dim": 6, "temporal": "vlad", "clusters": 2, "max_tokens": 4}},
        "text": {"encoder": "t1", "dim": 8, "max_tokens": 5, "max_captions": 3},
    },
    "model": {"variant": "ce", "shared_dim": 16, "text_vlad": {"clusters": 3, "ghosts": 1}},
    "optim": {"name": "ranger", "lr": 0.05, "weight_decay": 0.001, "step_gamma": 0.95},
    "loss": {"margin": 0.2},
    "train": {"batch_size": 8, "epochs": 4, "seed": 0},
}
SIZES = {"train": 40, "val": 16, "test": 16}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread."""


@pytest.fixture(scope="module")
def cfg():
    return load_config(CFG)


@pytest.fixture(scope="module")
def splits(cfg):
    return synthetic_splits(cfg, SIZES, seed=1)


@pytest.fixture(scope="module")
def one_worker(cfg, splits, ray_local, tmp_path_factory):
    return ray_run(cfg, splits, tmp_path_factory.mktemp("ray1"), "one")


def test_training_lowers_loss_and_beats_chance(cfg, splits):
    result = fit(cfg, splits, LoopOptions(), Reporter())
    hist = result["history"]
    assert len(hist) == 4 and [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[-1]["train/loss"] < 0.7 * hist[0]["train/loss"]
    chance_r1 = 100 / SIZES["val"]
    assert max(h["val/t2v/R1"] for h in hist) > 2 * chance_r1
    best = max(range(4), key=lambda i: hist[i]["val/t2v/Geom"])
    assert result["best_epoch"] == hist[best]["epoch"]
    assert result["test"]["t2v/MnR"] < (SIZES["test"] + 1) / 2  # better than random ranking
    assert len(result["arrays"]["t2v_ranks"]) == int(splits["test"].caption_mask.sum())


def _close(a: dict, b: dict, rtol: float = 1e-4) -> None:
    ha, hb = a["history"], b["history"]
    assert len(ha) == len(hb)
    for x, y in zip(ha, hb, strict=True):
        np.testing.assert_allclose(x["train/loss"], y["train/loss"], rtol=rtol)
        for k in ("val/t2v/Geom", "val/t2v/MnR", "val/v2t/MnR"):
            np.testing.assert_allclose(x[k], y[k], rtol=rtol, atol=1e-6)
    assert a["best_epoch"] == b["best_epoch"]
    assert set(a["test"]) == set(b["test"])
    for k, v in a["test"].items():
        np.testing.assert_allclose(v, b["test"][k], rtol=rtol, atol=1e-6)


def test_in_process_matches_ray_one_worker(cfg, splits, one_worker):
    result, state, _ = one_worker
    assert state["epoch"] == 4 and set(state) >= {"model", "optimizer", "scheduler", "best_model", "best_metric"}
    _close(result, fit(cfg, splits, LoopOptions(), Reporter()))
    check_golden("ce_1worker", golden_view(result, count_parameters(build_model(cfg))))


def test_two_workers_agree_with_one(cfg, splits, one_worker, tmp_path_factory):
    """Same global batches; gathered loss and gathered BatchNorm: DDP follows the 1-worker trajectory."""
    two, _, _ = ray_run(cfg, splits, tmp_path_factory.mktemp("ray2"), "two", num_workers=2)
    _close(one_worker[0], two)
    check_golden("ce_2workers", golden_view(two, count_parameters(build_model(cfg))))


def test_killed_worker_resumes_to_the_same_result(cfg, splits, one_worker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crash")
    marker = tmp / "crashed"
    opts = LoopOptions(crash_at_epoch=2, crash_marker=str(marker))
    resumed, state, _ = ray_run(cfg, splits, tmp, "crash", options=opts, max_failures=1)
    assert marker.exists()  # the worker really died after epoch 2 and Ray restarted it
    # continued from an epoch checkpoint (epoch 2's, or epoch 1's if the kill beat the report's upload)
    assert resumed["resumed_at"] in ([2], [3]) and one_worker[0]["resumed_at"] == []
    _close(one_worker[0], resumed, rtol=1e-6)
    torch.testing.assert_close(state["model"], one_worker[1]["model"], rtol=1e-6, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["ce_no_cg", "moee", "moee_uniform", "concat"])
def test_every_ablation_trains_on_two_workers(variant, cfg, splits, ray_local, tmp_path_factory):
    """Each ablation row trains and evaluates under DDP with 2 workers, on the 1-process trajectory."""
    vcfg = load_config({**cfg.to_dict(), "name": f"tiny-{variant}",
                        "model": {**cfg.to_dict()["model"], "variant": variant},
                        "train": {**cfg.to_dict()["train"], "epochs": 2}})
    two, state, ranks = ray_run(vcfg, splits, tmp_path_factory.mktemp(variant), variant, num_workers=2)
    assert state["epoch"] == 2 and len(ranks["t2v_ranks"]) == int(splits["test"].caption_mask.sum())
    assert all(np.isfinite(v) for v in two["test"].values())
    _close(two, fit(vcfg, splits, LoopOptions(), Reporter()))
