"""What ``videxperts extract`` reads: a manifest / dataset dir, a folder of videos, or a glob.

Still images (jpg, png, webp, bmp) are inputs too, as one-frame media: in folders and globs
beside videos, or as manifest rows; the decode-once reader reads them like a one-frame video.

Every input becomes an :class:`InputVideo` (a store key and an absolute path); captions come
along only from a dataset dir. A folder or glob keeps every matching file, even ones that are
obviously broken, so that each one is accounted for (as failed, with its reason) rather than
silently dropped. Entries named like videos that cannot be videos (a directory, a dangling
symlink, a symlink loop, a FIFO, a device, a name with a control character) are listed in
``Inputs.rejected`` with the reason, never opened (a FIFO would block the job).
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from videxperts.errors import UserError

VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".flv", ".wmv", ".ts",
    ".3gp", ".ogv", ".ogg", ".gif", ".mts", ".m2ts", ".vob", ".y4m", ".h264", ".hevc",
})
# still images are one-frame media: the same reader decodes them (PyAV), the same store keeps them
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES


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
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): named like a video, not one


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


MANIFEST_SUFFIXES = (".parquet",)


def _not_a_video(path: Path) -> str | None:
    """Why ``path`` (named like a video) cannot be read as one, or None for a regular file.

    Uses ``lstat``/``stat`` only: nothing is opened, so a FIFO or a device never blocks.
    """
    name = path.name
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in str(path)):
        return "its path has a control character (newline, tab, ...); rename it"
    try:
        st = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            return "symlink loop" if exc.errno == 40 else "dangling symlink"
        return f"cannot be read ({exc.strerror})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    what = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    return f"{what} named like a video ({name})"


def _walk_folder(target: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Regular video files under ``target`` and the entries named like videos that are not.

    ``os.walk`` without following directory links, so a symlink loop cannot recurse forever;
    hidden entries are skipped as before.
    """
    files: list[Path] = []
    rejected: list[tuple[str, str]] = []
    for dirpath, dirs, names in os.walk(target, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(dirpath)
        entries = [n for n in names if not n.startswith(".")]
        entries += [d for d in dirs if Path(d).suffix.lower() in MEDIA_SUFFIXES]  # a folder "x.mp4"
        for name in sorted(entries):
            p = here / name
            if p.suffix.lower() not in MEDIA_SUFFIXES:
                continue
            why = _not_a_video(p)
            if why is None:
                files.append(p)
            else:
                rejected.append((str(p), why))
    return sorted(files), rejected


def list_inputs(spec: str, *, with_captions: bool = True) -> Inputs:
    """Resolve INPUT (manifest file, dataset dir, folder of videos, or glob) to the job's inputs."""
    target = Path(spec)
    if target.is_file() and target.suffix == ".parquet":
        return _from_manifest(target, with_captions)
    if target.is_dir() and (target / "manifest.parquet").is_file():
        return _from_manifest(target, with_captions)
    if "://" in spec:
        raise UserError(f"{spec}: URLs are not supported as INPUT; give a local manifest, dataset dir, "
                        "folder or glob (the store itself may be an fsspec URL)")
    if target.is_dir():
        files, rejected = _walk_folder(target)
        if not files:
            extra = f"; {len(rejected)} entries named like videos are not files, e.g. {rejected[0][0]}: " \
                    f"{rejected[0][1]}" if rejected else ""
            raise UserError(f"{spec}: no video or image files in this folder (looked for "
                            f"{', '.join(sorted(VIDEO_SUFFIXES)[:6])}, ..., {', '.join(sorted(IMAGE_SUFFIXES))})"
                            f"{extra}")
        return Inputs(_unique_ids(files, target), spec, "folder", rejected=rejected)
    if any(ch in spec for ch in "*?["):
        # resolved and de-duplicated: two patterns or links naming one file give one input
        matches = sorted(globlib.glob(spec, recursive=True))
        rejected = [(p, why) for p in matches if Path(p).suffix.lower() in MEDIA_SUFFIXES
                    and (why := _not_a_video(Path(p))) is not None]
        bad = {p for p, _ in rejected}
        files = sorted({Path(p).resolve() for p in matches if p not in bad and os.path.isfile(p)})
        if not files:
            raise UserError(f"{spec}: the glob matches no files")
        root = Path(os.path.commonpath([str(p.parent) for p in files]))
        return Inputs(_unique_ids(files, root), spec, "glob", rejected=rejected)
    if target.is_file() or os.path.lexists(target):
        why = _not_a_video(target) if target.suffix.lower() in MEDIA_SUFFIXES else (
            f"not a video or image file (suffix {target.suffix or 'none'!r})")
        if why is not None:
            raise UserError(f"{spec}: {why}; INPUT must be a manifest (.parquet), a dataset dir, a folder of "
                            f"videos or images, a glob, or one video or image file ({', '.join(sorted(VIDEO_SUFFIXES)[:6])}, ..., "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))})")
        return Inputs(_unique_ids([target.resolve()], target.resolve().parent), spec, "folder")
    raise UserError(f"{spec}: no such manifest, dataset dir, folder or glob")
