"""videxperts.training.retrieval.data: reader arrays -> SplitData (through a real store), splits, the global batch sampler."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.synth_store import write_store
from videxperts.errors import UserError
from videxperts.training.retrieval.config import load_config
from videxperts.training.retrieval.data import GlobalBatchSampler, load_split, synthetic_splits
from videxperts.training.splits import read_caption_texts, read_splits

CFG = {
    "task": "retrieval",
    "name": "tiny",
    "data": {"experts": {"a": {"dim": 6}, "s": {"dim": 4, "temporal": "vlad", "clusters": 2, "max_tokens": 3}},
             "text": {"encoder": "t1", "dim": 5, "max_tokens": 4, "max_captions": 3}},
    "model": {"shared_dim": 8, "text_vlad": {"clusters": 2, "ghosts": 0}},
    "train": {"batch_size": 4, "epochs": 1},
}


@pytest.fixture(scope="module")
def cfg():
    return load_config(CFG)


def test_store_round_trip_equals_arrays(tmp_path, cfg):
    splits = synthetic_splits(cfg, {"train": 6, "val": 3}, extra_encoders=["t2"])
    store = write_store(splits, tmp_path / "s.zarr", tmp_path / "data")
    ids = read_splits(tmp_path / "data")
    assert ids["train"] == splits["train"].video_ids and ids["val"] == splits["val"].video_ids
    got = load_split(store, cfg, ids["train"] + ["not-in-store"])  # unknown ids are skipped
    want = splits["train"]
    assert got.video_ids == want.video_ids and got.text_encoder == "t1"
    np.testing.assert_allclose(got.experts["a"], want.experts["a"], atol=1e-6)
    np.testing.assert_allclose(got.experts["s"], want.experts["s"], atol=1e-6)
    np.testing.assert_array_equal(got.available, want.available)
    np.testing.assert_array_equal(got.caption_mask, want.caption_mask)
    np.testing.assert_allclose(got.tokens, want.tokens, atol=1e-6)
    assert read_caption_texts(tmp_path / "data")[(want.video_ids[0], 0)] == f"caption 0 of {want.video_ids[0]}"
    with pytest.raises(UserError, match="encoder 't2'"):
        got.text_batch(np.array([0]), np.array([0]), encoder="t2")


def test_missing_manifest_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="manifest"):
        read_splits(tmp_path)


def test_sampler_global_batches_do_not_depend_on_world_size():
    mask = np.ones((10, 3), bool)
    mask[2, 1:] = False
    keep = np.ones_like(mask)
    keep[5] = [False, True, False]
    s = GlobalBatchSampler(mask, batch_size=4, seed=7, keep=keep)
    batches = s.epoch(3)
    assert [len(v) for v, _ in batches] == [4, 4, 2]
    vids = np.concatenate([v for v, _ in batches])
    assert sorted(vids) == list(range(10))  # every video once per epoch
    for v, c in batches:
        assert mask[v, c].all() and keep[v, c].all()
        assert (c[v == 5] == 1).all()
    shards = list(zip(s.shards(3, 0, 2), s.shards(3, 1, 2), strict=True))
    for (v, c), ((v0, c0), (v1, c1)) in zip(batches, shards, strict=True):
        np.testing.assert_array_equal(np.concatenate([v0, v1]), v)
        np.testing.assert_array_equal(np.concatenate([c0, c1]), c)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(s.epoch(3), s.epoch(4), strict=True))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(s.epoch(3), GlobalBatchSampler(mask, 4, 7, keep).epoch(3), strict=True))


def test_sampler_rejects_too_few_videos():
    with pytest.raises(UserError, match="at least 2"):
        GlobalBatchSampler(np.array([[True], [False]]), batch_size=2, seed=0)
