"""Split evaluation picks the full matrix or its blocks by a memory budget; both give the same ranks."""

import numpy as np
import pytest
import torch

from tests.training.synth_store import TINY_CFG
from videxperts.training.retrieval import evaluation
from videxperts.training.retrieval.config import load_config
from videxperts.training.retrieval.data import synthetic_splits
from videxperts.training.retrieval.models import build_model


@pytest.fixture(scope="module")
def setup():
    cfg = load_config(TINY_CFG)
    torch.manual_seed(0)
    model = build_model(cfg)
    data = synthetic_splits(cfg, {"val": 23}, captions=3)["val"]
    return model, data


def test_rows_within_budget():
    assert evaluation.rows_within(10**9, 1000) == 10**9 // (evaluation.FULL_MATRIX_COPIES * 4 * 1000)
    assert evaluation.rows_within(1, 10**6) == 1


def test_small_budget_takes_the_chunked_path_with_equal_results(setup, monkeypatch):
    model, data = setup
    device = torch.device("cpu")
    full = evaluation.evaluate_split(model, data, device, budget=2**30)

    def no_full_matrix(*args, **kwargs):
        raise AssertionError("the full matrix was built under a small budget")

    monkeypatch.setattr(evaluation, "split_similarities", no_full_matrix)
    num_v = len(data)
    chunked = evaluation.evaluate_split(model, data, device, budget=5 * evaluation.FULL_MATRIX_COPIES * 4 * num_v)
    assert chunked.metrics == full.metrics
    np.testing.assert_array_equal(chunked.arrays["t2v_ranks"], full.arrays["t2v_ranks"])
    assert chunked.counts == full.counts


def test_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv(evaluation.BUDGET_ENV, "3")
    assert evaluation.memory_budget(torch.device("cpu")) == 3 * 2**20
    monkeypatch.delenv(evaluation.BUDGET_ENV)
    assert evaluation.memory_budget(torch.device("cpu")) > 0
