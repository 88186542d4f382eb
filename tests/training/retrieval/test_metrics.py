"""Retrieval metrics: hand-computed cases, ties, masks, and agreement with a brute-force
sorting reference and between the full and chunked paths."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from videxperts.training.retrieval.metrics import (
    metrics_from_ranks,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    retrieval_ranks,
)


def _brute_rank(scores: np.ndarray, target: int) -> float:
    """Sort the row (stable, descending) and average the positions of everything tied with the target."""
    order = np.argsort(-scores, kind="stable")
    positions = [pos for pos, idx in enumerate(order) if scores[idx] == scores[target]]
    return float(np.mean(positions))


def _brute(sims: np.ndarray, cv: np.ndarray, keep: np.ndarray):
    sims, cv = sims[keep], cv[keep]
    t2v = [_brute_rank(sims[c], cv[c]) for c in range(len(cv))]
    v2t = []
    for v in range(sims.shape[1]):
        own = np.nonzero(cv == v)[0]
        if len(own):
            v2t.append(min(_brute_rank(sims[:, v], c) for c in own))
    return np.array(t2v), np.array(v2t)


def test_hand_computed_ranks_and_metrics():
    sims = torch.tensor([
        [0.9, 0.1, 0.2],   # caption 0 -> video 0: rank 0
        [0.5, 0.4, 0.3],   # caption 1 -> video 1: rank 1
        [0.8, 0.7, 0.6],   # caption 2 -> video 2: rank 2
    ])
    t2v, v2t = retrieval_ranks(sims, [0, 1, 2])
    assert t2v.tolist() == [0.0, 1.0, 2.0]
    # columns: v0 [0.9,.5,.8] caption 0 best -> 0; v1 [.1,.4,.7] caption 1 -> 1; v2 [.2,.3,.6] -> 0
    assert v2t.tolist() == [0.0, 1.0, 0.0]
    m = retrieval_metrics(sims, [0, 1, 2])
    assert m["t2v"]["R1"] == pytest.approx(100 / 3)
    assert m["t2v"]["R5"] == 100.0
    assert m["t2v"]["MdR"] == 2.0 and m["t2v"]["MnR"] == 2.0
    assert m["t2v"]["Geom"] == pytest.approx((100 / 3 * 100 * 100) ** (1 / 3))
    assert m["v2t"]["R1"] == pytest.approx(200 / 3)


@pytest.mark.parametrize("n", [2, 3, 7])
def test_fully_tied_row_is_never_a_hit_under_the_published_rule(n):
    sims = torch.zeros(1, n)
    t2v, _ = retrieval_ranks(sims, [n - 1])
    assert t2v.item() == (n - 1) / 2
    assert retrieval_metrics(sims, [n - 1])["t2v"]["R1"] == 0.0
    # the averaged rule (rank < 1) hits for N = 2 (rank 0.5), not for N > 2
    assert retrieval_metrics(sims, [n - 1], r1_rule="averaged")["t2v"]["R1"] == (100.0 if n == 2 else 0.0)


def test_r1_counts_only_rank_zero_as_published():
    """Correct item tied with one other at the top: rank 0.5, a miss at R@1 (published `rank == 0`),
    a hit at R@5; an untied top item is a hit."""
    sims = torch.tensor([[0.9, 0.9, 0.1], [0.2, 0.8, 0.1]])
    t2v, _ = retrieval_ranks(sims, [0, 1])
    assert t2v.tolist() == [0.5, 0.0]
    m = retrieval_metrics(sims, [0, 1])["t2v"]
    assert m["R1"] == 50.0 and m["R5"] == 100.0
    assert retrieval_metrics(sims, [0, 1], r1_rule="averaged")["t2v"]["R1"] == 100.0
    m = metrics_from_ranks(np.array([0.0, 0.5, 1.0, 4.5, 5.0]))
    assert m["R1"] == 20.0 and m["R5"] == 80.0
    with pytest.raises(ValueError, match="r1_rule"):
        metrics_from_ranks(np.array([0.0]), r1_rule="rank<1")


def test_nan_similarity_raises_instead_of_ranking():
    sims = torch.tensor([[np.nan, 0.2], [0.1, 0.3]])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_ranks(sims, [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(sims, [0, 1])
    text, video = torch.ones(2, 3), torch.tensor([[1.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics_from_embeddings(text, video, None, [0, 1], chunk=1)
    with pytest.raises(ValueError, match="NaN"):
        metrics_from_ranks(np.array([0.0, np.nan]))


def test_partial_tie_gets_mean_position():
    sims = torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.1]])  # correct video 2 tied with 0 and 3, behind 1
    t2v, _ = retrieval_ranks(sims, [2])
    assert t2v.item() == 1 + (3 - 1) / 2  # positions 1, 2, 3 -> mean 2


def test_v2t_best_caption_missing_captions_and_caption_mask():
    # 3 videos; captions: v0 has 2, v1 has 1 (masked out), v2 has 2
    cv = [0, 0, 1, 2, 2]
    keep = [True, True, False, True, True]
    sims = torch.tensor([
        [0.1, 0.0, 0.0],
        [0.7, 0.0, 0.9],
        [0.9, 0.9, 0.9],  # masked caption: would beat everyone if it counted
        [0.3, 0.0, 0.2],
        [0.2, 0.0, 0.8],
    ])
    t2v, v2t = retrieval_ranks(sims, cv, keep)
    assert t2v.tolist() == [0.0, 1.0, 1.0, 0.0]
    # v0 column over kept captions [.1,.7,.3,.2]: best own caption (.7) rank 0
    # v1: no kept caption -> not a query; v2 column [0,.9,.2,.8]: best own (.8) rank 1
    assert v2t.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_brute_force_on_random_ties(seed):
    rng = np.random.default_rng(seed)
    num_v, per = 13, 3
    cv = np.repeat(np.arange(num_v), per)
    keep = rng.random(len(cv)) > 0.2
    sims = rng.integers(0, 4, size=(len(cv), num_v)).astype(np.float32)  # many ties
    t2v, v2t = retrieval_ranks(torch.from_numpy(sims), cv, keep)
    ref_t2v, ref_v2t = _brute(sims, cv, keep)
    np.testing.assert_allclose(t2v.numpy(), ref_t2v)
    np.testing.assert_allclose(v2t.numpy(), ref_v2t)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_property_full_and_chunked_agree_with_brute_force(data):
    num_v = data.draw(st.integers(1, 6))
    cv = np.array(data.draw(st.lists(st.integers(0, num_v - 1), min_size=1, max_size=12)))
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(cv), max_size=len(cv))))
    keep[0] = True
    sims = np.array(data.draw(st.lists(st.integers(-2, 2), min_size=len(cv) * num_v,
                                       max_size=len(cv) * num_v)), dtype=np.float32).reshape(len(cv), num_v)
    t2v, v2t = retrieval_ranks(torch.from_numpy(sims), cv, keep)
    ref_t2v, ref_v2t = _brute(sims, cv, keep)
    np.testing.assert_allclose(t2v.numpy(), ref_t2v)
    np.testing.assert_allclose(v2t.numpy(), ref_v2t)
    # the chunked path, with identity "embeddings" so the similarity function returns sims exactly
    text, video = torch.from_numpy(sims), torch.eye(num_v)
    chunk = data.draw(st.integers(1, 5))
    assert retrieval_metrics_from_embeddings(text, video, None, cv, caption_mask=keep, chunk=chunk,
                                             video_chunk=data.draw(st.integers(1, 4))) == \
        retrieval_metrics(sims, cv, keep)


@pytest.mark.parametrize("chunk", [1, 4, 7, 1000])
def test_chunked_equals_full(chunk):
    torch.manual_seed(chunk)
    num_v, per, dim = 11, 4, 3
    text = torch.randint(-2, 3, (num_v * per, dim)).float()  # small integers: exact ties
    video = torch.randint(-2, 3, (num_v, dim)).float()
    cv = torch.arange(num_v).repeat_interleave(per)
    keep = torch.rand(len(cv)) > 0.25
    full = retrieval_metrics(text @ video.T, cv, keep)
    chunked = retrieval_metrics_from_embeddings(text, video, None, cv, caption_mask=keep, chunk=chunk,
                                                video_chunk=max(1, chunk // 2))
    assert chunked == full


def test_chunked_with_dict_embeddings_and_sim_fn():
    torch.manual_seed(0)
    text = {"a": torch.randn(20, 4), "b": torch.randn(20, 2)}
    video = {"a": torch.randn(5, 4), "b": torch.randn(5, 2)}

    def sim(t, v):
        return t["a"] @ v["a"].T - 0.5 * t["b"] @ v["b"].T

    cv = torch.arange(5).repeat_interleave(4)
    full = retrieval_metrics(sim(text, video), cv)
    assert retrieval_metrics_from_embeddings(text, video, sim, cv, chunk=3) == full


def test_metrics_from_ranks_definitions():
    m = metrics_from_ranks(np.array([0, 0, 4, 9, 60]))
    assert m["R1"] == 40.0 and m["R5"] == 60.0 and m["R10"] == 80.0 and m["R50"] == 80.0
    assert m["MdR"] == 5.0 and m["MnR"] == pytest.approx(15.6)
    assert m["Geom"] == pytest.approx(math.pow(40 * 60 * 80, 1 / 3))


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        retrieval_ranks(torch.zeros(3, 2), [0, 1])
    with pytest.raises(ValueError):
        retrieval_ranks(torch.zeros(2, 2), [0, 2])


def test_non_finite_scores_use_exact_comparisons():
    sims = np.array([[np.inf, np.inf, 0.0], [-np.inf, 1.0, -np.inf], [0.5, 0.5, 0.5]], dtype=np.float32)
    cv = np.array([0, 2, 2])
    keep = np.ones(3, dtype=bool)
    t2v, v2t = retrieval_ranks(torch.from_numpy(sims), cv)
    ref_t2v, ref_v2t = _brute(sims, cv, keep)
    np.testing.assert_allclose(t2v.numpy(), ref_t2v)
    np.testing.assert_allclose(v2t.numpy(), ref_v2t)
    assert t2v[0].item() == 0.5  # tied with the other +inf
