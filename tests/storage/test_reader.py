"""Training-side reader against a naive per-video reference: padding, masks, means, text."""

from __future__ import annotations

import numpy as np
import pytest

from tests.storage.test_store import PROV
from videxperts.storage.reader import StoreReader
from videxperts.storage.store import FeatureStore, StoreError

DIM, TDIM = 24, 10


def _data(rng: np.random.Generator, n_videos: int) -> tuple[dict, dict]:
    """Random variable-length features (some empty, some missing) and captions."""
    feats, texts = {}, {}
    for i in range(n_videos):
        v = f"vid{i:04d}"
        t = int(rng.integers(0, 40)) if i % 7 else 0
        feats[v] = (rng.normal(size=(t, DIM)) * 4).astype(np.float16).astype(np.float32)
        texts[v] = {
            c: rng.normal(size=(int(rng.integers(1, 9)), TDIM)).astype(np.float16).astype(np.float32)
            for c in range(int(rng.integers(0, 4)))
        }
    return feats, texts


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[str, dict, dict, list[str]]:
    """A store whose rows are spread over two writers' shards, a compacted base and new commits."""
    rng = np.random.default_rng(7)
    url = str(tmp_path_factory.mktemp("reader") / "store.zarr")
    store = FeatureStore.open(url, "a")
    store.ensure_expert("scene", DIM, PROV)
    store.ensure_text_encoder("minilm", TDIM, PROV)
    feats, texts = _data(rng, 160)
    vids = list(feats)
    failed = vids[5::11]

    def write(w, batch):
        for v in batch:
            if v in failed:
                w.fail(v, "scene", "DecodeError", "x", 1)
            else:
                w.write(v, "scene", feats[v], np.arange(len(feats[v])))
            for c, tok in texts[v].items():
                w.write_text(v, c, "minilm", tok)
            w.commit()

    with store.writer("a") as w:
        write(w, vids[:60])
    store.compact()
    with store.writer("b") as w1, store.writer("c") as w2:
        write(w1, vids[60:110])
        write(w2, vids[110:])
    return url, feats, texts, failed


def _naive_seq(feats: dict, vids: list[str], failed: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros((len(vids), max_len, DIM), np.float32)
    mask = np.zeros((len(vids), max_len), bool)
    for i, v in enumerate(vids):
        if v in failed:
            continue
        x = feats[v][:max_len]
        out[i, : len(x)] = x
        mask[i, : len(x)] = True
    return out, mask


def test_mean_matches_naive_reference(built) -> None:
    url, feats, _, failed = built
    r = StoreReader(url)
    rng = np.random.default_rng(1)
    vids = list(rng.permutation(list(feats)))[:120]
    got, avail = r.load_expert("scene", vids, mode="mean")
    for i, v in enumerate(vids):
        ok = v not in failed and len(feats[v]) > 0
        assert avail[i] == ok, v
        want = feats[v].mean(0) if ok else np.zeros(DIM, np.float32)
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
    assert got.shape == (120, DIM) and got.dtype == np.float32


@pytest.mark.parametrize("max_len", [None, 1, 7, 64])
def test_seq_padding_and_mask(built, max_len) -> None:
    url, feats, _, failed = built
    r = StoreReader(url)
    vids = list(feats)[::-1]  # unsorted order over base and shards
    got, mask = r.load_expert("scene", vids, mode="seq", max_len=max_len)
    length = max(len(feats[v]) for v in vids if v not in failed) if max_len is None else max_len
    want, want_mask = _naive_seq(feats, vids, failed, length)
    assert got.shape == (len(vids), length, DIM)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(got, want)


def test_duplicates_and_subset(built) -> None:
    url, feats, _, failed = built
    r = StoreReader(url)
    v = [x for x in feats if x not in failed and len(feats[x])][3]
    got, mask = r.load_expert("scene", [v, v, v], mode="seq")
    assert (got[0] == got[2]).all() and mask.all()
    toks, _, cm = r.load_text("minilm", [v, v])
    assert (toks[0] == toks[1]).all() and (cm[0] == cm[1]).all()


def test_text_matches_naive_reference(built) -> None:
    url, _, texts, _ = built
    r = StoreReader(url)
    vids = list(texts)[20:140]
    toks, tmask, cmask = r.load_text("minilm", vids, max_captions=2, max_tokens=5)
    assert toks.shape == (len(vids), 2, 5, TDIM)
    for i, v in enumerate(vids):
        for c in range(2):
            tok = texts[v].get(c)
            assert cmask[i, c] == (tok is not None)
            n = 0 if tok is None else min(5, len(tok))
            assert tmask[i, c].sum() == n and tmask[i, c, :n].all()
            if n:
                np.testing.assert_array_equal(toks[i, c, :n], tok[:n])
            assert not toks[i, c, n:].any()
    full, fmask, _ = r.load_text("minilm", vids)
    assert full.shape[1] == max(max(t, default=-1) + 1 for t in (texts[v].keys() for v in vids))
    assert fmask.sum() == sum(len(t) for v in vids for t in texts[v].values())


def test_unknown_ids_and_names_are_clear_errors(built) -> None:
    url, feats, _, _ = built
    r = StoreReader(url)
    with pytest.raises(StoreError, match="2 video ids are not in .*nope1, nope2"):
        r.load_expert("scene", [next(iter(feats)), "nope1", "nope2"])
    with pytest.raises(StoreError, match="no expert 'ocr'.*it has: scene"):
        r.load_expert("ocr", list(feats)[:2])
    with pytest.raises(StoreError, match="mode must be"):
        r.load_expert("scene", list(feats)[:2], mode="max")


def test_reader_snapshot_is_stable(built, tmp_path) -> None:
    url, feats, _, _ = built
    r = StoreReader(url)
    assert r.experts == ["scene"] and r.text_encoders == ["minilm"]
    assert len(r.video_ids) == len(feats)
    m, avail = r.load_expert("scene", [])
    assert m.shape == (0, DIM) and avail.shape == (0,)


@pytest.mark.parametrize("where", ["local", "memory"])
def test_direct_chunk_reads_match_zarr(tmp_path, where) -> None:
    """The direct chunk path and the Zarr path return the same rows, incl. never-written chunks."""
    from videxperts.storage._fs import StoreRoot
    from videxperts.storage._gather import ChunkSource, gather_rows, segment_rows
    from videxperts.storage.store import FeatureStore as FS

    url = str(tmp_path / "g.zarr") if where == "local" else f"memory://videxperts-tests/{tmp_path.name}/g.zarr"
    store = FS.open(url, "w")
    arr = store._create_array("x/f", (1000, 7), "float16", (16, 7))
    data = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float16)
    data[32:64] = 0  # two all-zero chunks: zarr does not write them
    arr[:] = data
    src = ChunkSource.for_array(arr, store._root, "x/f")
    assert src is not None and isinstance(store._root, StoreRoot)
    rows = np.concatenate([segment_rows([5, 40, 990, 100], [30, 10, 10, 1]), [7, 7, 3]])  # unsorted, dupes
    fast = gather_rows(arr, rows, source=src)
    slow = gather_rows(arr, rows)
    np.testing.assert_array_equal(fast, data[rows])
    np.testing.assert_array_equal(slow, data[rows])
    out = np.zeros((len(rows) + 5, 7), np.float32)
    gather_rows(arr, rows, out, np.arange(5, len(rows) + 5), src)
    np.testing.assert_array_equal(out[5:], data[rows].astype(np.float32))
    with pytest.raises(IndexError):
        gather_rows(arr, np.array([1000]), source=src)
