"""VSE++ matching metrics on hand-made similarity matrices whose ranks are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videxperts.training.matching import metrics as M


def _vsepp_reference(sims: np.ndarray, cpi: int) -> tuple[np.ndarray, np.ndarray]:
    """The original's loops (argsort, reversed, position), with a stable sort so ties are defined."""
    n = sims.shape[0]
    i2t = np.zeros(n, dtype=np.int64)
    for i in range(n):
        inds = np.argsort(sims[i], kind="stable")[::-1]
        i2t[i] = min(np.where(inds == j)[0][0] for j in range(cpi * i, cpi * i + cpi))
    t2i = np.zeros(n * cpi, dtype=np.int64)
    for c in range(n * cpi):
        inds = np.argsort(sims[:, c], kind="stable")[::-1]
        t2i[c] = np.where(inds == c // cpi)[0][0]
    return i2t, t2i


def test_two_images_two_captions_by_hand():
    sims = np.array([[0.9, 0.1, 0.5, 0.95],
                     [0.2, 0.3, 0.1, 0.4]])
    # image 0: own captions 0.9, 0.1 -> best 0.9, one caption (0.95) above -> rank 1
    # image 1: own 0.1, 0.4 -> best 0.4, nothing above -> rank 0
    assert M.i2t_ranks(sims, 2).tolist() == [1, 0]
    # caption columns: c0 [0.9, 0.2] own 0 -> 0; c1 [0.1, 0.3] own 0 -> 1;
    # c2 [0.5, 0.1] own 1 -> 1; c3 [0.95, 0.4] own 1 -> 1
    assert M.t2i_ranks(sims, 2).tolist() == [0, 1, 1, 1]
    i2t, t2i = M.i2t_recalls(sims, 2), M.t2i_recalls(sims, 2)
    assert i2t == {"r1": 50.0, "r5": 100.0, "r10": 100.0, "medr": 1.0, "meanr": 1.5}
    # median of [0, 1, 1, 1] is 1 -> medr 2; mean 0.75 -> meanr 1.75
    assert t2i == {"r1": 25.0, "r5": 100.0, "r10": 100.0, "medr": 2.0, "meanr": 1.75}
    m = M.matching_metrics(sims, 2)
    assert m["rsum"] == 475.0 and m["rsum_select"] == 50 + 100 + 25 + 100


def test_constructed_ranks_recalls_and_floor_median():
    want = [0, 0, 3, 4, 5, 9, 10, 12, 0, 1, 20, 7]
    n, cpi = len(want), 5
    sims = np.zeros((n, n * cpi))
    for i, r in enumerate(want):
        sims[i, cpi * i:cpi * i + cpi] = 0.1
        sims[i, cpi * i + 2] = 0.5  # the best own caption
        foreign = [c for c in range(n * cpi) if c // cpi != i]
        sims[i, foreign[:r]] = 0.9  # exactly r captions above it
    assert M.i2t_ranks(sims, cpi).tolist() == want
    out = M.i2t_recalls(sims, cpi)
    assert out["r1"] == pytest.approx(100 * 3 / 12)
    assert out["r5"] == pytest.approx(100 * 6 / 12)
    assert out["r10"] == pytest.approx(100 * 9 / 12)
    assert out["medr"] == 5.0  # sorted middle pair (4, 5): median 4.5, floor 4, +1
    assert out["meanr"] == pytest.approx(sum(want) / 12 + 1)


def test_aligned_identity_is_perfect():
    n, cpi = 7, 5
    sims = np.kron(np.eye(n), np.ones((1, cpi))) + 0.01 * np.random.default_rng(0).random((n, n * cpi))
    m = M.matching_metrics(sims, cpi)
    assert m["i2t_r1"] == m["t2i_r1"] == 100.0 and m["rsum"] == 600.0
    assert m["i2t_medr"] == m["t2i_medr"] == 1.0 and m["i2t_meanr"] == m["t2i_meanr"] == 1.0


def test_tie_rules_on_a_fully_tied_matrix():
    sims = np.ones((3, 6))  # 3 images, 2 captions each, every score equal
    # original (stable argsort reversed): the higher index comes first. Image i's best own
    # caption is 2i+1, behind the captions with a higher index: 6 - 1 - (2i + 1) = 4 - 2i.
    assert M.i2t_ranks(sims, 2).tolist() == [4, 2, 0]
    # caption c belongs to image c // 2, behind the 2 - c // 2 later images
    assert M.t2i_ranks(sims, 2).tolist() == [2, 2, 1, 1, 0, 0]
    # pessimistic: every tied foreign item ahead (4 foreign captions, 2 other images)
    assert M.i2t_ranks(sims, 2, ties="pessimistic").tolist() == [4, 4, 4]
    assert M.t2i_ranks(sims, 2, ties="pessimistic").tolist() == [2] * 6
    assert M.i2t_ranks(sims, 2, ties="optimistic").tolist() == [0, 0, 0]
    assert M.t2i_ranks(sims, 2, ties="optimistic").tolist() == [0] * 6
    # a collapsed model scores at chance under the original rule, not 100
    assert M.t2i_recalls(sims, 2)["r1"] == pytest.approx(100 * 2 / 6)


def test_partial_ties_by_hand():
    # image 0 own captions 0,1 ; image 1 own 2,3
    sims = np.array([[0.5, 0.2, 0.5, 0.7],
                     [0.3, 0.3, 0.3, 0.1]])
    # image 0: best own 0.5 at col 0; above: 0.7 (col 3); tied foreign col 2 (index > 0)
    #   original 2, pessimistic 2, optimistic 1
    # image 1: best own 0.3 at col 2; tied foreign cols 0, 1 (index < 2) -> original 0,
    #   pessimistic 2, optimistic 0
    assert M.i2t_ranks(sims, 2).tolist() == [2, 0]
    assert M.i2t_ranks(sims, 2, ties="pessimistic").tolist() == [2, 2]
    assert M.i2t_ranks(sims, 2, ties="optimistic").tolist() == [1, 0]
    # t2i: c0 [0.5, 0.3] own 0 -> 0; c1 [0.2, 0.3] -> 1; c2 [0.5, 0.3] own 1 -> 1;
    # c3 [0.7, 0.1] own 1 -> 1
    assert M.t2i_ranks(sims, 2).tolist() == [0, 1, 1, 1]


def test_own_captions_tied_with_each_other_do_not_count():
    sims = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    for ties in M.TIES:
        assert M.i2t_ranks(sims, 2, ties=ties).tolist() == [0, 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_original_tie_rule_matches_the_literal_loops(seed):
    rng = np.random.default_rng(seed)
    n, cpi = 9, 5
    sims = rng.integers(0, 3, size=(n, n * cpi)).astype(np.float32)  # many ties
    i2t, t2i = _vsepp_reference(sims, cpi)
    assert M.i2t_ranks(sims, cpi).tolist() == i2t.tolist()
    assert M.t2i_ranks(sims, cpi).tolist() == t2i.tolist()
    # and blocks of any size give the same ranks
    assert M.i2t_ranks(sims, cpi, block_elems=7).tolist() == i2t.tolist()
    assert M.t2i_ranks(sims, cpi, block_elems=7).tolist() == t2i.tolist()


def test_embedding_source_equals_dense_matrix():
    g = torch.Generator().manual_seed(0)
    im, cap = torch.randn(8, 6, generator=g), torch.randn(40, 6, generator=g)
    dense = (im @ cap.T).numpy()
    src = M.EmbeddingSims(im, cap)
    assert M.matching_metrics(src, block_elems=50) == M.matching_metrics(dense)
    assert M.unique_images(im.repeat_interleave(5, 0), 5).equal(im)


def test_ensemble_averages_similarities():
    a = np.array([[0.9, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 0.2]])
    b = np.array([[0.9, 0.0, 0.0, 0.0], [0.0, 0.0, 0.6, 0.0]])
    # alone: a puts image 0's best own (0.9) behind col 2 -> i2t rank 1;
    # the mean (0.9, 0, 0.5, 0) puts it first
    assert M.i2t_ranks(a, 2).tolist()[0] == 1
    mean = (a + b) / 2
    assert M.i2t_ranks(M.ensemble(a, b), 2).tolist() == M.i2t_ranks(mean, 2).tolist() == [0, 0]
    ens = M.ensemble(M.EmbeddingSims(torch.eye(2), torch.eye(2).repeat_interleave(2, 0)), a)
    assert M.matching_metrics(ens, 2) == M.matching_metrics((np.kron(np.eye(2), [[1, 1]]) + a) / 2, 2)
    with pytest.raises(ValueError, match="disagree"):
        M.ensemble(a, np.zeros((3, 6)))


def test_coco_1k_folds_are_contiguous_and_averaged():
    fold, cpi, k = 3, 5, 2
    n = fold * k
    sims = np.kron(np.eye(n), np.ones((1, cpi)))  # aligned ...
    sims[:fold, fold * cpi:] = 2.0  # ... but fold 0 images love fold 1 captions (outside their fold)
    one_k = M.evaluate_protocol(sims, "coco_1k", cpi, fold_size=fold)
    assert one_k["rsum"] == 600.0  # cross-fold scores never count in a fold
    five_k = M.evaluate_protocol(sims, "coco_5k", cpi)
    assert five_k["i2t_r1"] == 50.0 and five_k["rsum"] < 600.0
    folds = M.fold_metrics(sims, fold, cpi)
    assert len(folds) == k
    # fold 1 alone: rows 3..5, columns 15..29
    assert folds[1] == M.matching_metrics(sims[fold:, fold * cpi:], cpi)
    with pytest.raises(ValueError, match="folds of 4 images"):
        M.fold_metrics(sims, 4, cpi)


def test_fold_mean_and_rsum_from_mean_recalls():
    folds = [
        {"i2t_r1": 10.0, "i2t_r5": 20.0, "i2t_r10": 30.0, "i2t_medr": 3.0, "i2t_meanr": 4.0,
         "t2i_r1": 40.0, "t2i_r5": 50.0, "t2i_r10": 60.0, "t2i_medr": 2.0, "t2i_meanr": 3.0,
         "rsum": 210.0, "rsum_select": 120.0},
        {"i2t_r1": 30.0, "i2t_r5": 40.0, "i2t_r10": 50.0, "i2t_medr": 2.0, "i2t_meanr": 2.0,
         "t2i_r1": 60.0, "t2i_r5": 70.0, "t2i_r10": 80.0, "t2i_medr": 1.0, "t2i_meanr": 1.0,
         "rsum": 330.0, "rsum_select": 200.0},
    ]
    m = M.mean_over_folds(folds)
    assert m["i2t_r1"] == 20.0 and m["t2i_r10"] == 70.0 and m["i2t_medr"] == 2.5
    assert m["rsum"] == 20 + 30 + 40 + 50 + 60 + 70 == 270.0
    ar = np.mean([(f["i2t_r1"] + f["i2t_r5"] + f["i2t_r10"]) / 3 for f in folds])
    assert m["rsum"] != 6 * ar  # the VSE++ print bug is not reproduced
    assert m["rsum_select"] == 20 + 30 + 50 + 60


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="expected 10"):
        M.i2t_recalls(np.zeros((2, 9)), 5)
    bad = np.zeros((2, 10))
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.t2i_recalls(bad, 5)
    with pytest.raises(ValueError, match="ties"):
        M.i2t_recalls(np.zeros((2, 10)), 5, ties="random")
    with pytest.raises(ValueError, match="unknown matching protocol"):
        M.evaluate_protocol(np.zeros((2, 10)), "coco_2k")
