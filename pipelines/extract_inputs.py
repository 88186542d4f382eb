"""What ``videxperts extract`` reads: a manifest / dataset dir, a folder of videos, or a glob.

Every input becomes an :class:`InputVideo` (a store key and an absolute path); captions come
along only from a dataset dir. A folder or glob keeps every matching file, even ones that are
obviously broken, so that each one is accounted for (as failed, with its reason) rather than
silently dropped.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from videxperts.errors import UserError

VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".flv", ".wmv", ".ts",
    ".3gp", ".ogv", ".ogg", ".gif", ".mts", ".m2ts", ".vob", ".y4m", ".h264", ".hevc",
})


@dataclass(frozen=True)
class InputVideo:
    """One input: its store key, its absolute path and (dataset only) its split."""

    video_id: str
    path: str
    split: str | None = None


@dataclass
class Inputs:
    """All inputs of one job, plus captions ``video_id -> [(caption_idx, text)]`` if any."""

    videos: list[InputVideo]
    source: str
    kind: str  # "manifest" | "folder" | "glob"
    captions: dict[str, list[tuple[int, str]]] | None = None


def _unique_ids(paths: list[Path], root: Path | None) -> list[InputVideo]:
    """One distinct, deterministic id per file: its path relative to the folder, suffix dropped.

    '/' becomes '__'; files whose stems clash (``a.mp4``, ``a.mkv``) keep their suffix. The
    mapping can still collide (``sub/clip.mp4`` and ``sub__clip.mp4`` both give ``sub__clip``):
    every file of such a group gets ``~`` plus 8 hex digits of the SHA-256 of its relative
    path. That suffix depends on the file's own path only, so an id never depends on the order
    of the listing and never moves to another file of the group when files come or go.
    """
    rel = [p.relative_to(root).as_posix() if root else p.name for p in paths]
    stems = [r.rsplit(".", 1)[0] if "." in Path(r).name else r for r in rel]
    stem_counts = Counter(stems)
    base = [(s if stem_counts[s] == 1 else r).replace("/", "__") for r, s in zip(rel, stems, strict=True)]
    base_counts = Counter(base)
    taken = set(base)
    out = []
    for p, r, b in zip(paths, rel, base, strict=True):
        vid = b
        if base_counts[b] > 1:
            digest = hashlib.sha256(r.encode("utf-8", "surrogateescape")).hexdigest()
            width = 8
            while (vid := f"{b}~{digest[:width]}") in taken:  # a file literally named like that
                width += 4
            taken.add(vid)
        out.append(InputVideo(vid, str(p.resolve())))
    return out


def _from_manifest(target: Path, with_captions: bool) -> Inputs:
    from videxperts.storage.manifest import CAPTIONS_NAME, dataset_dir, read_captions, read_manifest

    table = read_manifest(target)
    cols = table.to_pydict()
    splits = cols.get("split") or [None] * table.num_rows
    videos = [InputVideo(v, p, s) for v, p, s in zip(cols["video_id"], cols["path"], splits, strict=True)]
    captions = None
    cap_file = dataset_dir(target) / CAPTIONS_NAME
    if with_captions and cap_file.is_file():
        cap = read_captions(cap_file).to_pydict()
        captions = {}
        for vid, idx, text in zip(cap["video_id"], cap["caption_idx"], cap["caption"], strict=True):
            captions.setdefault(vid, []).append((int(idx), str(text)))
        for v in captions.values():
            v.sort()
    return Inputs(videos, str(target), "manifest", captions)


def list_inputs(spec: str, *, with_captions: bool = True) -> Inputs:
    """Resolve INPUT (manifest file, dataset dir, folder of videos, or glob) to the job's inputs."""
    target = Path(spec)
    if target.is_file() and target.suffix == ".parquet":
        return _from_manifest(target, with_captions)
    if target.is_dir() and (target / "manifest.parquet").is_file():
        return _from_manifest(target, with_captions)
    if target.is_dir():
        files = sorted(
            p for p in target.rglob("*")
            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(target).parts)
        )
        if not files:
            raise UserError(f"{spec}: no video files in this folder (looked for {', '.join(sorted(VIDEO_SUFFIXES)[:6])}, ...)")
        return Inputs(_unique_ids(files, target), spec, "folder")
    if any(ch in spec for ch in "*?["):
        # resolved and de-duplicated: two patterns or links naming one file give one input
        files = sorted({Path(p).resolve() for p in globlib.glob(spec, recursive=True) if os.path.isfile(p)})
        if not files:
            raise UserError(f"{spec}: the glob matches no files")
        root = Path(os.path.commonpath([str(p.parent) for p in files]))
        return Inputs(_unique_ids(files, root), spec, "glob")
    if target.is_file():
        return Inputs(_unique_ids([target.resolve()], target.resolve().parent), spec, "folder")
    raise UserError(f"{spec}: no such manifest, dataset dir, folder or glob")
