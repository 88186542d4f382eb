"""videxperts data import: real videos in, garbage reported, captions matched, paths safe."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from videxperts.errors import UserError
from videxperts.pipelines.data_import import (
    ProbeError,
    hash_split,
    import_dataset,
    probe_video,
    read_captions_file,
)
from videxperts.storage.manifest import (
    ALLOW_OUTSIDE_ENV,
    ManifestError,
    read_captions,
    read_dataset,
    read_manifest,
)

GOOD = ["synth00000", "synth00001", "bikes", "carphone_pristine"]
BAD = {"empty": "unreadable:empty", "random": "unreadable:corrupt", "cut_index": "unreadable:truncated",
       "cut_tail": "unreadable:corrupt"}  # fmt: skip


@pytest.fixture(scope="module")
def raw_folder(tmp_path_factory: pytest.TempPathFactory, synth_dataset: Path, sample_videos: list[Path]) -> Path:
    """Good videos (synthetic + real samples) next to empty, random and truncated files."""
    folder = tmp_path_factory.mktemp("raw") / "videos"
    (folder / "nested").mkdir(parents=True)
    for vid in ("synth00000", "synth00001"):
        shutil.copy(synth_dataset / "videos" / f"{vid}.mp4", folder / f"{vid}.mp4")
    by_name = {p.stem: p for p in sample_videos}
    shutil.copy(by_name["bikes"], folder / "nested" / "bikes.mp4")
    shutil.copy(by_name["carphone_pristine"], folder / "carphone_pristine.mp4")
    shutil.copy(by_name["carphone_distorted"], folder / "uncaptioned.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    clip = (synth_dataset / "videos" / "synth00002.mp4").read_bytes()
    (folder / "cut_index.mp4").write_bytes(clip[: len(clip) // 2])  # index at the front, media cut off
    tail_index = folder / "tail.tmp.mp4"  # remux with the index at the end, then cut: no index at all
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(synth_dataset / "videos" / "synth00003.mp4"),
                    "-c", "copy", str(tail_index)], check=True, timeout=120)  # fmt: skip
    data = tail_index.read_bytes()
    tail_index.unlink()
    (folder / "cut_tail.mp4").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not a video, ignored")
    return folder


def _write_csv(path: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("video_id", "caption", "split")) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def captions_csv(raw_folder: Path) -> Path:
    rows = []
    for vid in GOOD + list(BAD):
        rows += [(vid, f"first caption of {vid}", "test"), (vid, f"second, with a comma, of {vid}", "test")]
    rows.append(("ghost", "a video that is not in the folder", "train"))
    return _write_csv(raw_folder.parent / "captions.csv", rows)


def test_csv_import_keeps_good_videos_and_reports_bad_ones(tmp_path: Path, raw_folder: Path, captions_csv: Path) -> None:
    seen: list[dict] = []
    out = tmp_path / "ds"
    summary = import_dataset(raw_folder, captions_csv, out, workers=2, progress=False, on_problem=seen.append)
    manifest, captions = read_dataset(out)
    rows = {r["video_id"]: r for r in read_manifest(out, check_files=True).to_pylist()}
    assert sorted(rows) == sorted(GOOD)
    assert summary["videos"] == 4 and summary["captions"] == 8

    report = {r["video_id"]: r for r in pq.read_table(out / "import_report.parquet").to_pylist()}
    for vid, problem in BAD.items():
        assert report[vid]["problem"] == problem, report[vid]
        assert report[vid]["file"] == f"{vid}.mp4" and report[vid]["reason"]
    assert report["uncaptioned"]["problem"] == "no_captions"
    assert report["ghost"]["problem"] == "missing_video"
    assert "notes" not in report
    assert sorted(p["video_id"] for p in seen) == sorted(report)  # every problem was also shown

    # probed facts of real files, not defaults
    assert (rows["bikes"]["width"], rows["bikes"]["height"], rows["bikes"]["num_frames"]) == (640, 272, 250)
    assert rows["bikes"]["has_audio"] is False and rows["synth00001"]["has_audio"] is True
    assert abs(rows["carphone_pristine"]["fps"] - 29.97) < 0.01 and abs(rows["carphone_pristine"]["duration"] - 4.004) < 0.05
    assert abs(rows["synth00000"]["duration"] - 2.0) < 0.05
    # without --split-from-captions the split is a hash of the id, not the CSV column
    assert all(r["split"] == hash_split(v) for v, r in rows.items())
    # videos outside DIR are symlinked under DIR/videos (relative, inside DIR)
    assert rows["bikes"]["rel_path"] == "videos/nested/bikes.mp4"
    assert os.path.islink(out / "videos" / "nested" / "bikes.mp4")
    assert Path(rows["bikes"]["path"]).read_bytes()[:16] == (raw_folder / "nested" / "bikes.mp4").read_bytes()[:16]
    caps = read_captions(out).to_pylist()
    assert [c["caption"] for c in caps if c["video_id"] == "bikes"] == ["first caption of bikes", "second, with a comma, of bikes"]
    assert [c["caption_idx"] for c in caps if c["video_id"] == "bikes"] == [0, 1]

    # re-import into the same DIR is idempotent
    import_dataset(raw_folder, captions_csv, out, workers=2, progress=False)
    assert read_manifest(out).num_rows == 4


def test_msrvtt_json_with_splits(tmp_path: Path, raw_folder: Path) -> None:
    doc = {
        "info": {"year": 2016},
        "videos": [{"video_id": v, "split": s, "id": i} for i, (v, s) in
                   enumerate(zip(GOOD, ["train", "validate", "test", "train"], strict=True))],
        "sentences": [{"video_id": v, "caption": f"caption {k} of {v}", "sen_id": k} for v in GOOD for k in range(3)],
    }  # fmt: skip
    cap = tmp_path / "videodatainfo.json"
    cap.write_text(json.dumps(doc))
    out = tmp_path / "ds"
    import_dataset(raw_folder, cap, out, split_from_captions=True, link="copy", workers=2, progress=False)
    rows = {r["video_id"]: r for r in read_manifest(out).to_pylist()}
    assert {v: r["split"] for v, r in rows.items()} == {"synth00000": "train", "synth00001": "val",
                                                        "bikes": "test", "carphone_pristine": "train"}  # fmt: skip
    assert not os.path.islink(out / "videos" / "synth00000.mp4") and (out / "videos" / "synth00000.mp4").is_file()
    caps = read_captions(out).to_pylist()
    assert len(caps) == 12 and {c["split"] for c in caps if c["video_id"] == "synth00001"} == {"val"}


def test_split_from_captions_requires_a_split(tmp_path: Path, raw_folder: Path) -> None:
    cap = _write_csv(tmp_path / "c.csv", [("bikes", "a bike", "test"), ("synth00000", "shapes", "")])
    out = tmp_path / "ds"
    import_dataset(raw_folder, cap, out, split_from_captions=True, progress=False)
    assert read_manifest(out).column("video_id").to_pylist() == ["bikes"]
    report = {r["video_id"]: r["problem"] for r in pq.read_table(out / "import_report.parquet").to_pylist()}
    assert report["synth00000"] == "no_split"


def test_relative_links_need_the_opt_in_to_read(tmp_path: Path, raw_folder: Path, captions_csv: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)
    out = tmp_path / "ds"
    summary = import_dataset(raw_folder, captions_csv, out, link="relative", progress=False)
    assert summary["paths_outside_out"] is True
    with pytest.raises(ManifestError, match="escapes the dataset dir"):
        read_manifest(out)
    rows = read_manifest(out, allow_outside=True, check_files=True).to_pylist()
    assert all(r["rel_path"].startswith("../") for r in rows)
    assert not (out / "videos").exists()


def test_videos_inside_out_are_referenced_in_place(tmp_path: Path, synth_dataset: Path) -> None:
    out = tmp_path / "ds"
    shutil.copytree(synth_dataset / "videos", out / "clips")
    cap = _write_csv(tmp_path / "c.csv", [("synth00004", "a clip"), ("synth00005", "another")], ("video_id", "caption"))
    import_dataset(out, cap, out, progress=False)
    rows = read_manifest(out).to_pylist()
    assert [r["rel_path"] for r in rows] == ["clips/synth00004.mp4", "clips/synth00005.mp4"]


def test_probe_kills_a_probe_past_its_deadline(raw_folder: Path) -> None:
    with pytest.raises(ProbeError) as err:
        probe_video(raw_folder / "nested" / "bikes.mp4", timeout_s=1e-6)
    assert err.value.kind == "timeout"
    assert probe_video(raw_folder / "nested" / "bikes.mp4")["num_frames"] == 250  # and the next probe works


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("c.csv", "video,text\nv1,hello\n", "lacks column(s) video_id, caption"),
        ("c.csv", "video_id,caption,split\nv1,hello,holdout\n", "unknown split 'holdout'"),
        ("c.json", "{not json", "not valid JSON"),
        ("c.json", '{"videos": []}', "'sentences' list"),
        ("c.txt", "v1 hello", "unknown captions format"),
    ],
)
def test_bad_captions_files_give_one_line_errors(tmp_path: Path, name: str, content: str, fragment: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(UserError) as err:
        read_captions_file(p)
    assert fragment in str(err.value) and str(p) in str(err.value) and "\n" not in str(err.value)


def test_cli_import_prints_problems_and_json(tmp_path: Path, raw_folder: Path, captions_csv: Path) -> None:
    exe = Path(sys.executable).with_name("videxperts")
    out = tmp_path / "ds"
    res = subprocess.run([str(exe), "data", "import", str(raw_folder), "--captions", str(captions_csv), "--out", str(out),
                          "--workers", "2", "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["videos"] == 4
    assert summary["problems"] == {"unreadable:empty": 1, "unreadable:corrupt": 2, "unreadable:truncated": 1,
                                   "no_captions": 1, "missing_video": 1}  # fmt: skip
    skipped = [line for line in res.stderr.splitlines() if line.startswith("videxperts: skipped")]
    assert len(skipped) == 6 and any("random.mp4" in s for s in skipped)
    # 4 videos: every split is tiny or empty, and the import says so (issue 16: never a silent 0-video split)
    warned = [line for line in res.stderr.splitlines() if line.startswith("videxperts: warning: split")]
    assert len(warned) == 3 and warned == [f"videxperts: warning: {w}" for w in summary["warnings"]]
    for split, n in summary["splits"].items():
        assert any(f"split '{split}' " + ("is empty" if n == 0 else f"has only {n} videos") in w for w in warned)
    missing = subprocess.run([str(exe), "data", "import", str(raw_folder), "--captions", str(tmp_path / "nope.csv"),
                              "--out", str(out)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1 and "nope.csv" in missing.stderr
