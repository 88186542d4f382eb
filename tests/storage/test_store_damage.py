"""A damaged store: verify names every damaged object and its videos, the commands that read it
say which file in one line, and ``store repair`` makes the next extract redo exactly the lost
pairs (issue 14, item 3). Damage of each kind: a chunk, array metadata, group (registry)
metadata, a commit record, the root, HEAD."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from videxperts.errors import UserError
from videxperts.pipelines.commands.store import store as store_cli
from videxperts.storage.reader import StoreReader
from videxperts.storage.repair import repair
from videxperts.storage.store import FeatureStore, StoreDamaged

VIDEOS = [f"v{i}" for i in range(6)]
ROWS = 200  # 1024-d float16: 256 rows a chunk, so the videos spread over several chunks
PROV = {"backbone": "toy", "weights": "random-init:seed=0", "extractor_version": "1"}


def _feats(vid: str, name: str, dim: int) -> np.ndarray:
    seed = int(vid[1:]) + (100 if name == "b" else 0)
    return np.random.default_rng(seed).standard_normal((ROWS, dim)).astype("float32")


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("healthy") / "store.zarr"
    s = FeatureStore.open(str(path), mode="a")
    s.ensure_expert("a", 1024, PROV)
    s.ensure_expert("b", 16, PROV)
    s.ensure_text_encoder("t", 8, PROV)
    with s.writer("w0") as w:
        for vid in VIDEOS:  # one commit record per video
            w.write(vid, "a", _feats(vid, "a", 1024), np.arange(ROWS, dtype="float32"))
            w.write(vid, "b", _feats(vid, "b", 16), np.arange(ROWS, dtype="float32"))
            w.write_text(vid, 0, "t", np.ones((5, 8), "float32"))
            w.commit()
    assert s.verify() == []
    return path


@pytest.fixture
def copy(healthy: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "store.zarr"
    shutil.copytree(healthy, dest)
    return dest


def _shard(store: Path) -> Path:
    return next(p for p in (store / "shards").iterdir() if p.is_dir())


def _truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: (len(data) // 2 if keep is None else keep)])


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(store_cli, list(args))
    # a UserError is what the console entry point prints as one line (exit 2)
    assert res.exception is None or isinstance(res.exception, (SystemExit, UserError)), res.exception
    return res.exit_code, res.output


def _verify_json(store: Path) -> dict:
    code, out = _cli("verify", str(store), "--json")
    assert code == 1
    return json.loads(out)


def _one_line(exc: pytest.ExceptionInfo, needle: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and needle in msg, msg


def test_truncated_chunk(copy: Path) -> None:
    chunk = _shard(copy) / "features" / "a" / "c" / "1" / "0"  # rows 256-511: videos v1 and v2
    _truncate(chunk)
    doc = _verify_json(copy)
    [d] = doc["damage"]
    assert d["object"].endswith("features/a/c/1/0") and d["videos"] == ["v1", "v2"]
    with pytest.raises(StoreDamaged) as err:  # what train reads through
        StoreReader(str(copy)).load_expert("a", VIDEOS, mode="mean")
    _one_line(err, "features/a/c/1/0")
    out = repair(str(copy))
    assert out["pairs_marked_pending"] == 2
    fs = FeatureStore.open(str(copy), mode="r")
    assert fs.pending(VIDEOS, ["a", "b"]) == {"v1": ["a"], "v2": ["a"]}
    # the next extract redoes exactly them; the store is then healthy again
    with FeatureStore.open(str(copy), mode="a").writer("w1") as w:
        for vid in ("v1", "v2"):
            w.write(vid, "a", _feats(vid, "a", 1024), np.arange(ROWS, dtype="float32"))
    assert FeatureStore.open(str(copy), mode="r").verify() == []
    feats, ok = StoreReader(str(copy)).load_expert("a", VIDEOS, mode="mean")
    assert ok.all()


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_array_metadata(copy: Path, how: str) -> None:
    meta = _shard(copy) / "timestamps" / "b" / "zarr.json"
    _truncate(meta) if how == "truncated" else meta.unlink()
    doc = _verify_json(copy)
    assert any(d["object"].endswith("timestamps/b") and d["videos"] == VIDEOS for d in doc["damage"])
    with pytest.raises(StoreDamaged) as err:
        StoreReader(str(copy)).load_timestamps("b", VIDEOS)
    _one_line(err, "timestamps/b")
    repair(str(copy))
    assert FeatureStore.open(str(copy), mode="r").pending(VIDEOS, ["a", "b"]) == {v: ["b"] for v in VIDEOS}


def test_deleted_shard_array_is_redone(copy: Path) -> None:
    shutil.rmtree(_shard(copy) / "features" / "b")
    assert any("features/b" in p for p in FeatureStore.open(str(copy), mode="r").verify())
    with pytest.raises(StoreDamaged, match="store verify"):
        StoreReader(str(copy)).load_expert("b", VIDEOS)
    repair(str(copy))
    assert FeatureStore.open(str(copy), mode="r").pending(VIDEOS, ["a", "b"]) == {v: ["b"] for v in VIDEOS}


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_registry_entry(copy: Path, how: str) -> None:
    entry = copy / "experts" / "a" / "zarr.json"
    _truncate(entry) if how == "truncated" else entry.unlink()
    fs = FeatureStore.open(str(copy), mode="r")
    with pytest.raises(StoreDamaged) as err:
        fs.info()
    _one_line(err, "experts/a/zarr.json")
    with pytest.raises(StoreDamaged):  # what extract does first
        FeatureStore.open(str(copy), mode="a").ensure_expert("a", 1024, PROV)
    code, out = _cli("info", str(copy))
    assert code != 0
    assert any(d["object"] == "experts/a/zarr.json" for d in _verify_json(copy)["damage"])
    repair(str(copy))
    fs = FeatureStore.open(str(copy), mode="a")
    assert "a" not in fs.experts and fs.info()["experts"]["b"]["done"] == len(VIDEOS)
    fs.ensure_expert("a", 1024, PROV)  # extract registers it again: same settings, its records return
    assert fs.pending(VIDEOS, ["a", "b"]) == {}


def test_truncated_commit_record(copy: Path) -> None:
    record = sorted((copy / "commits").glob("*.parquet"))[2]  # the commit of v2
    _truncate(record, keep=1024)
    fs = FeatureStore.open(str(copy), mode="r")
    for call in (fs.info, lambda: fs.pending(VIDEOS, ["a"]), lambda: StoreReader(str(copy))):
        with pytest.raises(StoreDamaged) as err:
            call()
        _one_line(err, record.name)
    with pytest.raises(StoreDamaged):
        FeatureStore.open(str(copy), mode="a").compact()
    assert any(d["object"] == f"commits/{record.name}" for d in _verify_json(copy)["damage"])
    out = repair(str(copy))
    assert any(m.endswith(record.name) for m in out["moved_aside"])
    fs = FeatureStore.open(str(copy), mode="r")
    assert fs.pending(VIDEOS, ["a", "b"]) == {"v2": ["a", "b"]}
    assert fs.verify() == []


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_root_metadata(copy: Path, how: str) -> None:
    root = copy / "zarr.json"
    _truncate(root) if how == "truncated" else root.unlink()
    for mode in ("r", "a"):
        with pytest.raises(StoreDamaged) as err:
            FeatureStore.open(str(copy), mode=mode)
        _one_line(err, "store repair")
    code, out = _cli("verify", str(copy))
    assert code == 1 and "DAMAGED" in out
    repair(str(copy))
    fs = FeatureStore.open(str(copy), mode="r")
    assert fs.verify() == [] and fs.pending(VIDEOS, ["a", "b"]) == {}


def test_damaged_head_after_compaction(copy: Path) -> None:
    FeatureStore.open(str(copy), mode="a").compact()
    _truncate(copy / "HEAD.json", keep=5)
    with pytest.raises(StoreDamaged) as err:
        FeatureStore.open(str(copy), mode="r").info()
    _one_line(err, "HEAD.json")
    assert _verify_json(copy)["damage"]
    repair(str(copy))  # HEAD points at the newest readable base again
    fs = FeatureStore.open(str(copy), mode="r")
    assert fs.verify() == [] and fs.pending(VIDEOS, ["a", "b"]) == {}
