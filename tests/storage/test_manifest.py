"""videxperts.storage.manifest: the dataset contract, path safety and deterministic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from videxperts.errors import UserError
from videxperts.storage.manifest import (
    ALLOW_OUTSIDE_ENV,
    ManifestError,
    check_relative_path,
    read_captions,
    read_dataset,
    read_manifest,
    write_captions,
    write_manifest,
)


def _row(vid: str = "v1", path: str = "videos/v1.mp4", **kw) -> dict:
    row = {"video_id": vid, "path": path, "duration": 2.0, "fps": 25.0, "width": 320, "height": 240,
           "has_audio": True, "split": "train"}  # fmt: skip
    row.update(kw)
    return row


def _raw_manifest(dir_: Path, rows: list[dict]) -> None:
    """Write a manifest without validation, as an untrusted producer could."""
    dir_.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), dir_ / "manifest.parquet")


def test_round_trip_resolves_paths_and_keeps_extra_columns(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v1.mp4").write_bytes(b"x")
    write_manifest(tmp_path, [_row(scene="green field", shapes=["circle", "star"])])
    write_captions(tmp_path, [{"video_id": "v1", "caption_idx": 0, "caption": "a red circle", "split": "train"}])
    table = read_manifest(tmp_path, check_files=True)
    row = table.to_pylist()[0]
    assert row["path"] == os.path.join(os.path.abspath(tmp_path), "videos", "v1.mp4")
    assert row["rel_path"] == "videos/v1.mp4"
    assert row["scene"] == "green field" and row["shapes"] == ["circle", "star"]
    assert table.schema.field("width").type == pa.int32()
    # the stored file keeps the relative path, and a file argument works like the directory
    assert pq.read_table(tmp_path / "manifest.parquet").column("path").to_pylist() == ["videos/v1.mp4"]
    assert read_manifest(tmp_path / "manifest.parquet").column("path") == table.column("path")
    manifest, captions = read_dataset(tmp_path)
    assert captions.column("caption").to_pylist() == ["a red circle"]


def test_writes_are_byte_deterministic(tmp_path: Path) -> None:
    rows = [_row("a", "videos/a.mp4"), _row("b", "videos/b.mp4", split="test")]
    write_manifest(tmp_path / "one", rows)
    write_manifest(tmp_path / "two", rows)
    assert (tmp_path / "one" / "manifest.parquet").read_bytes() == (tmp_path / "two" / "manifest.parquet").read_bytes()


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/videos/a.mp4", "absolute"),
        ("../outside.mp4", "escapes"),
        ("videos/../../outside.mp4", "escapes"),
        ("..", "escapes"),
        ("videos\\a.mp4", "'/' separators"),
        ("", "empty"),
        (".", "dataset dir itself"),
    ],
)
def test_unsafe_paths_are_rejected_with_a_clear_one_line_error(tmp_path: Path, path: str, fragment: str) -> None:
    _raw_manifest(tmp_path, [_row(path=path)])
    with pytest.raises(ManifestError) as err:
        read_manifest(tmp_path)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg
    assert str(tmp_path / "manifest.parquet") in msg  # names the file
    assert isinstance(err.value, UserError)


def test_inner_dotdot_that_stays_inside_is_normalised() -> None:
    assert check_relative_path("videos/../videos/./a.mp4") == "videos/a.mp4"


def test_outside_paths_need_an_explicit_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "ds"
    _raw_manifest(d, [_row(path="../raw/v1.mp4")])
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)
    with pytest.raises(ManifestError, match="escapes"):
        read_manifest(d)
    row = read_manifest(d, allow_outside=True).to_pylist()[0]
    assert row["path"] == str(tmp_path / "raw" / "v1.mp4")
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, "1")
    assert read_manifest(d).num_rows == 1
    with pytest.raises(ManifestError, match="absolute"):  # the opt-in never admits absolute paths
        check_relative_path("/abs/v.mp4", allow_outside=True)
    with pytest.raises(ManifestError):  # writing refuses outside paths unless asked too
        write_manifest(tmp_path / "w", [_row(path="../x.mp4")])


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([{"video_id": "v", "path": "v.mp4"}], "missing required column"),
        ([_row("v"), _row("v")], "duplicate video_id"),
        ([_row(split="training")], "split must be one of"),
        ([_row(vid="a/b")], "invalid video_id"),
        ([_row(duration=0.0)], "duration must be a positive number"),
        ([_row(fps=float("nan"))], "fps must be a positive number"),
        ([_row(width=0)], "width must be a positive integer"),
    ],
)
def test_malformed_manifests_are_rejected(tmp_path: Path, rows: list[dict], fragment: str) -> None:
    _raw_manifest(tmp_path, rows)
    with pytest.raises(ManifestError, match=fragment):
        read_manifest(tmp_path)


def test_missing_files_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no manifest file"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ManifestError, match="not a readable parquet"):
        read_manifest(tmp_path)
    write_manifest(tmp_path, [_row()])
    with pytest.raises(ManifestError, match="missing"):
        read_manifest(tmp_path, check_files=True)


def test_captions_are_cross_checked_against_the_manifest(tmp_path: Path) -> None:
    write_manifest(tmp_path, [_row("v1")])
    write_captions(tmp_path, [{"video_id": "ghost", "caption_idx": 0, "caption": "hi", "split": "train"}])
    assert read_captions(tmp_path).num_rows == 1  # fine on its own
    with pytest.raises(ManifestError, match="not in the manifest"):
        read_dataset(tmp_path)
    write_captions(tmp_path, [{"video_id": "v1", "caption_idx": 0, "caption": "hi", "split": "val"}])
    with pytest.raises(ManifestError, match="differs from the manifest"):
        read_dataset(tmp_path)
    with pytest.raises(ManifestError, match="duplicate caption"):
        write_captions(tmp_path, [{"video_id": "v1", "caption_idx": 0, "caption": "a", "split": "train"}] * 2)
    with pytest.raises(ManifestError, match="empty caption"):
        write_captions(tmp_path, [{"video_id": "v1", "caption_idx": 0, "caption": "  ", "split": "train"}])


def test_timed_captions_both_or_neither_finite_ordered(tmp_path: Path) -> None:
    """Event captions carry start/end seconds; video-level rows (both null) share the file."""
    rows = [
        {"video_id": "v0", "caption_idx": 0, "caption": "a paragraph", "split": "train", "start": None, "end": None},
        {"video_id": "v0", "caption_idx": 1, "caption": "a circle enters", "split": "train", "start": 0.0, "end": 4.5},
        {"video_id": "v0", "caption_idx": 2, "caption": "past the end", "split": "train", "start": 3, "end": 99},
    ]
    back = read_captions(write_captions(tmp_path, rows))
    assert back.schema.field("start").type == pa.float64() and back.schema.field("end").type == pa.float64()
    assert back.column("start").to_pylist() == [None, 0.0, 3.0] and back.column("end").to_pylist() == [None, 4.5, 99.0]
    # all video-level: null-typed columns become float64
    back = read_captions(write_captions(tmp_path, [dict(rows[0])]))
    assert back.schema.field("end").type == pa.float64()
    bad = [
        ({"start": 1.0, "end": None}, "both be set"),
        ({"start": 2.0, "end": 2.0}, "0 <= start < end"),
        ({"start": -1.0, "end": 2.0}, "0 <= start < end"),
        ({"start": 0.0, "end": float("inf")}, "finite"),
        ({"start": 0.0, "end": float("nan")}, "finite"),
    ]
    for times, fragment in bad:
        row = {**rows[1], **times}
        with pytest.raises(ManifestError, match=fragment) as err:
            write_captions(tmp_path, [row])
        assert "row 0 ('v0', caption 1)" in str(err.value) and "\n" not in str(err.value)
    only_start = [{k: v for k, v in rows[1].items() if k != "end"}]
    with pytest.raises(ManifestError, match="'start' needs its partner"):
        write_captions(tmp_path, only_start)
