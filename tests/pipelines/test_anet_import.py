"""`data import-anet`: ActivityNet Captions JSON -> timed captions, cleaning, no_missings references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.media import make_clip
from videxperts.errors import UserError
from videxperts.pipelines.anet_import import (
    captions_to_anet,
    clean_caption,
    import_activitynet,
    reference_set,
)
from videxperts.pipelines.cli import main
from videxperts.storage.manifest import read_captions, read_manifest
from videxperts.training.captioning.dense_eval import evaluate_dense_captions

TRAIN = {
    "v_a": {"duration": 2.0, "timestamps": [[0.0, 1.2], [0.8, 2.5]],
            "sentences": ["A man ’s dog runs.  It jumps 3.5 meters.\n", " Then it sits down. "]},
    "v_gone": {"duration": 9.0, "timestamps": [[1, 2]], "sentences": ["Never downloaded."]},
}  # fmt: skip
VAL_1 = {
    "v_b": {"duration": 2.0, "timestamps": [[-0.1, 1.0], [1.5, 1.5]], "sentences": ["A woman talks.", "Empty span."]},
    "v_c": {"duration": 30.0, "timestamps": [[0, 12]], "sentences": ["Features only."]},
    "v_lost": {"duration": 5.0, "timestamps": [[0, 5]], "sentences": ["Missing too."]},
}
VAL_2 = {"v_b": {"duration": 2.0, "timestamps": [[0.2, 1.9]], "sentences": ["Someone is speaking."]}}


def test_published_cleaning_and_file_names():
    assert clean_caption("A man ’s dog runs.  It jumps 3.5 meters.\n") == "A man 's dog runs It jumps 3.5 meters"
    assert clean_caption(" Then... it sits.\nDown. ") == "Then it sits Down"
    assert reference_set("/x/val_1_no_missings.json") == "val_1" and reference_set("train.json") == "train"
    with pytest.raises(UserError, match="train.json, val_1.json or val_2.json"):
        reference_set("test.json")


@pytest.fixture(scope="module")
def anet(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("anet")
    for name, doc in (("train", TRAIN), ("val_1", VAL_1), ("val_2", VAL_2)):
        (root / f"{name}.json").write_text(json.dumps(doc))
    (root / "videos").mkdir()
    make_clip(root / "videos" / "v_a.mp4", seconds=2.0)
    make_clip(root / "videos" / "v_b.mp4", seconds=2.0, audio=False)
    (root / "videos" / "v_lost.mp4").write_bytes(b"not a video at all")
    (root / "feats").mkdir()
    np.save(root / "feats" / "v_c_rgb.npy", np.zeros((5, 1024), np.float32))
    return root, root / "out"


def test_import_keeps_available_videos_and_lists_the_rest(anet):
    root, out = anet
    rc = main(["data", "import-anet", str(root / "train.json"), str(root / "val_1.json"), str(root / "val_2.json"),
               "--videos", str(root / "videos"), "--features", str(root / "feats"), "--out", str(out), "--workers", "1"])  # fmt: skip
    assert rc in (0, None)
    caps = read_captions(out).to_pylist()
    got = [(r["video_id"], r["caption"], r["start"], r["end"], r["split"], r["reference_set"]) for r in caps]
    assert got == [
        ("v_a", "A man 's dog runs It jumps 3.5 meters", 0.0, 1.2, "train", "train"),
        ("v_a", "Then it sits down", 0.8, 2.5, "train", "train"),  # end past the duration: kept
        ("v_b", "A woman talks", 0.0, 1.0, "val", "val_1"),  # negative start clamped to 0
        ("v_b", "Someone is speaking", 0.2, 1.9, "val", "val_2"),
        ("v_c", "Features only", 0.0, 12.0, "val", "val_1"),
    ]
    manifest = read_manifest(out)
    assert manifest.column("video_id").to_pylist() == ["v_a", "v_b", "v_c"]  # splits for every kept video
    assert manifest.column("video_file").to_pylist() == [True, True, False]  # v_c: features only
    assert manifest.column("split").to_pylist() == ["train", "val", "val"]
    assert manifest.column("duration").to_pylist()[2] == 30.0
    report = pq.read_table(out / "import_report.parquet").to_pylist()
    problems = {(r["video_id"], r["problem"]) for r in report}
    assert ("v_gone", "missing_video") in problems and ("v_lost", "missing_video") in problems
    assert ("v_lost", "unreadable:no_video") in problems or any(v == "v_lost" and p.startswith("unreadable") for v, p in problems)
    assert ("v_b", "bad_segment") in problems  # the empty [1.5, 1.5] span
    assert (out / "missing_videos.txt").read_text().split() == ["v_gone", "v_lost"]
    val1 = json.loads((out / "references" / "val_1_no_missings.json").read_text())
    assert set(val1) == {"v_b", "v_c"} and val1["v_b"] == VAL_1["v_b"]  # original sentences, as published
    assert set(json.loads((out / "references" / "train_no_missings.json").read_text())) == {"v_a"}
    assert sorted(p.name for p in (out / "references").iterdir()) == [f"{n}_no_missings.json" for n in ("train", "val_1", "val_2")]
    meta = (out / "meta" / "val_1.csv").read_text().splitlines()
    assert meta == ["video_id\tcaption\tstart\tend\tduration\tphase\tidx",
                    "v_b\tA woman talks\t0\t1\t2\tval_1\t0", "v_c\tFeatures only\t0\t12\t30\tval_1\t1"]  # fmt: skip


def test_references_feed_the_evaluator(anet):
    root, out = anet
    refs = out / "references" / "val_1_no_missings.json"
    preds = {"results": {"v_b": [{"sentence": "a woman talks", "timestamp": [0.0, 1.0]}],
                         "v_c": [{"sentence": "features only", "timestamp": [0.0, 12.0]}]}}  # fmt: skip
    res = evaluate_dense_captions(preds, refs, tious=(0.5,), use_java=False)
    assert res["videos"] == 2 and res["Bleu_1"] == pytest.approx(1.0, abs=1e-6)
    back = captions_to_anet(read_captions(out), split="val", reference_set="val_1")
    assert back["v_b"]["sentences"] == ["A woman talks"] and back["v_c"]["timestamps"] == [[0.0, 12.0]]


def test_bad_annotation_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "val_1.json"
    bad.write_text(json.dumps({"v_x": {"duration": 3, "timestamps": [[0, 1]], "sentences": []}}))
    with pytest.raises(UserError, match=r"val_1.json: video 'v_x': timestamps and sentences"):
        import_activitynet([bad], tmp_path / "o", features=tmp_path)
    with pytest.raises(UserError, match="--videos FOLDER and/or --features"):
        import_activitynet([bad], tmp_path / "o")
