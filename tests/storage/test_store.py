"""Feature store: round trip, status and supersession, provenance, resume, verify, compact."""

from __future__ import annotations

import uuid
import zlib

import numpy as np
import pytest
import zarr

from videxperts.errors import UserError
from videxperts.storage.reader import StoreReader
from videxperts.storage.store import FeatureStore, ProvenanceMismatchError, StoreError

PROV = {
    "backbone": "densenet161",
    "weights": "random-init:seed=0",
    "sampling": {"frames": {"fps": 1.0, "size": 224}},
    "extractor_version": "1",
}


def prov(**kw: object) -> dict:
    return PROV | kw


def feats(video_id: str, expert: str, dim: int, rows: int | None = None) -> np.ndarray:
    """Deterministic features for (video, expert), exactly representable in float16."""
    seed = zlib.crc32(f"{video_id}/{expert}".encode())
    rng = np.random.default_rng(seed)
    t = int(rng.integers(1, 6)) if rows is None else rows
    return (rng.integers(-64, 64, size=(t, dim)) / 16).astype(np.float32)


@pytest.fixture(params=["local", "memory"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "store.zarr")
    return f"memory://videxperts-tests/{uuid.uuid4().hex}/store.zarr"


@pytest.fixture
def store(url: str) -> FeatureStore:
    s = FeatureStore.open(url, mode="a")
    s.ensure_expert("scene", 16, prov())
    s.ensure_expert("audio", 8, prov(backbone="vggish", dtype="float32"))
    s.ensure_text_encoder("minilm", 12, prov(backbone="all-MiniLM-L6-v2"))
    return s


def test_round_trip_local_and_memory(store: FeatureStore, url: str) -> None:
    vids = [f"v{i:03d}" for i in range(12)]
    with store.writer("w0") as w:
        for i, v in enumerate(vids):
            x = feats(v, "scene", 16)
            w.write(v, "scene", x, np.arange(len(x)) * 0.5)
            w.write(v, "audio", feats(v, "audio", 8), np.arange(len(feats(v, "audio", 8))))
            if i % 5 == 4:
                assert w.commit() == 10
    reopened = FeatureStore.open(url, mode="r")
    assert set(reopened.experts) == {"audio", "scene"}
    assert reopened.experts["scene"]["dim"] == 16
    assert reopened.experts["audio"]["provenance"]["dtype"] == "float32"
    assert reopened.experts["scene"]["provenance"]["dtype"] == "float16"  # the documented default
    r = StoreReader(url)
    seq, mask = r.load_expert("scene", vids, mode="seq")
    ts = r.load_timestamps("scene", vids)
    for i, v in enumerate(vids):
        x = feats(v, "scene", 16)
        np.testing.assert_array_equal(seq[i, : len(x)], x)
        assert mask[i].sum() == len(x)
        np.testing.assert_array_equal(ts[i, : len(x)], np.arange(len(x)) * 0.5)
    a, _ = r.load_expert("audio", vids, mode="seq")
    np.testing.assert_array_equal(a[3, : len(feats(vids[3], "audio", 8))], feats(vids[3], "audio", 8))
    assert seq.dtype == np.float32 and mask.dtype == bool
    assert store.verify() == []


def test_float16_storage_halves_bytes(store: FeatureStore) -> None:
    with store.writer("w") as w:
        w.write("v", "scene", feats("v", "scene", 16, rows=4), np.arange(4))
    snap = store.snapshot()
    src = snap.records["source"].iloc[0]
    assert store._array(f"{src}/features/scene").dtype == np.float16


def test_status_states_and_supersession(store: FeatureStore, url: str) -> None:
    w1 = store.writer("w1")
    w1.write("a", "scene", feats("a", "scene", 16), [0.0] * len(feats("a", "scene", 16)))
    w1.fail("b", "scene", "DecodeError", "corrupt moov atom", attempts=1)
    w1.quarantine("c", "scene", "decoder hangs")
    w1.commit()
    t = store.status_table().to_pandas().set_index(["video_id", "expert"])
    assert t.loc[("a", "scene"), "state"] == "done"
    assert t.loc[("b", "scene"), "state"] == "failed"
    assert t.loc[("b", "scene"), "error_class"] == "DecodeError"
    assert t.loc[("b", "scene"), "message"] == "corrupt moov atom"
    assert t.loc[("b", "scene"), "attempts"] == 1
    assert t.loc[("c", "scene"), "state"] == "quarantined"
    # a later commit from another writer supersedes: b succeeds, a now fails
    w2 = store.writer("w2")
    w2.write("b", "scene", feats("b", "scene", 16), np.zeros(len(feats("b", "scene", 16))))
    w2.fail("a", "scene", "OOM", "out of memory", attempts=2)
    w2.commit()
    t = store.status_table().to_pandas().set_index(["video_id", "expert"])
    assert t.loc[("a", "scene"), "state"] == "failed" and t.loc[("a", "scene"), "attempts"] == 2
    assert t.loc[("b", "scene"), "state"] == "done"
    # within one commit the last call wins
    w1.fail("c", "scene", "X", "first", 1)
    w1.write("c", "scene", feats("c", "scene", 16), np.zeros(len(feats("c", "scene", 16))))
    w1.close()
    w2.close()
    info = FeatureStore.open(url, "r").info()
    assert info["experts"]["scene"]["done"] == 2 and info["experts"]["scene"]["failed"] == 1
    assert info["experts"]["scene"]["failure_reasons"][0]["error_class"] == "OOM"
    r = StoreReader(url)
    m, avail = r.load_expert("scene", ["a", "b", "c"])
    assert avail.tolist() == [False, True, True]
    np.testing.assert_allclose(m[1], feats("b", "scene", 16).mean(0), rtol=1e-6)
    assert not m[0].any()


def test_uncommitted_rows_are_invisible(store: FeatureStore, url: str) -> None:
    w = store.writer("w")
    w.write("a", "scene", feats("a", "scene", 16), np.zeros(len(feats("a", "scene", 16))))
    w.commit()
    w.write("b", "scene", feats("b", "scene", 16), np.zeros(len(feats("b", "scene", 16))))
    assert w.buffered == 1
    # the writer is abandoned (as if its process died) before committing b
    assert set(store.status_table()["video_id"].to_pylist()) == {"a"}
    with pytest.raises(StoreError, match="not in"):
        StoreReader(url).load_expert("scene", ["b"])
    assert store.pending(["a", "b"], ["scene"]) == {"b": ["scene"]}


def test_provenance_mismatch_and_drop(store: FeatureStore, url: str) -> None:
    store.ensure_expert("scene", 16, prov(device="cuda:1"))  # non-identity keys may differ
    with pytest.raises(ProvenanceMismatchError, match="extractor_version.*--overwrite-expert scene"):
        store.ensure_expert("scene", 16, prov(extractor_version="2"))
    with pytest.raises(ProvenanceMismatchError, match="weights: store has \"random-init:seed=0\""):
        store.ensure_expert("scene", 16, prov(weights="sha256:abc"))
    with pytest.raises(ProvenanceMismatchError, match="dim: store has 16, asked 32"):
        store.ensure_expert("scene", 32, prov())
    with pytest.raises(UserError):
        store.ensure_expert("scene", 16, prov(dtype="float32"))
    with pytest.raises(StoreError, match="lacks weights"):
        store.ensure_expert("face", 4, {"extractor_version": "1"})
    with store.writer("w") as w:
        w.write("a", "scene", feats("a", "scene", 16), np.zeros(len(feats("a", "scene", 16))))
        w.write("a", "audio", feats("a", "audio", 8), np.zeros(len(feats("a", "audio", 8))))
    assert store.pending(["a"], ["scene", "audio"]) == {}
    store.drop_expert("scene")
    assert "scene" not in store.experts
    store.ensure_expert("scene", 16, prov(extractor_version="2"))
    assert store.experts["scene"]["provenance"]["extractor_version"] == "2"
    assert store.pending(["a"], ["scene", "audio"]) == {"a": ["scene"]}  # old rows are gone
    out = store.compact()
    assert out["rows"] == len(feats("a", "audio", 8))  # dropped expert's rows not copied
    assert store.verify() == []
    # dropping again after re-adding with the first provenance must not resurrect old rows
    store.drop_expert("scene")
    store.ensure_expert("scene", 16, prov())
    assert store.pending(["a"], ["scene"]) == {"a": ["scene"]}


def test_pending_resume(store: FeatureStore) -> None:
    vids = [f"v{i}" for i in range(6)]
    with store.writer("w") as w:
        w.write("v0", "scene", feats("v0", "scene", 16), np.zeros(len(feats("v0", "scene", 16))))
        w.write("v0", "audio", feats("v0", "audio", 8), np.zeros(len(feats("v0", "audio", 8))))
        w.write("v1", "scene", np.zeros((0, 16), np.float32), np.zeros(0))  # done with zero rows
        w.fail("v2", "scene", "DecodeError", "bad", 3)
        w.quarantine("v3", "scene", "hangs")
        w.quarantine("v3", "audio", "hangs")
    got = store.pending(vids, ["audio", "scene"])
    assert got == {
        "v1": ["audio"],
        "v2": ["audio", "scene"],
        "v4": ["audio", "scene"],
        "v5": ["audio", "scene"],
    }
    # an expert the store has never seen is pending everywhere
    assert store.pending(["v0"], ["ocr"]) == {"v0": ["ocr"]}
    # a resumed worker finishes the rest; nothing is left
    with store.writer("w-resume") as w:
        for v, experts in got.items():
            for e in experts:
                x = feats(v, e, store.experts[e]["dim"])
                w.write(v, e, x, np.zeros(len(x)))
    assert store.pending(vids, ["audio", "scene"]) == {}


def test_write_validation(store: FeatureStore) -> None:
    w = store.writer("w")
    with pytest.raises(StoreError, match="expected \\[T, 16\\]"):
        w.write("a", "scene", np.zeros((2, 15)), np.zeros(2))
    with pytest.raises(StoreError, match="NaN"):
        w.write("a", "scene", np.full((2, 16), np.nan), np.zeros(2))
    with pytest.raises(StoreError, match="float16 range"):
        w.write("a", "scene", np.full((2, 16), 1e6), np.zeros(2))
    w.write("a", "audio", np.full((2, 8), 1e6), np.zeros(2))  # float32 expert keeps large values
    with pytest.raises(StoreError, match="2 rows but 3 timestamps"):
        w.write("a", "scene", np.zeros((2, 16)), np.zeros(3))
    with pytest.raises(StoreError, match="not registered.*ensure_expert"):
        w.write("a", "ocr", np.zeros((2, 16)), np.zeros(2))
    with pytest.raises(StoreError, match="invalid writer name"):
        store.writer("../evil")


def test_open_modes(tmp_path) -> None:
    with pytest.raises(StoreError, match="no feature store"):
        FeatureStore.open(str(tmp_path / "missing.zarr"), mode="r")
    s = FeatureStore.open(str(tmp_path / "s.zarr"), mode="w-")
    s.ensure_expert("scene", 4, prov())
    with pytest.raises(StoreError, match="already exists"):
        FeatureStore.open(str(tmp_path / "s.zarr"), mode="w-")
    ro = FeatureStore.open(str(tmp_path / "s.zarr"), mode="r")
    with pytest.raises(StoreError, match="read-only"):
        ro.writer("w")
    assert FeatureStore.open(str(tmp_path / "s.zarr"), mode="w").experts == {}
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(StoreError, match="not a videxperts feature store"):
        FeatureStore.open(str(tmp_path / "plain.zarr"), mode="a")


def _damage_first_row(store: FeatureStore, expert: str, video: str, value: float) -> None:
    """Overwrite a committed row in place, as bit rot or a buggy tool would."""
    df = store.snapshot().records
    row = df[(df["name"] == expert) & (df["video_id"] == video)].iloc[0]
    arr = zarr.open_array(store=store._root.zarr_store, path=f"{row['source']}/features/{expert}", mode="r+")
    arr[int(row["row_start"])] = value


@pytest.mark.parametrize("compacted", [False, True])
def test_verify_detects_nan_inf_and_missing_arrays(store: FeatureStore, compacted: bool) -> None:
    with store.writer("w") as w:
        for v in ("a", "b", "c"):
            w.write(v, "scene", feats(v, "scene", 16), np.zeros(len(feats(v, "scene", 16))))
            w.write(v, "audio", feats(v, "audio", 8), np.zeros(len(feats(v, "audio", 8))))
    if compacted:
        store.compact()
    assert store.verify() == []
    _damage_first_row(store, "scene", "b", np.nan)
    _damage_first_row(store, "audio", "c", np.inf)
    problems = store.verify()
    assert any("'scene'" in p and "non-finite" in p and "b" in p for p in problems), problems
    assert any("'audio'" in p and "non-finite" in p and "c" in p for p in problems), problems
    assert len(problems) == 2
    src = store.snapshot().records["source"].dropna().iloc[0]
    store._root.remove(f"{src}/features/audio", recursive=True)
    assert any("'audio'" in p and "missing" in p for p in store.verify())


def test_verify_reports_unreadable_commit(store: FeatureStore) -> None:
    with store.writer("w") as w:
        w.write("a", "scene", feats("a", "scene", 16), np.zeros(len(feats("a", "scene", 16))))
    store._root.put_atomic("commits/zz-garbage-00000000.parquet", b"not parquet")
    problems = FeatureStore.open(store.url, "r").verify()
    assert any("zz-garbage" in p and "unreadable" in p for p in problems)


def test_compact_keeps_everything_and_cleans_up(store: FeatureStore, url: str) -> None:
    vids = [f"v{i}" for i in range(30)]
    for k in range(3):
        with store.writer(f"w{k}") as w:
            for v in vids[k::3]:
                x = feats(v, "scene", 16)
                w.write(v, "scene", x, np.arange(len(x), dtype=np.float32))
                w.write_text(v, 0, "minilm", feats(v, "minilm", 12))
                w.commit()
    live = store.writer("live")  # a writer that keeps running across the compaction
    live.write("late", "scene", feats("late", "scene", 16), np.zeros(len(feats("late", "scene", 16))))
    live.commit()
    before_seq, _ = StoreReader(url).load_expert("scene", vids + ["late"], mode="seq")
    out = store.compact()
    assert out["shards_removed"] == 3  # sealed shards go; the live writer's shard stays
    assert store._root.list_names("commits") == []
    live.write("later", "scene", feats("later", "scene", 16), np.zeros(len(feats("later", "scene", 16))))
    live.close()
    after = StoreReader(url)
    seq, _ = after.load_expert("scene", vids + ["late"], mode="seq")
    np.testing.assert_array_equal(seq, before_seq)
    assert after.load_expert("scene", ["later"])[1].tolist() == [True]
    t, _, cm = after.load_text("minilm", vids)
    assert cm.all() and t.shape[:2] == (30, 1)
    assert store.verify() == []
    store.compact()
    assert [n for n in store._root.list_names("shards") if n != "zarr.json"] == []
    assert len([n for n in store._root.list_names("base") if n != "zarr.json"]) == 1
    np.testing.assert_array_equal(StoreReader(url).load_expert("scene", vids + ["late"], mode="seq")[0], before_seq)


def test_compact_crash_before_switch_leaves_old_view(store: FeatureStore, url: str, monkeypatch) -> None:
    with store.writer("w") as w:
        for v in ("a", "b"):
            w.write(v, "scene", feats(v, "scene", 16), np.zeros(len(feats(v, "scene", 16))))
    before = StoreReader(url).load_expert("scene", ["a", "b"], mode="seq")[0]
    real_put = store._root.put_atomic

    def crash_on_switch(rel: str, data: bytes) -> None:
        if rel == "HEAD.json":
            raise OSError("simulated crash before the switch")
        real_put(rel, data)

    monkeypatch.setattr(store._root, "put_atomic", crash_on_switch)
    with pytest.raises(OSError, match="simulated"):
        store.compact()
    monkeypatch.undo()
    fresh = FeatureStore.open(url, "a")
    assert fresh.verify() == []
    np.testing.assert_array_equal(StoreReader(url).load_expert("scene", ["a", "b"], mode="seq")[0], before)
    fresh.compact()  # a later compaction succeeds and removes the orphaned half-made base
    assert len([n for n in fresh._root.list_names("base") if n != "zarr.json"]) == 1
    np.testing.assert_array_equal(StoreReader(url).load_expert("scene", ["a", "b"], mode="seq")[0], before)


def test_reader_on_a_live_store_sees_grown_shards(store: FeatureStore) -> None:
    w = store.writer("w")
    w.write("a", "scene", feats("a", "scene", 16), np.zeros(len(feats("a", "scene", 16))))
    w.commit()
    assert StoreReader(store).load_expert("scene", ["a"])[1].all()  # caches the shard array
    w.write("b", "scene", feats("b", "scene", 16), np.zeros(len(feats("b", "scene", 16))))
    w.commit()
    seq, mask = StoreReader(store).load_expert("scene", ["a", "b"], mode="seq")
    np.testing.assert_array_equal(seq[1, : mask[1].sum()], feats("b", "scene", 16))
    w.close()
