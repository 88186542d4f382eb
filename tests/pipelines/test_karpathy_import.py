"""Karpathy-split JSON captions for raw images -> a dataset dir (manifest + 5 captions per image)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from videxperts.errors import UserError
from videxperts.pipelines.cli import cli
from videxperts.pipelines.extract_inputs import list_inputs
from videxperts.pipelines.karpathy_import import import_karpathy
from videxperts.storage.manifest import read_captions, read_manifest


def _coco(root: Path) -> Path:
    entries = []
    for i, (folder, split) in enumerate([("val2014", "test"), ("val2014", "restval"), ("train2014", "train"),
                                         ("val2014", "val")]):
        (root / folder).mkdir(parents=True, exist_ok=True)
        name = f"COCO_{folder}_{i:012d}.jpg"
        Image.fromarray(np.full((20 + i, 30, 3), 40 * i, np.uint8)).save(root / folder / name)
        entries.append({"filepath": folder, "filename": name, "split": split, "cocoid": i,
                        "sentences": [{"raw": f"Picture {i} sentence {k}. ", "tokens": []} for k in range(5 + (i == 2))]})
    path = root / "dataset_coco.json"
    path.write_text(json.dumps({"dataset": "coco", "images": entries}))
    return path


def test_cli_writes_manifest_captions_and_links(tmp_path):
    src = _coco(tmp_path / "coco")
    out = tmp_path / "data"
    res = CliRunner().invoke(cli, ["data", "import-karpathy", str(src), "--images", str(tmp_path / "coco"),
                                   "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["splits"] == {"train": 2, "val": 1, "test": 1}  # restval -> train
    man = {r["video_id"]: r for r in read_manifest(out).to_pylist()}
    assert man["COCO_val2014_000000000001"]["split"] == "train" and man["COCO_val2014_000000000003"]["height"] == 23
    caps = read_captions(out).to_pylist()
    assert len(caps) == 20 and caps[0]["caption"] == "Picture 0 sentence 0."  # first 5 raw, stripped
    assert Path(man["COCO_train2014_000000000002"]["path"]).resolve() == \
        (tmp_path / "coco" / "train2014" / "COCO_train2014_000000000002.jpg").resolve()
    assert len(list_inputs(str(out)).videos) == 4  # extract reads it like any dataset
    again = import_karpathy(src, tmp_path / "coco", out, restval="skip")  # re-run over the same links
    assert again["images"] == 3


def test_bad_entries_name_the_image(tmp_path):
    src = _coco(tmp_path / "coco")
    doc = json.loads(src.read_text())
    doc["images"][3]["sentences"] = doc["images"][3]["sentences"][:2]
    src.write_text(json.dumps(doc))
    with pytest.raises(UserError, match="image 3 .*2 sentences, need 5"):
        import_karpathy(src, tmp_path / "coco", tmp_path / "d")
    (tmp_path / "coco" / "val2014" / "COCO_val2014_000000000000.jpg").unlink()
    with pytest.raises(UserError, match="COCO_val2014_000000000000.jpg: missing or not an image"):
        import_karpathy(src, tmp_path / "coco", tmp_path / "d", limit=1)
    assert not (tmp_path / "d" / "manifest.parquet").exists()
