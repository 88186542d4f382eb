"""Large splits are memory-mapped from a cache file streamed out of the store in blocks: the
same rows, batches and training result as in RAM, bounded memory while it is built, reused only
for the same features, and one line when the cache cannot be written."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from tests.storage.fault_fs import fill, small_fs
from tests.training.matching.store import PROVENANCE, write_match_store
from tests.training.matching.tiny import tiny_cfg
from videxperts.errors import UserError
from videxperts.storage.reader import StoreReader
from videxperts.storage.store import FeatureStore
from videxperts.training.matching import regions as regions_mod
from videxperts.training.matching.regions import load_regions
from videxperts.training.matching.task import MatchingTask
from videxperts.training.runner import LoopOptions, Reporter, fit
from videxperts.training.splits import read_splits

SIZES = {"train": 16, "val": 4, "test": 4}


def _splits(cfg, store: str, data: str, work) -> dict:
    task = MatchingTask()
    resources = task.worker_resources(cfg, task.data_resources(cfg, data, work), None)
    reader, ids = StoreReader(store), read_splits(data)
    return {s: task.load_split(reader, cfg, ids[s], resources) for s in SIZES}


@pytest.fixture()
def tiny_store(tmp_path):
    cfg = tiny_cfg(train={"batch_size": 20, "epochs": 1, "seed": 0})
    store, data = write_match_store(cfg, SIZES, tmp_path)
    return cfg, store, data


def test_memory_mapped_split_trains_exactly_as_in_ram(tmp_path, tiny_store, one_torch_thread) -> None:
    cfg, store, data = tiny_store
    streamed_cfg = tiny_cfg(train={"batch_size": 20, "epochs": 1, "seed": 0}, data={"in_memory_gb": 0.0})
    ram = _splits(cfg, store, data, tmp_path / "ram")
    mapped = _splits(streamed_cfg, store, data, tmp_path / "mapped")
    cached = sorted((tmp_path / "mapped" / "cache" / "regions").glob("*.npy"))
    assert len(cached) == 3 and not list((tmp_path / "ram").glob("cache/regions/*.npy"))
    for s in SIZES:
        assert isinstance(mapped[s].regions, np.memmap) and not isinstance(ram[s].regions, np.memmap)
        assert mapped[s].item_ids == ram[s].item_ids
        np.testing.assert_array_equal(np.asarray(mapped[s].regions), ram[s].regions)
    rows = np.array([7, 0, 33, 12])
    for k, v in ram["train"].batch(rows).items():
        assert torch.equal(v, mapped["train"].batch(rows)[k]), k

    torch.manual_seed(0)
    want = fit(cfg, ram, LoopOptions(), Reporter())
    torch.manual_seed(0)
    got = fit(streamed_cfg, mapped, LoopOptions(), Reporter())
    assert got["test"] == want["test"] and got["best_epoch"] == want["best_epoch"]


def test_cache_is_reused_for_the_same_features_only(tmp_path, tiny_store) -> None:
    cfg, store, data = tiny_store
    cfg = tiny_cfg(data={"in_memory_gb": 0.0})
    ids = read_splits(data)["train"]
    cache = tmp_path / "cache"
    load_regions(StoreReader(store), cfg, ids, cache)
    (first,) = cache.glob("*.npy")
    stamp = first.stat().st_mtime_ns
    load_regions(StoreReader(store), cfg, ids, cache)  # the same features: the same file, not rebuilt
    assert [p.name for p in cache.glob("*.npy")] == [first.name] and first.stat().st_mtime_ns == stamp

    load_regions(StoreReader(store), cfg, ids[:-1], cache)  # other items: another file
    fs = FeatureStore.open(store, mode="a")  # re-extracted features: other rows, another file
    fs.drop_expert("regions")
    fs.ensure_expert("regions", cfg.model.img_dim, PROVENANCE)
    w = fs.writer("again")
    for item in ids:
        w.write(item, "regions", np.ones((cfg.data.regions, cfg.model.img_dim), np.float32),
                np.arange(cfg.data.regions, dtype=np.float32))
    w.close()
    _, rows = load_regions(StoreReader(store), cfg, ids, cache)
    assert len(list(cache.glob("*.npy"))) == 3 and np.all(np.asarray(rows) == 1.0)


def test_cache_is_built_in_bounded_memory(tmp_path, monkeypatch) -> None:
    n, r, d = 1000, 36, 256  # 37 MB of float32 rows
    cfg = tiny_cfg(model={"img_dim": d}, data={"regions": r, "in_memory_gb": 0.0})
    fs = FeatureStore.open(str(tmp_path / "big.zarr"), mode="w")
    fs.ensure_expert("regions", d, PROVENANCE)
    w = fs.writer("big")
    rng = np.random.default_rng(0)
    ids = [f"img{i:04d}" for i in range(n)]
    for item in ids:
        w.write(item, "regions", rng.standard_normal((r, d), dtype=np.float32), np.arange(r, dtype=np.float32))
    w.close()
    monkeypatch.setattr(regions_mod, "BLOCK_BYTES", 512 * 1024)
    reader = StoreReader(fs.url)
    tracemalloc.start()
    try:
        _, rows = load_regions(reader, cfg, ids, tmp_path / "cache")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    total = n * r * d * 4
    assert peak < total / 6, (peak, total)  # blocks of 0.5 MB and a few store chunks (3.3 MB), not the whole split
    want, _ = reader.load_expert("regions", ids[:5], mode="seq")
    np.testing.assert_array_equal(np.asarray(rows[:5]), want)


def test_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path, tiny_store) -> None:
    _, store, data = tiny_store
    cfg = tiny_cfg(data={"in_memory_gb": 0.0})
    ids = read_splits(data)["train"]
    with small_fs(4) as fs:
        fill(fs)
        with pytest.raises(UserError, match=r"^cannot cache the 'regions' rows of 16 items in .*no space left") as e:
            load_regions(StoreReader(store), cfg, ids, fs / "cache")
        assert "\n" not in str(e.value)
        assert not [p for p in (fs / "cache").iterdir() if p.suffix in (".npy", ".partial")]
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match=r"^cannot create the region cache folder"):
        load_regions(StoreReader(store), cfg, ids, tmp_path / "a-file" / "cache")
