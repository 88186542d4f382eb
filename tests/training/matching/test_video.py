"""Matching on video: T frame/clip rows of a video expert become its "regions" (chunk means), so
DCPG trains and reports the same R@k on a video store as on images."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.matching.store import write_match_store
from tests.training.matching.tiny import tiny_cfg
from videxperts.storage.reader import StoreReader
from videxperts.training.matching.data import resample_rows
from videxperts.training.matching.task import MatchingTask, read_captions
from videxperts.training.runner import LoopOptions, Reporter, fit
from videxperts.training.splits import read_splits


def test_chunk_means_of_frames() -> None:
    x = np.arange(14, dtype=np.float32).reshape(1, 7, 2)
    out, ok = resample_rows(x, np.ones((1, 7), bool), 3, "chunks")
    # chunks [0,2) [2,4) [4,7) of the 7 frames
    assert ok.all() and np.allclose(out[0, :, 0], [1.0, 5.0, 10.0])
    out, _ = resample_rows(x[:, :2], np.ones((1, 2), bool), 4, "chunks")  # fewer frames: repeated
    assert np.allclose(out[0, :, 0], [0, 0, 2, 2])


def test_dcpg_on_a_video_expert(tmp_path, one_torch_thread) -> None:
    cfg = tiny_cfg(data={"expert": "i3d", "regions": 4, "resample": "chunks", "captions_per_item": 5},
                   train={"batch_size": 20, "epochs": 1, "seed": 0})
    store, data = write_match_store(cfg, {"train": 12, "val": 4, "test": 4}, tmp_path, expert="i3d", rows=9)
    task = MatchingTask()
    task.check_store(cfg, StoreReader(store).store, "cfg", store)
    resources = task.worker_resources(cfg, task.data_resources(cfg, data, tmp_path / "work"), None)
    reader, ids = StoreReader(store), read_splits(data)
    splits = {s: task.load_split(reader, cfg, ids[s], resources) for s in ("train", "val", "test")}
    assert splits["train"].regions.shape == (12, 4, 12) and len(read_captions(data)) == 20
    res = fit(cfg, splits, LoopOptions(), Reporter())
    assert {"i2t_r1", "t2i_r10", "rsum"} <= set(res["test"]) and 0 <= res["test"]["rsum"] <= 600
    with pytest.raises(Exception, match="has no features for 'regions'"):
        task.check_store(tiny_cfg(), StoreReader(store).store, "cfg", store)
