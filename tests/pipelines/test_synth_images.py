"""Synthetic image-caption pairs, and images through `videxperts extract` into a store (regions expert)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from tests.pipelines.extract_helpers import extract_cmd, ray_cluster, run_extract_cli
from videxperts.errors import UserError
from videxperts.pipelines.synth.images import keyframe, synthesize_images
from videxperts.pipelines.synth.plan import plan_specs


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imgs") / "data"
    synthesize_images(out, 12, test_images=5, seed=3)
    return out


def test_five_captions_per_image_coco_like_split_and_determinism(images, tmp_path):
    man = pq.read_table(images / "manifest.parquet").to_pylist()
    caps = pq.read_table(images / "captions.parquet").to_pylist()
    assert [r["split"] for r in man] == ["test"] * 5 + ["val"] * 5 + ["train"] * 2  # test: 5 folds of 1
    specs = plan_specs(12, 3, 1.0, 1.0)
    for row, spec in zip(man, specs, strict=True):
        own = [c for c in caps if c["video_id"] == row["video_id"]]
        assert [c["caption_idx"] for c in own] == [0, 1, 2, 3, 4] and len({c["caption"] for c in own}) == 5
        assert all(spec.scene in c["caption"] for c in own)  # every caption says what the picture shows
        assert f'"{spec.word}"' in own[0]["caption"] and all(s.color in own[0]["caption"] for s in spec.shapes)
        assert not any(w in c["caption"] for c in own for w in ("moves", "says", "hum", "beep"))  # a still: no motion/sound
        np.testing.assert_array_equal(np.asarray(Image.open(images / row["path"])), keyframe(spec))
    again = tmp_path / "again"
    synthesize_images(again, 12, test_images=5, seed=3)
    assert _digest(again) == _digest(images)
    with pytest.raises(UserError, match="leaves no training images"):
        synthesize_images(tmp_path / "x", 4, test_images=2)


def test_images_extract_through_the_pipeline_into_36_region_rows(images, tmp_path):
    from videxperts.storage.reader import StoreReader
    from videxperts.storage.store import FeatureStore

    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump({"name": "tiny", "experts": {"regions": {
        "variant": "fasterrcnn_resnet50_fpn", "num_classes": 5, "size": 64, "max_size": 96, "proposals": 40,
        "batch_size": 4, "device": "cpu"}}}))
    store = tmp_path / "store.zarr"
    with ray_cluster(tmp_path) as head:
        # a glob of three PNGs (the dataset dir itself works the same way, through its manifest)
        s = run_extract_cli(extract_cmd(str(images / "images" / "img0000[0-2].png"), store, head["gcs_address"],
                                        "--experts", "regions", "--profile", str(profile), "--no-tracking"), head)
    assert (s["inputs"], s["done"], s["failed"]) == (3, 3, 0)
    ids = ["img00000", "img00001", "img00002"]
    feats, mask = StoreReader(str(store)).load_expert("regions", ids, mode="seq")
    assert feats.shape == (3, 36, 2048) and mask.all()
    prov = FeatureStore.open(str(store), mode="r").info()["experts"]["regions"]["provenance"]
    assert prov["weights"] == "random-init:seed=0" and prov["boxes"] == 36
    import videxperts

    side = videxperts.open_store(str(store)).side("regions", "img00001")  # boxes and scores kept beside the rows
    boxes, scores = np.asarray(side["boxes"]), np.asarray(side["scores"])
    assert boxes.shape == (1, 36, 4) and scores.shape == (1, 36) and 1 <= side["n_boxes"][0] <= 36
    assert ((boxes >= 0) & (boxes <= 1)).all() and (boxes[..., 2:] >= boxes[..., :2]).all()
