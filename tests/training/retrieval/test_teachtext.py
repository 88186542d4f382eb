"""TeachText: the averaged teacher matrix, the denoising mask, and a student trained with two teachers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.training.golden import check_golden, golden_view
from tests.training.synth_store import tiny_cfg
from videxperts.training.checkpoint import save_model_checkpoint
from videxperts.training.describe import count_parameters
from videxperts.training.retrieval.config import load_config
from videxperts.training.retrieval.data import synthetic_splits
from videxperts.training.retrieval.evaluation import t2v_ranks
from videxperts.training.retrieval.models import build_model
from videxperts.training.retrieval.teachtext import (
    Teacher,
    denoise_mask,
    load_teachers,
    mask_from_ranks,
    teacher_similarities,
)
from videxperts.training.runner import LoopOptions, Reporter, fit, read_result, run_ray_training

BASE = tiny_cfg("tt", epochs=3)


def _cfg(encoder="t1", dim=8, name="tt", **extra):
    d = {**BASE, "name": name, **extra}
    d["data"] = {**BASE["data"], "text": {**BASE["data"]["text"], "encoder": encoder, "dim": dim}}
    return load_config(d)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread."""


@pytest.fixture(scope="module")
def splits():
    return synthetic_splits(_cfg(), {"train": 32, "val": 12, "test": 12}, seed=3, extra_encoders=["t2"])


def _teacher(encoder, seed):
    torch.manual_seed(seed)
    cfg = _cfg(encoder, name=f"teacher-{encoder}")
    return Teacher(cfg.name, build_model(cfg).eval(), encoder, sorted(cfg.data.experts))


def test_teacher_matrix_is_the_average_of_unweighted_expert_sums(splits):
    data = splits["train"]
    teachers = [_teacher("t1", 0), _teacher("t2", 1)]
    vid, cap = data.captions()
    vid, cap = vid[:6], cap[:6]
    got = teacher_similarities(teachers, data, vid, cap, torch.device("cpu"))
    want = torch.zeros(6, 6)
    with torch.no_grad():
        for t in teachers:
            feats, masks, avail = data.video_batch(vid)
            video = t.model.encode_video(feats, masks, avail)
            tokens, tmask = data.text_batch(vid, cap, encoder=t.encoder)
            text = t.model.encode_text(tokens, tmask)
            want += sum(text[e] @ video[e].T for e in t.experts)  # no mixture weights
    torch.testing.assert_close(got, want / 2)
    assert not torch.allclose(got, teachers[0].model.similarity(  # differs from the weighted similarity
        teachers[0].model.encode_text(*data.text_batch(vid, cap)),
        teachers[0].model.encode_video(*data.video_batch(vid))))


def test_mask_from_ranks_constructed_case():
    cap_video = np.array([0, 0, 1, 2, 2, 3])
    cap_idx = np.array([0, 1, 0, 0, 2, 1])
    ranks = np.array([0.0, 150.0, 99.5, 120.0, 101.0, 99.0])
    keep = mask_from_ranks(ranks, cap_video, cap_idx, (5, 3), threshold=100)
    want = np.zeros((5, 3), bool)
    want[0, 0] = True   # rank 0 kept; rank 150 dropped
    want[1, 0] = True   # 99.5 < 100 kept (ties averaged give half ranks)
    want[2, 2] = True   # both dropped: the best-ranked (101) is kept
    want[3, 1] = True
    np.testing.assert_array_equal(keep, want)  # video 4 has no captions at all: nothing kept


def test_denoise_mask_keeps_captions_the_teachers_rank_well(splits):
    data = splits["train"]
    teachers = [_teacher("t1", 0), _teacher("t2", 1)]
    keep = denoise_mask(teachers, data, threshold=3, device=torch.device("cpu"))
    assert keep.shape == data.caption_mask.shape and not (keep & ~data.caption_mask).any()
    assert keep.any(axis=1)[data.caption_mask.any(axis=1)].all()  # every video keeps a caption
    from videxperts.training.retrieval.teachtext import teacher_split_similarities

    sims, cv, ci = teacher_split_similarities(teachers, data, torch.device("cpu"))
    ranks = t2v_ranks(sims, cv)
    assert keep[cv[ranks < 3], ci[ranks < 3]].all()
    dropped = ~keep[cv, ci]
    assert dropped.any() and (ranks[dropped] >= 3).all()


def test_student_trains_with_two_teachers(splits, tmp_path, tmp_path_factory):
    paths = []
    for enc in ("t1", "t2"):
        cfg = _cfg(enc, name=f"teacher-{enc}")
        result = fit(cfg, splits, LoopOptions(), r := Reporter(str(tmp_path / enc)))
        state = torch.load(f"{r.last_checkpoint}/state.pt", weights_only=True)
        assert result["best_epoch"] >= 1
        paths.append(str(save_model_checkpoint(tmp_path / enc / "model.pt", cfg, state)))
    teachers = load_teachers(paths, torch.device("cpu"))
    assert [t.encoder for t in teachers] == ["t1", "t2"]
    student_cfg = _cfg("t1", name="student",
                       teachtext={"teachers": paths, "weight": 1.0, "denoise": {"threshold": 10}})
    student = fit(student_cfg, splits, LoopOptions(), Reporter(), {"teachers": teachers})
    hist = student["history"]
    assert all(h["train/distill"] > 0 for h in hist)
    assert hist[-1]["train/loss"] < hist[0]["train/loss"]
    assert max(h["val/t2v/R1"] for h in hist) > 2 * 100 / 12
    n_params = count_parameters(build_model(student_cfg))
    check_golden("teachtext_1worker", golden_view(student, n_params), portable=False)
    # the same student under Ray Train with 2 workers (teachers loaded inside each worker)
    import tempfile

    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)
    res = run_ray_training(student_cfg, {"kind": "arrays", "splits": splits}, LoopOptions(), num_workers=2,
                           storage_path=str(tmp_path_factory.mktemp("tt-ray")), name="tt2", max_failures=0,
                           resources={"teacher_paths": paths})
    assert res.error is None
    with tempfile.TemporaryDirectory() as d:
        two, _, _ = read_result(res.checkpoint.to_directory(d))
    check_golden("teachtext_2workers", golden_view(two, n_params), portable=False)
