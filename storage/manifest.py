"""Dataset manifests: read, write and validate ``manifest.parquet`` and ``captions.parquet``.

A dataset directory ``DIR`` holds ``manifest.parquet`` (one row per video) and
``captions.parquet`` (one row per caption); see docs/DATA.md. Every consumer goes through
:func:`read_manifest` / :func:`read_captions`, so a manifest from an untrusted source cannot
point the pipeline at arbitrary files: stored paths must be relative, POSIX and stay inside
``DIR`` (no absolute paths, no ``..`` escaping). Import-made manifests that deliberately point
beside ``DIR`` are read only when the caller opts in (``allow_outside=True`` or the
environment variable ``VIDEXPERTS_ALLOW_OUTSIDE_PATHS=1``); the file itself can never grant
that permission.

Writes are atomic (temporary file + rename) and deterministic: the same rows give
byte-identical parquet files, which is what makes ``data synth`` reproducible.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from videxperts.errors import UserError

MANIFEST_NAME = "manifest.parquet"
CAPTIONS_NAME = "captions.parquet"
SPLITS: tuple[str, ...] = ("train", "val", "test")
ALLOW_OUTSIDE_ENV = "VIDEXPERTS_ALLOW_OUTSIDE_PATHS"

MANIFEST_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("duration", pa.float64()),
        ("fps", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("has_audio", pa.bool_()),
        ("split", pa.string()),
    ]
)
CAPTIONS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("caption_idx", pa.int32()),
        ("caption", pa.string()),
        ("split", pa.string()),
    ]
)

# Optional caption columns: an event's time span in seconds (both null for a video-level caption).
TIMED_COLUMNS: tuple[str, str] = ("start", "end")

# A video id becomes a key in the feature store: keep it a single, printable path component.
_VIDEO_ID_RE = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,255}$")


class ManifestError(UserError):
    """A manifest or captions file that is missing, malformed or unsafe; the message names it."""


def dataset_dir(dir_or_file: str | os.PathLike[str]) -> Path:
    """The dataset directory for either ``DIR`` or a file inside it (``DIR/manifest.parquet``)."""
    p = Path(dir_or_file)
    return p.parent if p.suffix == ".parquet" else p


def check_video_id(video_id: Any, where: str = "") -> str:
    """Reject ids that could not serve as one store key (empty, ``/``, control characters, ``..``)."""
    if not isinstance(video_id, str) or not _VIDEO_ID_RE.match(video_id) or video_id in (".", ".."):
        raise ManifestError(f"{where}invalid video_id {video_id!r} (one non-empty name without '/' or control characters)")
    return video_id


def check_relative_path(path: Any, *, allow_outside: bool = False, where: str = "") -> str:
    """Validate a stored video path and return it normalised (POSIX, no ``.`` parts).

    Absolute paths (POSIX, Windows drive or UNC) are always rejected; ``..`` that leaves the
    dataset directory is rejected unless ``allow_outside`` (import-made manifests).
    """
    if not isinstance(path, str) or not path.strip():
        raise ManifestError(f"{where}empty video path")
    if "\x00" in path:
        raise ManifestError(f"{where}video path contains a NUL byte: {path!r}")
    if "\\" in path:
        raise ManifestError(f"{where}video path must use '/' separators: {path!r}")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", path):
        raise ManifestError(f"{where}video path is a URL ({path!r}): URLs are not supported; paths are "
                            "relative to the dataset dir (copy or mount the files first)")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise ManifestError(f"{where}absolute video path not allowed (paths are relative to the dataset dir): {path!r}")
    norm = posixpath.normpath(path)
    escapes = norm == ".." or norm.startswith("../")
    if escapes and not allow_outside:
        raise ManifestError(
            f"{where}video path escapes the dataset dir: {path!r} "
            f"(set {ALLOW_OUTSIDE_ENV}=1 only for manifests you made with 'videxperts data import')"
        )
    if norm == ".":
        raise ManifestError(f"{where}video path names the dataset dir itself: {path!r}")
    return norm


def _allow_outside_default(allow_outside: bool | None) -> bool:
    if allow_outside is not None:
        return allow_outside
    return os.environ.get(ALLOW_OUTSIDE_ENV, "") == "1"


def _to_table(rows: pa.Table | Iterable[Mapping[str, Any]], base: pa.Schema, what: str) -> pa.Table:
    """Rows (dicts) or a table -> a table whose base columns come first with the contract types."""
    if isinstance(rows, pa.Table):
        table = rows
    else:
        rows = list(rows)
        names: list[str] = list(base.names)
        for r in rows:
            names.extend(k for k in r if k not in names)
        arrays = []
        fields = []
        for name in names:
            values = [r.get(name) for r in rows]
            typ = base.field(name).type if name in base.names else None
            try:
                arr = pa.array(values, type=typ)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise ManifestError(f"{what}: column {name!r} has values of the wrong type ({exc})") from exc
            arrays.append(arr)
            fields.append(pa.field(name, arr.type))
        table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    missing = [n for n in base.names if n not in table.column_names]
    if missing:
        raise ManifestError(f"{what}: missing required column(s) {', '.join(missing)}")
    extra = [n for n in table.column_names if n not in base.names]
    cols = []
    for f in base:
        col = table.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ManifestError(f"{what}: column {f.name!r} must be {f.type}, got {col.type}") from exc
        cols.append(col)
    cols.extend(table.column(n) for n in extra)
    return pa.Table.from_arrays(cols, names=list(base.names) + extra).replace_schema_metadata(None)


def _write_atomic(table: pa.Table, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, dest)
    return dest


def validate_manifest(table: pa.Table, *, allow_outside: bool = False, source: str = "manifest") -> pa.Table:
    """Check a manifest table against the contract; returns it with normalised paths."""
    table = _to_table(table, MANIFEST_SCHEMA, source)
    seen: dict[str, tuple[int, Any]] = {}
    paths: list[str] = []
    for i, row in enumerate(table.select(list(MANIFEST_SCHEMA.names)).to_pylist()):
        vid = row["video_id"]
        where = f"{source}: row {i} ({vid!r}): "
        check_video_id(vid, where)
        if vid in seen:  # a manifest is a contract: picking one row would attach features to the wrong video
            first, first_path = seen[vid]
            raise ManifestError(f"{source}: duplicate video_id {vid!r} in row {first} (path {first_path!r}) "
                                f"and row {i} (path {row['path']!r})")
        seen[vid] = (i, row["path"])
        paths.append(check_relative_path(row["path"], allow_outside=allow_outside, where=where))
        if row["split"] not in SPLITS:
            raise ManifestError(f"{where}split must be one of {', '.join(SPLITS)}, got {row['split']!r}")
        for key in ("duration", "fps"):
            v = row[key]
            if v is None or not math.isfinite(v) or v <= 0:
                raise ManifestError(f"{where}{key} must be a positive number, got {v!r}")
        for key in ("width", "height"):
            if row[key] is None or row[key] <= 0:
                raise ManifestError(f"{where}{key} must be a positive integer, got {row[key]!r}")
        if row["has_audio"] is None:
            raise ManifestError(f"{where}has_audio must be true or false")
    idx = table.column_names.index("path")
    return table.set_column(idx, "path", pa.array(paths, pa.string()))


def validate_captions(table: pa.Table, video_splits: Mapping[str, str] | None = None, source: str = "captions") -> pa.Table:
    """Check a captions table; with ``video_splits`` also cross-check ids and splits against the manifest."""
    table = _to_table(table, CAPTIONS_SCHEMA, source)
    table = _timed_columns(table, source)
    seen: set[tuple[str, int]] = set()
    for i, row in enumerate(table.select(list(CAPTIONS_SCHEMA.names)).to_pylist()):
        vid, idx = row["video_id"], row["caption_idx"]
        where = f"{source}: row {i} ({vid!r}, caption {idx}): "
        check_video_id(vid, where)
        if idx is None or idx < 0:
            raise ManifestError(f"{where}caption_idx must be >= 0")
        if (vid, idx) in seen:
            raise ManifestError(f"{source}: duplicate caption ({vid!r}, {idx})")
        seen.add((vid, idx))
        if not isinstance(row["caption"], str) or not row["caption"].strip():
            raise ManifestError(f"{where}empty caption")
        if row["split"] not in SPLITS:
            raise ManifestError(f"{where}split must be one of {', '.join(SPLITS)}, got {row['split']!r}")
        if video_splits is not None:
            if vid not in video_splits:
                raise ManifestError(f"{where}video_id is not in the manifest")
            if video_splits[vid] != row["split"]:
                raise ManifestError(f"{where}split {row['split']!r} differs from the manifest's {video_splits[vid]!r}")
    return table


def _timed_columns(table: pa.Table, source: str) -> pa.Table:
    """Optional event times (``start``, ``end``; float64 seconds): both columns or neither; per row
    both null (a video-level caption) or both finite with ``0 <= start < end``. An ``end`` beyond
    the video's duration is kept (ActivityNet has such annotations); feature cropping clamps it."""
    present = [c for c in TIMED_COLUMNS if c in table.column_names]
    if not present:
        return table
    if len(present) == 1:
        raise ManifestError(f"{source}: column {present[0]!r} needs its partner ({' and '.join(TIMED_COLUMNS)} go together)")
    for name in TIMED_COLUMNS:
        col = table.column(name)
        if col.type != pa.float64():
            try:
                col = col.cast(pa.float64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ManifestError(f"{source}: column {name!r} must be float64 seconds, got {col.type}") from exc
            table = table.set_column(table.column_names.index(name), name, col)
    rows = zip(*(table.column(c).to_pylist() for c in ("video_id", "caption_idx", *TIMED_COLUMNS)), strict=True)
    for i, (vid, idx, start, end) in enumerate(rows):
        where = f"{source}: row {i} ({vid!r}, caption {idx}): "
        if (start is None) != (end is None):
            raise ManifestError(f"{where}start and end must both be set (an event) or both be null (video-level)")
        if start is None:
            continue
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ManifestError(f"{where}start/end must be finite seconds, got {start!r}, {end!r}")
        if not 0 <= start < end:
            raise ManifestError(f"{where}need 0 <= start < end, got start={start!r}, end={end!r}")
    return table


def write_manifest(
    dir_: str | os.PathLike[str], rows: pa.Table | Iterable[Mapping[str, Any]], *, allow_outside: bool = False
) -> Path:
    """Validate and atomically write ``DIR/manifest.parquet``; returns its path."""
    table = validate_manifest(_to_table(rows, MANIFEST_SCHEMA, "manifest"), allow_outside=allow_outside)
    return _write_atomic(table, Path(dir_) / MANIFEST_NAME)


def write_captions(dir_: str | os.PathLike[str], rows: pa.Table | Iterable[Mapping[str, Any]]) -> Path:
    """Validate and atomically write ``DIR/captions.parquet``; returns its path."""
    table = validate_captions(_to_table(rows, CAPTIONS_SCHEMA, "captions"))
    return _write_atomic(table, Path(dir_) / CAPTIONS_NAME)


def _read(file: Path, what: str) -> pa.Table:
    if not file.is_file():
        raise ManifestError(f"{file}: no {what} file here (make one with 'videxperts data synth' or 'data import')")
    try:
        return pq.read_table(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ManifestError(f"{file}: not a readable parquet {what} ({exc})") from exc


def _contain_links(file: Path, base: str, rel: list[str], absolute: list[str]) -> None:
    """A path that leaves the dataset dir through a symlink is refused like a ``..`` path.

    Only the text of a path is checked by ``check_relative_path``; here each existing file is
    resolved. Allowed: the links ``videxperts data import`` makes, i.e. a file under
    ``DIR/videos/`` (the import's link folder) that is itself a symlink to a regular file, reached
    through directories that stay inside ``DIR``.
    """
    root = os.path.realpath(base)
    for r, p in zip(rel, absolute, strict=True):
        if not os.path.lexists(p):
            continue  # a missing file is reported when it is decoded
        real = os.path.realpath(p)
        if real == root or real.startswith(root + os.sep):
            continue
        parent = os.path.realpath(os.path.dirname(p))
        import_link = (r.startswith("videos/") and os.path.islink(p) and os.path.isfile(real)
                       and (parent == root or parent.startswith(root + os.sep)))
        if not import_link:
            raise ManifestError(
                f"{file}: video path {r!r} leaves the dataset dir through a symlink (to {real}); "
                f"set {ALLOW_OUTSIDE_ENV}=1 only for manifests you trust"
            )


def read_manifest(
    dir_or_file: str | os.PathLike[str], *, allow_outside: bool | None = None, check_files: bool = False
) -> pa.Table:
    """Read and validate a manifest; ``path`` comes back absolute, the stored value in ``rel_path``.

    Resolving here means no consumer has to know where the dataset lives. ``allow_outside``
    (default: env ``VIDEXPERTS_ALLOW_OUTSIDE_PATHS=1``) admits ``..`` paths; ``check_files``
    also requires every video file to exist.
    """
    d = dataset_dir(dir_or_file)
    file = Path(dir_or_file) if Path(dir_or_file).suffix == ".parquet" else d / MANIFEST_NAME
    table = validate_manifest(_read(file, "manifest"), allow_outside=_allow_outside_default(allow_outside), source=str(file))
    base = os.path.abspath(d)
    rel = table.column("path").to_pylist()
    absolute = [os.path.normpath(os.path.join(base, r)) for r in rel]
    if not _allow_outside_default(allow_outside):
        _contain_links(file, base, rel, absolute)
    if check_files:
        for vid, p in zip(table.column("video_id").to_pylist(), absolute, strict=True):
            if not os.path.isfile(p):
                raise ManifestError(f"{file}: video {vid!r} is missing: {p}")
    idx = table.column_names.index("path")
    table = table.set_column(idx, "path", pa.array(absolute, pa.string()))
    if "rel_path" in table.column_names:
        table = table.drop_columns(["rel_path"])
    return table.append_column("rel_path", pa.array(rel, pa.string()))


def read_captions(dir_or_file: str | os.PathLike[str]) -> pa.Table:
    """Read and validate ``captions.parquet`` (given the dataset dir or the file)."""
    p = Path(dir_or_file)
    file = p if p.suffix == ".parquet" else p / CAPTIONS_NAME
    return validate_captions(_read(file, "captions"), source=str(file))


def read_dataset(dir_: str | os.PathLike[str], *, allow_outside: bool | None = None) -> tuple[pa.Table, pa.Table]:
    """Manifest + captions, cross-checked: every caption's video is in the manifest with the same split."""
    manifest = read_manifest(dir_, allow_outside=allow_outside)
    splits = dict(zip(manifest.column("video_id").to_pylist(), manifest.column("split").to_pylist(), strict=True))
    p = Path(dir_) / CAPTIONS_NAME
    captions = validate_captions(_read(p, "captions"), splits, source=str(p))
    return manifest, captions
