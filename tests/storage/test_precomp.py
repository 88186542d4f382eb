"""SCAN precomp import: features streamed into the store, captions into the dataset dir, no pickles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from videxperts.errors import UserError
from videxperts.pipelines.cli import cli
from videxperts.storage.manifest import read_captions, read_manifest
from videxperts.storage.precomp import import_precomp, open_features
from videxperts.storage.reader import StoreReader
from videxperts.storage.store import FeatureStore


def _precomp(root: Path, split: str, n: int, seed: int, regions: int = 3, dim: int = 8) -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    ims = np.random.default_rng(seed).normal(size=(n, regions, dim)).astype(np.float32)
    np.save(root / f"{split}_ims.npy", ims)
    (root / f"{split}_caps.txt").write_text("".join(f"Image {i} caption {k} shows a thing\n"
                                                   for i in range(n) for k in range(5)), encoding="utf-8")
    return ims


def test_cli_import_streams_features_and_writes_captions(tmp_path):
    src = tmp_path / "f30k_precomp"
    train = _precomp(src, "train", 5, 0)
    test = _precomp(src, "test", 2, 1)
    store, data = tmp_path / "s.zarr", tmp_path / "data"
    res = CliRunner().invoke(cli, ["store", "import-precomp", str(src), str(store), "--data", str(data),
                                    "--dataset", "f30k", "--splits", "train,test", "--chunk", "2", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["splits"]["train"] == {"images": 5, "captions": 25, "captions_per_image": 5, "dataset_split": "train"}
    reader = StoreReader(str(store))
    feats, mask = reader.load_expert("regions", [f"f30k_train_{i:06d}" for i in range(5)], mode="seq")
    assert feats.shape == (5, 3, 8) and mask.all()
    np.testing.assert_array_equal(feats, train)
    np.testing.assert_array_equal(reader.load_expert("regions", ["f30k_test_000001"], mode="seq")[0][0], test[1])
    caps = read_captions(data).to_pylist()
    first = [c for c in caps if c["video_id"] == "f30k_train_000003"]
    assert [c["caption_idx"] for c in first] == [0, 1, 2, 3, 4]
    assert first[2]["caption"] == "Image 3 caption 2 shows a thing"  # text mode: no b'...' artefact
    assert not any(c["caption"].startswith("b'") for c in caps)
    splits = {r["video_id"]: r["split"] for r in read_manifest(data).to_pylist()}
    assert splits["f30k_test_000000"] == "test" and len(splits) == 7
    prov = FeatureStore.open(str(store), mode="r").info()["experts"]["regions"]["provenance"]
    assert prov["dtype"] == "float32" and prov["weights"] == "scan-precomp:f30k"


def test_float16_option_dev_merge_and_provenance(tmp_path):
    src = tmp_path / "coco_precomp"
    dev = _precomp(src, "dev", 3, 2)
    _precomp(src, "testall", 2, 3)
    store, data = str(tmp_path / "s.zarr"), tmp_path / "data"
    import_precomp(src, store, data, dataset="coco", splits=["testall"], dtype="float16", chunk=1)
    import_precomp(src, store, data, dataset="coco", splits=["dev"], dtype="float16")  # merged into the same dir
    got = StoreReader(store).load_expert("regions", ["coco_dev_000002"], mode="seq")[0][0]
    np.testing.assert_allclose(got, dev[2], rtol=1e-3, atol=1e-3)
    assert FeatureStore.open(store, mode="r").info()["experts"]["regions"]["dtype"] == "float16"
    assert {r["split"] for r in read_manifest(data).to_pylist()} == {"val", "test"}
    assert len(read_captions(data)) == 25
    with pytest.raises(UserError, match="extracted differently"):  # float32 into a float16 expert is refused
        import_precomp(src, store, data, dataset="coco", splits=["dev"], dtype="float32")


def test_bad_files_are_named_and_pickles_refused(tmp_path):
    src = tmp_path / "p"
    _precomp(src, "train", 2, 0)
    assert isinstance(open_features(src / "train_ims.npy"), np.memmap)  # memory-mapped, not loaded
    (src / "train_caps.txt").write_text("one\ntwo\nthree\n")
    with pytest.raises(UserError, match="train_caps.txt: 3 caption lines for 2 images"):
        import_precomp(src, str(tmp_path / "s.zarr"), tmp_path / "d", dataset="f30k", splits=["train"])
    np.save(src / "dev_ims.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="dev_ims.npy: not a plain numeric"):
        import_precomp(src, str(tmp_path / "s.zarr"), tmp_path / "d", dataset="f30k", splits=["dev"])
    with pytest.raises(UserError, match="test_ims.npy: no such file"):
        import_precomp(src, str(tmp_path / "s.zarr"), tmp_path / "d", dataset="f30k", splits=["test"])
    assert not (tmp_path / "s.zarr").exists()  # nothing written before every file checked out
