"""Video ids of `videxperts extract` inputs: one distinct, stable id per file; a manifest's ids are a contract.

Folder/glob ids are relative paths without the suffix ('/' → '__'); the cases here are the
ones where that mapping collides. A manifest with a repeated id is refused before anything
starts, because choosing a row would attach features to the wrong video.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from videxperts.pipelines.extract_inputs import list_inputs

EXE = str(Path(sys.executable).with_name("videxperts"))


def _touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")  # listing never opens a file: empty ones do


def _ids(spec: Path | str) -> dict[str, str]:
    """relative path -> video id."""
    inputs = list_inputs(str(spec))
    root = Path(spec) if Path(spec).is_dir() else None
    return {(Path(v.path).relative_to(root.resolve()).as_posix() if root else Path(v.path).name): v.video_id
            for v in inputs.videos}


def _tag(rel: str) -> str:
    return hashlib.sha256(rel.encode()).hexdigest()[:8]


def test_same_stem_keeps_the_suffix(tmp_path: Path) -> None:
    _touch(tmp_path, "good.mp4", "good.mkv", "other.mp4")
    assert _ids(tmp_path) == {"good.mkv": "good.mkv", "good.mp4": "good.mp4", "other.mp4": "other"}


def test_nested_and_flat_names_get_distinct_ids(tmp_path: Path) -> None:
    _touch(tmp_path, "sub/clip.mp4", "sub__clip.mp4", "sub/other.mp4")
    ids = _ids(tmp_path)
    assert ids == {"sub/clip.mp4": f"sub__clip~{_tag('sub/clip.mp4')}",
                   "sub__clip.mp4": f"sub__clip~{_tag('sub__clip.mp4')}",
                   "sub/other.mp4": "sub__other"}
    assert len(set(ids.values())) == 3


def test_ids_are_stable_when_other_files_come_and_go(tmp_path: Path) -> None:
    _touch(tmp_path, "a/b.mp4", "a__b.mp4")
    before = _ids(tmp_path)
    _touch(tmp_path, "a/b.mkv", "a__b.mkv", "c.mp4", "0.mp4")  # sorts before and after, clashes again
    after = _ids(tmp_path)
    assert len(set(after.values())) == len(after) == 6
    # the suffix depends on a file's own path only; here both the stem and the '__' rule collide
    assert after["a/b.mp4"] == f"a__b.mp4~{_tag('a/b.mp4')}" and after["a__b.mp4"] == f"a__b.mp4~{_tag('a__b.mp4')}"
    assert before == {"a/b.mp4": f"a__b~{_tag('a/b.mp4')}", "a__b.mp4": f"a__b~{_tag('a__b.mp4')}"}
    assert _ids(tmp_path) == after  # deterministic


def test_a_file_already_named_like_a_generated_id(tmp_path: Path) -> None:
    squatter = f"x__y~{_tag('x/y.mp4')}.mp4"
    _touch(tmp_path, "x/y.mp4", "x__y.mp4", squatter)
    ids = _ids(tmp_path)
    assert ids[squatter] == squatter[:-4]  # a real file keeps its plain id
    assert ids["x/y.mp4"] == f"x__y~{hashlib.sha256(b'x/y.mp4').hexdigest()[:12]}"  # the generated one widens
    assert len(set(ids.values())) == 3


def test_glob_gives_the_folder_ids_and_one_input_per_file(tmp_path: Path) -> None:
    _touch(tmp_path, "sub/clip.mp4", "sub__clip.mp4")
    (tmp_path / "link.mp4").symlink_to(tmp_path / "sub__clip.mp4")
    folder = list_inputs(str(tmp_path)).videos
    globbed = list_inputs(str(tmp_path / "**" / "*.mp4")).videos
    assert sorted(v.video_id for v in folder) == sorted(
        ["link", f"sub__clip~{_tag('sub/clip.mp4')}", f"sub__clip~{_tag('sub__clip.mp4')}"])
    # the link resolves to a file the glob already has: one input for it, with the folder's id
    assert {v.video_id: v.path for v in globbed} == {v.video_id: v.path for v in folder if v.video_id != "link"}


def test_manifest_with_a_repeated_id_is_refused_before_anything_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    row = {"duration": 1.0, "fps": 25.0, "width": 64, "height": 48, "has_audio": True, "split": "train"}
    rows = [{"video_id": "v0", "path": "videos/a.mp4", **row}, {"video_id": "v1", "path": "videos/b.mp4", **row},
            {"video_id": "v0", "path": "videos/c.mp4", **row}]
    pq.write_table(pa.Table.from_pylist(rows), data / "manifest.parquet")  # written past validation on purpose
    store = tmp_path / "work" / "store.zarr"
    res = subprocess.run([EXE, "extract", str(data / "manifest.parquet"), "--out", str(store)],
                         capture_output=True, text=True, timeout=300)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0] == (f"videxperts: error: {data / 'manifest.parquet'}: duplicate video_id 'v0' in row 0 "
                        "(path 'videos/a.mp4') and row 2 (path 'videos/c.mp4')")
    assert not (tmp_path / "work").exists()  # no store, no tracking db: nothing was started
