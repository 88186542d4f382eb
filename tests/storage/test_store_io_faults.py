"""A store on a filesystem that fills up or turns read-only (issue 14, item 1), on a real tmpfs.

Wanted: one line naming the store and the OS error, committed work stays readable, and the
same writer (or a re-run) completes once the cause is gone.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.storage.fault_fs import empty, fill, set_read_only, small_fs
from videxperts.storage.reader import StoreReader
from videxperts.storage.store import FeatureStore, StoreIOError

PROV = {"backbone": "toy", "weights": "random-init:seed=0", "extractor_version": "1", "sampling": "1fps"}


def _feats(seed: int, rows: int = 40, dim: int = 256) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, dim)).astype("float32")


def _write(w, vid: str, seed: int) -> None:
    w.write(vid, "toy", _feats(seed), np.arange(40, dtype="float32"))


@pytest.mark.parametrize("fault", ["full", "read_only"])
def test_commit_on_a_failing_filesystem_is_one_line_and_recoverable(fault: str) -> None:
    with small_fs(8) as point:
        url = str(point / "store.zarr")
        store = FeatureStore.open(url, mode="a")
        store.ensure_expert("toy", 256, PROV)
        w = store.writer("w0")
        _write(w, "v0", 0)
        w.commit()
        (fill if fault == "full" else lambda p: set_read_only(p, True))(point)
        _write(w, "v1", 1)
        with pytest.raises(StoreIOError) as err:
            w.commit()
        msg = str(err.value)
        assert "\n" not in msg and url in msg
        assert ("No space left" in msg) if fault == "full" else ("Read-only file system" in msg)
        # what was committed before the fault is readable, the failed commit is invisible
        feats, ok = StoreReader(FeatureStore.open(url, mode="r")).load_expert("toy", ["v0"], mode="mean")
        assert ok.all() and np.allclose(feats[0], _feats(0).astype("float16").astype("float32").mean(0), atol=1e-3)
        assert FeatureStore.open(url, mode="r").pending(["v0", "v1"], ["toy"]) == {"v1": ["toy"]}
        # the cause removed: the same writer commits what it kept buffered
        (empty if fault == "full" else lambda p: set_read_only(p, False))(point)
        w.close()
        fresh = FeatureStore.open(url, mode="r")
        assert fresh.pending(["v0", "v1"], ["toy"]) == {}
        assert fresh.verify() == []


def test_registering_an_expert_on_a_full_filesystem_is_one_line() -> None:
    with small_fs(4) as point:
        url = str(point / "store.zarr")
        store = FeatureStore.open(url, mode="a")
        fill(point)
        with pytest.raises(StoreIOError, match="No space left") as err:
            store.ensure_expert("toy", 256, PROV)
        assert url in str(err.value)
