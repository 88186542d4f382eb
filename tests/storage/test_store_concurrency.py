"""Lock-free concurrency: several writer processes at once, and a writer SIGKILLed mid-write.

The writer processes run this file as a script (``python test_store_concurrency.py URL
WRITER VIDEO...``), so the spawn target is import-safe and needs no pickling.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from videxperts.storage.reader import StoreReader  # noqa: E402
from videxperts.storage.store import FeatureStore  # noqa: E402

EXPERTS = {"scene": 64, "audio": 16}
PROV = {"backbone": "test", "weights": "random-init:seed=0", "sampling": {}, "extractor_version": "1"}


def expected(video_id: str, expert: str) -> np.ndarray:
    """Deterministic features per (video, expert), identical in every process."""
    rng = np.random.default_rng(zlib.crc32(f"{video_id}/{expert}".encode()))
    rows = int(rng.integers(1, 30))
    return (rng.integers(-100, 100, size=(rows, EXPERTS[expert])) / 8).astype(np.float32)


def worker(url: str, writer_id: str, videos: list[str], commit_every: int, storage_options: dict) -> None:
    """Register experts, then write and commit ``videos`` (the writer-process body)."""
    store = FeatureStore.open(url, "a", storage_options=storage_options)
    for name, dim in EXPERTS.items():
        store.ensure_expert(name, dim, PROV)
    todo = store.pending(videos, sorted(EXPERTS))
    w = store.writer(writer_id)
    for i, (v, experts) in enumerate(todo.items()):
        for e in experts:
            x = expected(v, e)
            w.write(v, e, x, np.arange(len(x), dtype=np.float32))
        if (i + 1) % commit_every == 0:
            w.commit()
    w.close()


def spawn(url: str, writer_id: str, videos: list[str], commit_every: int = 1,
          storage_options: dict | None = None) -> subprocess.Popen:
    args = [sys.executable, __file__, url, writer_id, str(commit_every), json.dumps(storage_options or {}), *videos]
    return subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True)  # noqa: S603 - our own script


def check_store(url: str, storage_options: dict | None = None) -> set[str]:
    """Assert the store verifies and every visible video is whole and exact; return done videos."""
    store = FeatureStore.open(url, "r", storage_options=storage_options)
    assert store.verify() == []
    st = store.status_table().to_pandas()
    assert (st["state"] == "done").all()
    done = set(st["video_id"])
    r = StoreReader(store)
    vids = sorted(done)
    for e in EXPERTS:
        seq, mask = r.load_expert(e, vids, mode="seq")
        for i, v in enumerate(vids):
            x = expected(v, e)
            assert mask[i].sum() == len(x), (v, e)
            np.testing.assert_array_equal(seq[i, : len(x)], x)
    # a video is visible for all experts or for none (they are committed together)
    per_video = st.groupby("video_id")["expert"].nunique()
    assert (per_video == len(EXPERTS)).all()
    return done



def test_registration_landing_between_the_two_looks_is_not_damage(tmp_path: Path) -> None:
    """Writer A finds no zarr.json; writer B registers the expert; A then sees B's folder. That is
    B's registration, not a folder without its zarr.json (the race seen on S3 with two writers)."""
    url = str(tmp_path / "s.zarr")
    a = FeatureStore.open(url, "w-")
    b = FeatureStore.open(url, "a")
    real = a._root.exists
    seen: list[str] = []

    def exists(rel: str) -> bool:
        found = real(rel)
        if rel == "experts/scene/zarr.json" and not seen:
            seen.append(rel)
            b.ensure_expert("scene", 4, PROV)  # lands after A's first look
        return found

    a._root.exists = exists
    a.ensure_expert("scene", 4, PROV)
    assert seen and a.experts["scene"]["dim"] == 4 and b.experts == a.experts

def test_concurrent_writer_processes(tmp_path) -> None:
    url = str(tmp_path / "store.zarr")
    FeatureStore.open(url, "w-")
    vids = [f"v{i:03d}" for i in range(60)]
    # four processes; videos 0-9 are written by two of them (a re-run racing the first run)
    parts = [vids[0:20], vids[20:40], vids[40:60], vids[0:10]]
    procs = [spawn(url, f"w{k}", part, commit_every=1 + k) for k, part in enumerate(parts)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    done = check_store(url)
    assert done == set(vids)
    store = FeatureStore.open(url, "a")
    info = store.info()
    assert info["videos"] == 60
    assert all(info["experts"][e]["done"] == 60 for e in EXPERTS)
    assert info["shards"] == 4
    out = store.compact()
    assert out["shards_removed"] == 4
    assert check_store(url) == set(vids)
    assert store.info()["commits_pending_compaction"] == 0


def test_registration_never_exposes_a_folder_without_its_metadata(tmp_path, monkeypatch) -> None:
    """A registration in flight must not look like damage to another process: the expert's
    folder appears only with its zarr.json in it (CI once saw 'experts/audio/zarr.json ...
    damaged (missing)' from a second writer registering at the same instant)."""
    url = str(tmp_path / "store.zarr")
    store = FeatureStore.open(url, "a")
    other = FeatureStore.open(url, "a")
    seen: list[str] = []
    real_open = open

    def observing_open(path, *a, **k):  # look at the store from "another process" mid-write
        if not seen and (str(path).endswith(".partial") or ".partial/" in str(path)):
            monkeypatch.setattr("builtins.open", real_open)
            for name in ("scene", "audio"):
                try:
                    other.ensure_expert(name, EXPERTS[name], PROV)
                    seen.append(f"{name}:ok")
                except Exception as exc:  # noqa: BLE001 - recorded and asserted below
                    seen.append(f"{name}:{type(exc).__name__}")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", observing_open)
    store.ensure_expert("scene", EXPERTS["scene"], PROV)
    assert seen and not [s for s in seen if not s.endswith(":ok")], seen
    assert set(FeatureStore.open(url, "r").experts) == {"scene", "audio"}


def test_sigkill_mid_write_then_resume(tmp_path) -> None:
    url = str(tmp_path / "store.zarr")
    FeatureStore.open(url, "w-")
    vids = [f"k{i:03d}" for i in range(400)]
    rnd = random.Random(os.getpid())
    proc = spawn(url, "victim", vids, commit_every=2)
    commits = Path(url) / "commits"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(commits.glob("*.parquet"))) < 3:
        time.sleep(0.02)
    time.sleep(rnd.uniform(0.0, 0.5))  # kill at a random instant of the write/commit loop
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the writer finished before it could be killed"
    done = check_store(url)
    assert 0 < len(done) < len(vids)
    store = FeatureStore.open(url, "a")
    pending = store.pending(vids, sorted(EXPERTS))
    assert set(pending) == set(vids) - done
    # the resumed writer completes the rest, in-process this time
    worker(url, "resumed", vids, commit_every=50, storage_options={})
    assert check_store(url) == set(vids)
    assert store.pending(vids, sorted(EXPERTS)) == {}
    store.compact(prune_unsealed=True)  # no writer runs now: the killed writer's shard may go
    assert [n for n in store._root.list_names("shards") if n != "zarr.json"] == []
    assert check_store(url) == set(vids)


if __name__ == "__main__":
    _url, _writer, _every, _opts, *_videos = sys.argv[1:]
    worker(_url, _writer, _videos, int(_every), json.loads(_opts))
