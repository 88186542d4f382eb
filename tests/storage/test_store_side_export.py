"""Side data (OCR/ASR words with times, face boxes) kept in the store, and `store export` in three formats."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import videxperts
from tests.storage.test_store import PROV
from videxperts.storage.store import FeatureStore

EXE = str(Path(sys.executable).with_name("videxperts"))
OCR = {"words": ["hello", "world"], "times": [0.5, 1.5]}
ASR = {"words": ["a", "cat"], "word_times": [[0.1, 0.3], [0.4, 0.9]]}
BOXES = {"boxes": [[0.0, 10, 20, 30, 40, 0.99], [0.5, 12, 22, 30, 40, 0.97]]}


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = str(tmp_path / "store.zarr")
    store = FeatureStore.open(url, "a")
    for name, dim in (("ocr", 3), ("speech", 3), ("face", 2)):
        store.ensure_expert(name, dim, PROV | {"dtype": "float32"})
    with store.writer("w1") as w:
        w.write("v.1", "ocr", np.ones((2, 3), np.float32), np.array([0.5, 1.5]), {"words": ["stale"], "times": [9.0]})
    with store.writer("w2") as w:  # a later extraction of the same video supersedes the first words
        w.write("v.1", "ocr", np.arange(6, dtype=np.float32).reshape(2, 3), np.array([0.5, 1.5]), OCR)
        w.write("v.1", "speech", np.full((2, 3), 2, np.float32), np.array([0.1, 0.4]), ASR)
        w.write("v.1", "face", np.full((2, 2), 3, np.float32), np.array([0.0, 0.5]),
                {"boxes": np.asarray(BOXES["boxes"])})
        w.write("v2", "ocr", np.zeros((0, 3), np.float32), np.zeros(0))  # done, nothing read
        w.fail("v2", "face", "FaceError", "v2.mp4: boom", 1)
    return url


def test_words_and_boxes_are_readable_from_python(url: str) -> None:
    view = videxperts.open_store(url)
    ocr = view.words("ocr", "v.1")
    assert ocr["word"].tolist() == ["hello", "world"] and ocr["start"].tolist() == [0.5, 1.5]
    assert ocr["end"].isna().all()
    asr = view.words("speech", "v.1")
    assert asr.to_dict("list") == {"word": ["a", "cat"], "start": [0.1, 0.4], "end": [0.3, 0.9]}
    boxes = view.boxes("v.1")
    assert list(boxes.columns) == ["t", "x", "y", "w", "h", "prob"] and boxes.values.tolist() == BOXES["boxes"]
    assert view.words("ocr", "v2").empty and view.side("ocr", "v2") == {}
    with pytest.raises(KeyError, match="video 'v2' has no face features"):
        view.boxes("v2")
    with pytest.raises(KeyError, match="'scene' is not an expert"):
        view.words("scene", "v.1")
    FeatureStore.open(url, "a").compact()  # side/ survives compaction: records keep writer and sequence
    again = videxperts.open_store(url)
    assert again.words("ocr", "v.1")["word"].tolist() == ["hello", "world"] and len(again.boxes("v.1")) == 2
    assert FeatureStore.open(url, "r").verify() == []


def test_export_npz_parquet_webdataset(url: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = subprocess.run([EXE, "store", "export", url, str(out / "npz"), "--format", "npz", "--json"],  # noqa: S603
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["rows"] == {"face": 2, "ocr": 2, "speech": 2}
    with np.load(out / "npz" / "features.npz", allow_pickle=False) as z:
        assert z["video_ids"].tolist() == ["v.1", "v2"]
        assert z["ocr/offsets"].tolist() == [0, 2, 2] and z["face/offsets"].tolist() == [0, 2, 2]
        np.testing.assert_array_equal(z["ocr/features"], np.arange(6, dtype=np.float32).reshape(2, 3))
        np.testing.assert_allclose(z["speech/timestamps"], [0.1, 0.4], rtol=1e-6)

    res = subprocess.run([EXE, "store", "export", url, str(out / "pq"), "--format", "parquet",  # noqa: S603
                          "--experts", "ocr"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    table = pq.read_table(out / "pq" / "ocr.parquet").to_pydict()
    assert table["video_id"] == ["v.1", "v.1"] and table["row"] == [0, 1] and table["t"] == [0.5, 1.5]
    assert table["feature"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert not (out / "pq" / "face.parquet").exists()

    res = subprocess.run([EXE, "store", "export", url, str(out / "wds"), "--format", "webdataset",  # noqa: S603
                          "--shard-size", "1"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    shards = sorted((out / "wds").glob("shard-*.tar"))
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar"]
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        assert names[0] == "v_1.json" and {"v_1.ocr.npy", "v_1.ocr_ts.npy", "v_1.face.npy", "v_1.speech.npy"} <= set(names)
        assert {n.split(".", 1)[0] for n in names} == {"v_1"}  # one sample key per video (WebDataset grouping)
        meta = json.loads(tar.extractfile("v_1.json").read())
        x = np.load(io.BytesIO(tar.extractfile("v_1.ocr.npy").read()), allow_pickle=False)
    assert meta["video_id"] == "v.1" and meta["side"]["ocr"] == OCR and meta["side"]["speech"] == ASR
    np.testing.assert_array_equal(x, np.arange(6, dtype=np.float32).reshape(2, 3))
    bad = subprocess.run([EXE, "store", "export", url, str(out / "x"), "--format", "npz", "--experts", "nope"],  # noqa: S603
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("videxperts: error: --experts: nope not in")
