"""Inputs that used to go unaccounted for (issue 14, item 7): odd folder entries, control
characters, a non-media single file, URLs, manifest symlinks that leave the dataset dir."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from tests.media import make_clip
from videxperts.errors import UserError
from videxperts.pipelines.extract_inputs import list_inputs
from videxperts.storage.manifest import ManifestError, read_manifest, write_manifest


def _folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    d = tmp_path / "videos"
    d.mkdir()
    make_clip(d / "good.mp4", seconds=1.0, size=(32, 24))
    (d / "folder.mp4").mkdir()
    os.symlink(d / "nowhere.mp4", d / "dangling.mp4")
    os.symlink(d / "loop.mp4", d / "loop.mp4")
    os.mkfifo(d / "fifo.mp4")
    (d / "new\nline.mp4").write_bytes((d / "good.mp4").read_bytes())
    want = {"folder.mp4": "a directory", "dangling.mp4": "dangling symlink", "loop.mp4": "symlink loop",
            "fifo.mp4": "a FIFO", "new\nline.mp4": "control character"}
    try:
        os.mknod(d / "dev.mp4", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        want["dev.mp4"] = "a device"
    except (PermissionError, OSError):
        pass
    return d, want


def test_folder_entries_named_like_videos_are_listed_with_a_reason(tmp_path: Path) -> None:
    d, want = _folder(tmp_path)
    result: list = []
    t = threading.Thread(target=lambda: result.append(list_inputs(str(d))), daemon=True)
    t.start()
    t.join(30)  # a FIFO opened by mistake would block forever
    assert result, "listing the folder hung"
    inputs = result[0]
    assert [v.video_id for v in inputs.videos] == ["good"]
    got = {Path(p).name: why for p, why in inputs.rejected}
    assert set(got) == set(want)
    for name, fragment in want.items():
        assert fragment in got[name], (name, got[name])


def test_glob_lists_the_same_rejections(tmp_path: Path) -> None:
    d, want = _folder(tmp_path)
    inputs = list_inputs(str(d / "*.mp4"))
    assert [v.video_id for v in inputs.videos] == ["good"]
    assert {Path(p).name for p, _ in inputs.rejected} == set(want)


@pytest.mark.parametrize("name", ["manifest.csv", "README", "notes.txt"])
def test_a_single_non_media_file_is_refused_at_once(tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    f.write_text("video_id,path\nv0,a.mp4\n")
    with pytest.raises(UserError, match="INPUT must be a manifest") as err:
        list_inputs(str(f))
    assert "\n" not in str(err.value)


def test_a_url_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="URLs are not supported"):
        list_inputs("s3://bucket/videos/")


def test_a_manifest_url_path_is_refused(tmp_path: Path) -> None:
    row = {"video_id": "v0", "path": "https://example.org/v0.mp4", "duration": 1.0, "fps": 25.0, "width": 32,
           "height": 24, "has_audio": False, "split": "train"}
    with pytest.raises(ManifestError, match="URLs are not supported"):
        write_manifest(tmp_path, [row])


def _row(vid: str, path: str) -> dict:
    return {"video_id": vid, "path": path, "duration": 1.0, "fps": 25.0, "width": 32, "height": 24,
            "has_audio": False, "split": "train"}


def test_manifest_symlinks_that_leave_the_dataset_are_contained(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("VIDEXPERTS_ALLOW_OUTSIDE_PATHS", raising=False)
    outside = make_clip(tmp_path / "outside.mp4", seconds=1.0, size=(32, 24))
    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    (data / "clips").mkdir()
    os.symlink(outside, data / "videos" / "ok.mp4")  # what 'data import --link symlink' makes
    write_manifest(data, [_row("ok", "videos/ok.mp4")])
    assert read_manifest(data).column("video_id").to_pylist() == ["ok"]
    os.symlink(outside, data / "clips" / "evil.mp4")  # anywhere else: refused
    write_manifest(data, [_row("ok", "videos/ok.mp4"), _row("evil", "clips/evil.mp4")])
    with pytest.raises(ManifestError, match="leaves the dataset dir through a symlink"):
        read_manifest(data)
    os.symlink(tmp_path, data / "videos" / "up")  # a directory link inside videos/: refused too
    write_manifest(data, [_row("up", "videos/up/outside.mp4")])
    with pytest.raises(ManifestError, match="through a symlink"):
        read_manifest(data)
    monkeypatch.setenv("VIDEXPERTS_ALLOW_OUTSIDE_PATHS", "1")  # the explicit opt-in still works
    assert read_manifest(data).num_rows == 1
