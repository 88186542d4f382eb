"""The store on a real S3-compatible endpoint: moto_server on 127.0.0.1, driven through s3fs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.storage.test_store_concurrency import EXPERTS, check_store, expected, spawn
from videxperts.storage.reader import StoreReader
from videxperts.storage.store import FeatureStore

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3() -> dict:
    """A moto S3 server subprocess and a fresh bucket; yields s3fs storage_options."""
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        pytest.fail(f"moto_server not found next to {sys.executable}: install the dev extra (moto[server])")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)  # noqa: S310 - local server
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        import s3fs

        opts = {"endpoint_url": endpoint, "key": "test", "secret": "test"}
        s3fs.S3FileSystem(**opts).mkdir("videxperts-test")
        yield opts
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_s3_round_trip_verify_compact(s3: dict) -> None:
    url = f"s3://videxperts-test/{uuid.uuid4().hex}/store.zarr"
    store = FeatureStore.open(url, "a", storage_options=s3)
    prov = {"backbone": "test", "weights": "sha256:00ff", "sampling": {}, "extractor_version": "1"}
    for name, dim in EXPERTS.items():
        store.ensure_expert(name, dim, prov)
    store.ensure_text_encoder("minilm", 8, prov)
    vids = [f"s{i:02d}" for i in range(10)]
    with store.writer("w") as w:
        for i, v in enumerate(vids):
            for e in EXPERTS:
                x = expected(v, e)
                w.write(v, e, x, np.arange(len(x)))
            w.write_text(v, 0, "minilm", np.full((3, 8), i, np.float32))
            if i % 3 == 2:
                w.commit()
    w2 = store.writer("w2")
    w2.fail("s00", "scene", "DecodeError", "truncated", 2)  # supersedes the earlier done
    w2.commit()
    reopened = FeatureStore.open(url, "r", storage_options=s3)
    st = reopened.status_table().to_pandas().set_index(["video_id", "expert"])
    assert st.loc[("s00", "scene"), "state"] == "failed"
    assert reopened.pending(vids, ["scene"]) == {"s00": ["scene"]}
    assert reopened.verify() == []
    info = reopened.info()
    assert info["videos"] == 10 and info["experts"]["scene"]["failed"] == 1 and info["size_bytes"] > 0
    r = StoreReader(url, storage_options=s3)
    seq, mask = r.load_expert("audio", vids, mode="seq")
    x = expected("s04", "audio")
    np.testing.assert_array_equal(seq[4, : len(x)], x)
    toks, _, cm = r.load_text("minilm", vids)
    assert cm.all() and (toks[7] == 7).all()
    w2.close()
    store.compact()
    assert store._root.list_names("commits") == []
    r2 = StoreReader(url, storage_options=s3)
    np.testing.assert_array_equal(r2.load_expert("audio", vids, mode="seq")[0], seq)
    assert not r2.load_expert("scene", ["s00"])[1][0]
    assert FeatureStore.open(url, "r", storage_options=s3).verify() == []


def test_s3_concurrent_writer_processes(s3: dict) -> None:
    url = f"s3://videxperts-test/{uuid.uuid4().hex}/store.zarr"
    FeatureStore.open(url, "w-", storage_options=s3)
    vids = [f"p{i:02d}" for i in range(16)]
    procs = [spawn(url, f"w{k}", vids[k::2], commit_every=3, storage_options=s3) for k in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert check_store(url, s3) == set(vids)
    FeatureStore.open(url, "a", storage_options=s3).compact()
    assert check_store(url, s3) == set(vids)
