"""The regions expert: per-class NMS selection by hand, 36 x 2048 rows per frame, padding, weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videxperts.extractors.base import MediaView
from videxperts.extractors.experts.regions import RegionsExpert, select_regions
from videxperts.extractors.registry import build_expert, load_profile
from videxperts.extractors.weights import save_checkpoint

TINY = {"variant": "fasterrcnn_resnet50_fpn", "num_classes": 5, "size": 64, "max_size": 96, "proposals": 40,
        "fps": 1.0, "batch_size": 2, "device": "cpu", "threads": 1}


def test_selection_uses_per_class_nms_and_best_surviving_score():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)  # A~B overlap
    scores = torch.tensor([[0.9, 0.2],    # A: best in class 0
                           [0.8, 0.7],    # B: suppressed by A in class 0, survives in class 1 (A's 0.2 < 0.7)
                           [0.1, 0.05]])  # C: alone
    idx, conf = select_regions(boxes, scores, k=2, nms=0.3)
    assert idx.tolist() == [0, 1] and conf.tolist() == pytest.approx([0.9, 0.7])
    idx, conf = select_regions(boxes, scores, k=36, nms=0.3)  # fewer proposals than k: all of them
    assert idx.tolist() == [0, 1, 2] and conf.tolist() == pytest.approx([0.9, 0.7, 0.1])
    # B never survives anywhere when A beats it in every class: its confidence is 0
    _, conf = select_regions(boxes, torch.tensor([[0.9, 0.8], [0.5, 0.4], [0.1, 0.1]]), k=3, nms=0.3)
    assert conf.tolist() == pytest.approx([0.9, 0.1, 0.0])


@pytest.fixture(scope="module")
def expert() -> RegionsExpert:
    torch.manual_seed(123)  # the expert's init must not depend on the global RNG
    e = RegionsExpert(**TINY)
    e.load("cpu")
    return e


def _views():
    rng = np.random.default_rng(0)
    return [MediaView("video", 2.0, rng.integers(0, 255, (2, 64, 80, 3), dtype=np.uint8), np.array([0.0, 1.0])),
            MediaView("image", 0.04, rng.integers(0, 255, (1, 64, 80, 3), dtype=np.uint8), np.array([0.0])),
            MediaView("empty", 1.0, np.zeros((0, 64, 80, 3), np.uint8), np.zeros(0))]


def test_rows_timestamps_side_data_and_batching(expert):
    vid, img, empty = expert.extract(_views())
    assert vid.features.shape == (72, 2048) and img.features.shape == (36, 2048) and empty.features.shape == (0, 2048)
    assert vid.features.dtype == np.float32 and np.isfinite(vid.features).all()
    assert vid.timestamps.tolist() == [0.0] * 36 + [1.0] * 36
    assert vid.extra["boxes"].shape == (72, 4) and vid.extra["scores"].shape == (72,)
    b = vid.extra["boxes"]
    assert ((b >= 0) & (b <= 1)).all() and (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
    # the same frames one view at a time give the same rows (same-size frames batch without padding)
    alone = expert.extract([_views()[1]])[0]
    np.testing.assert_allclose(alone.features, img.features, rtol=1e-4, atol=1e-4)


def test_fewer_proposals_than_boxes_are_zero_padded():
    e = RegionsExpert(**{**TINY, "proposals": 5})
    e.load("cpu")
    (out,) = e.extract([_views()[1]])
    n = out.extra["n_boxes"][0]
    assert 1 <= n <= 5 and out.features.shape == (36, 2048)
    assert (out.extra["scores"][:n] > 0).all() and np.abs(out.features[:n]).sum() > 0
    assert not out.features[n:].any() and not out.extra["boxes"][n:].any() and not out.extra["scores"][n:].any()
    assert np.all(np.diff(out.extra["scores"][:n]) <= 0)  # most confident first


def test_weights_save_and_reload_and_provenance(expert, tmp_path):
    digest = save_checkpoint(expert.model, tmp_path / "det.pt")
    again = RegionsExpert(**TINY, weights=str(tmp_path / "det.pt"), sha256=digest.split(":")[1])
    again.load("cpu")
    assert again.provenance()["weights"] == digest and expert.provenance()["weights"] == "random-init:seed=0"
    views = [_views()[1]]
    np.testing.assert_array_equal(again.extract(views)[0].features, expert.extract(views)[0].features)
    other = RegionsExpert(**TINY, seed=1)
    other.load("cpu")
    assert not np.allclose(other.extract(views)[0].features, expert.extract(views)[0].features)
    prov = expert.provenance()
    assert prov["dim"] == 2048 and prov["boxes"] == 36 and prov["padding"].startswith("zero rows")


def test_profiles_build_2048_d_region_experts():
    for profile in ("demo", "paper"):
        e = build_expert("regions", load_profile(profile))
        assert e.dim == 2048 and e.boxes == 36 and e.needs.frames is not None
    paper = build_expert("regions", load_profile("paper"))
    assert (paper.variant, paper.num_classes, paper.size, paper.max_size, paper.nms) == (
        "fasterrcnn_resnet101_fpn", 1601, 600, 1000, 0.3)
    with pytest.raises(Exception, match="nms"):
        RegionsExpert(**{**TINY, "nms": 0.0})
