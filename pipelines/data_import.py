"""Import a folder of real videos + captions as a dataset (``videxperts data import``).

Captions come as CSV (``video_id,caption[,split]``) or MSR-VTT-style JSON
(``{"videos": [{"video_id", "split"}], "sentences": [{"video_id", "caption"}]}``). Every video
is probed in a child process with a time limit, so garbage (empty, random bytes, truncated,
hostile files that hang a demuxer) is reported in ``DIR/import_report.parquet`` instead of
stopping the import or reaching extraction.

Where the videos live: manifest paths are relative to ``DIR`` (see videxperts.storage.manifest). Videos
already inside ``DIR`` are referenced directly; otherwise ``--link symlink`` (default) puts a
symlink per video under ``DIR/videos/``, ``--link copy`` copies them, and ``--link relative``
stores ``../`` paths that readers accept only with ``VIDEXPERTS_ALLOW_OUTSIDE_PATHS=1``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videxperts.errors import UserError

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts", ".ogv"}
)
REPORT_NAME = "import_report.parquet"
LINK_MODES = ("symlink", "copy", "relative")
DEFAULT_PROBE_TIMEOUT_S = 30.0
# Names real datasets use for the three splits (MSR-VTT says "validate").
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validate": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}  # fmt: skip


class CaptionsError(UserError):
    """A captions file that cannot be parsed; the message names the file (and row)."""


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------
@dataclass
class Captions:
    """Captions per video in file order, and the split each video was given (if any)."""

    by_video: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    empty_skipped: int = 0

    def add(self, video_id: str, caption: str) -> None:
        text = " ".join(caption.split())
        if not text:
            self.empty_skipped += 1
            return
        self.by_video.setdefault(video_id, []).append(text)


def read_captions_file(path: str | os.PathLike[str]) -> Captions:
    """Parse a CSV or MSR-VTT-style JSON captions file (chosen by extension)."""
    p = Path(path)
    if not p.is_file():
        raise CaptionsError(f"{p}: captions file not found")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return _read_csv(p)
    if suffix == ".json":
        return _read_json(p)
    raise CaptionsError(f"{p}: unknown captions format (use .csv with video_id,caption[,split] or MSR-VTT .json)")


def _read_csv(p: Path) -> Captions:
    caps = Captions()
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = fields
            missing = [c for c in ("video_id", "caption") if c not in fields]
            if missing:
                raise CaptionsError(f"{p}: CSV header lacks column(s) {', '.join(missing)} (found: {', '.join(fields) or 'nothing'})")
            for line, row in enumerate(reader, start=2):
                vid = (row.get("video_id") or "").strip()
                if not vid:
                    raise CaptionsError(f"{p}: line {line}: empty video_id")
                caps.add(vid, row.get("caption") or "")
                if "split" in fields and (row.get("split") or "").strip():
                    _set_split(caps, vid, row["split"], f"{p}: line {line}")
    except UnicodeDecodeError as exc:
        raise CaptionsError(f"{p}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise CaptionsError(f"{p}: malformed CSV ({exc})") from exc
    return caps


def _read_json(p: Path) -> Captions:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptionsError(f"{p}: not valid JSON ({exc})") from exc
    caps = Captions()
    if isinstance(doc, list):  # a plain list of {"video_id", "caption"[, "split"]} records
        doc = {"sentences": doc, "videos": [r for r in doc if isinstance(r, dict) and "split" in r]}
    if not isinstance(doc, dict) or not isinstance(doc.get("sentences"), list):
        raise CaptionsError(f"{p}: expected MSR-VTT JSON with a 'sentences' list of {{video_id, caption}}")
    for i, s in enumerate(doc["sentences"]):
        if not isinstance(s, dict) or not isinstance(s.get("video_id"), str | int) or not isinstance(s.get("caption"), str):
            raise CaptionsError(f"{p}: sentences[{i}] needs a video_id and a caption string")
        caps.add(str(s["video_id"]).strip(), s["caption"])
    for i, v in enumerate(doc.get("videos") or []):
        if not isinstance(v, dict) or "video_id" not in v:
            raise CaptionsError(f"{p}: videos[{i}] needs a video_id")
        if v.get("split") is not None:
            _set_split(caps, str(v["video_id"]).strip(), str(v["split"]), f"{p}: videos[{i}]")
    return caps


def _set_split(caps: Captions, vid: str, raw: str, where: str) -> None:
    split = _SPLIT_ALIASES.get(raw.strip().lower())
    if split is None:
        raise CaptionsError(f"{where}: unknown split {raw!r} (use train, val or test)")
    if caps.splits.setdefault(vid, split) != split:
        raise CaptionsError(f"{where}: video {vid!r} is given two splits ({caps.splits[vid]} and {split})")


def hash_split(video_id: str) -> str:
    """Deterministic 70/15/15 split from the id alone: stable when videos are added or removed."""
    u = int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "big") / 2**64
    return "train" if u < 0.70 else ("val" if u < 0.85 else "test")


# ---------------------------------------------------------------------------------------------
# Probe: one video, in a child process with a time limit
# ---------------------------------------------------------------------------------------------
class ProbeError(Exception):
    """A video that is not usable; ``kind`` is a short class (empty, corrupt, truncated, ...)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def probe_files(files: dict[str, Path], timeout_s: float, workers: int | None,
                progress: bool) -> Iterator[tuple[str, dict[str, Any] | ProbeError]]:
    """Probe every file (in threads, each probe bounded by ``timeout_s``), in video-id order:
    (video_id, stream info) or (video_id, the ProbeError that says why it is unreadable)."""
    from tqdm import tqdm

    bar = tqdm(total=len(files), desc="probe", unit="video", disable=None if progress else True, file=sys.stderr)

    def _one(vid: str) -> tuple[str, dict[str, Any] | ProbeError]:
        try:
            return vid, probe_video(files[vid], timeout_s)
        except ProbeError as exc:
            return vid, exc

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers or os.cpu_count() or 1)) as pool:
            for item in pool.map(_one, sorted(files)):
                bar.update(1)
                yield item
    finally:
        bar.close()


def _probe_child(path: str, conn: Any) -> None:
    """Runs in the child: open, demux every video packet, decode the first frame."""
    try:
        conn.send(("ok", _probe_here(path)))
    except ProbeError as exc:
        conn.send(("error", (exc.kind, exc.reason)))
    except Exception as exc:  # any decoder failure is a property of the file
        conn.send(("error", ("corrupt", f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def _probe_here(path: str) -> dict[str, Any]:
    import av

    try:
        container = av.open(path, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise ProbeError("corrupt", f"not a readable media container ({exc.strerror or exc})") from exc
    with container:
        if not container.streams.video:
            raise ProbeError("no_video", "no video stream")
        vs = container.streams.video[0]
        has_audio = bool(container.streams.audio)
        width, height = vs.codec_context.width, vs.codec_context.height
        if not width or not height:
            raise ProbeError("corrupt", "video stream has no frame size")
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        tb = float(vs.time_base) if vs.time_base else 0.0
        declared = float(vs.duration * tb) if vs.duration and tb else (container.duration or 0) / 1e6
        first_pts, last_end, packets, decoded = None, 0.0, 0, False
        try:
            for pkt in container.demux(vs):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                packets += 1
                t = float(pkt.pts * tb)
                first_pts = t if first_pts is None else min(first_pts, t)
                last_end = max(last_end, t + float((pkt.duration or 0) * tb))
                if not decoded:
                    decoded = bool(vs.codec_context.decode(pkt)) or decoded
        except av.error.FFmpegError as exc:
            raise ProbeError("truncated", f"read error after {packets} packets ({exc.strerror or exc})") from exc
        if packets == 0:
            raise ProbeError("corrupt", "no video packets")
        if not decoded:  # the decoder may buffer a few packets: flush it
            try:
                decoded = bool(vs.codec_context.decode(None))
            except av.error.FFmpegError:
                decoded = False
        if not decoded:
            raise ProbeError("corrupt", "no frame decodes")
    readable = last_end - (first_pts or 0.0)
    if readable <= 0 and fps > 0:
        readable = packets / fps
    if declared > 1.0 and readable < 0.9 * declared - 0.5:
        raise ProbeError("truncated", f"only {readable:.2f} s of the declared {declared:.2f} s can be read")
    if fps <= 0:
        fps = packets / readable if readable > 0 else 0.0
    if fps <= 0 or readable <= 0:
        raise ProbeError("corrupt", "no frame rate or duration")
    return {
        "duration": round(readable, 6),
        "fps": round(fps, 6),
        "num_frames": packets,
        "width": int(width),
        "height": int(height),
        "has_audio": has_audio,
        "codec": vs.codec_context.name,
    }


_PRELOADED = False


def _preload(ctx: Any) -> None:
    """Have the fork server import PyAV once, so each probe child starts with it loaded."""
    global _PRELOADED
    if not _PRELOADED:
        ctx.set_forkserver_preload(["av", "videxperts.pipelines.data_import"])
        _PRELOADED = True


def probe_video(path: str | os.PathLike[str], timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Describe one video or raise :class:`ProbeError`; the child is killed after ``timeout_s``.

    Kept here (not the decoder's probe) because import must also flag files whose header
    promises more than can be read (truncated downloads), and a forked child with PyAV already
    loaded costs milliseconds per file instead of a new interpreter.
    """
    import multiprocessing as mp

    p = os.fspath(path)
    try:
        size = os.path.getsize(p)
    except OSError as exc:
        raise ProbeError("missing", f"cannot stat file ({exc.strerror})") from exc
    if size == 0:
        raise ProbeError("empty", "file is empty (0 bytes)")
    ctx = mp.get_context("forkserver")
    _preload(ctx)
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_probe_child, args=(p, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise ProbeError("timeout", f"probe did not finish within {timeout_s:g} s")
        status, payload = parent.recv()
    except EOFError:
        proc.join(5)
        raise ProbeError("crash", f"probe process died (exit code {proc.exitcode})") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    if status == "ok":
        return payload
    raise ProbeError(*payload)


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------
def _scan(folder: Path, exclude: Path | None) -> list[Path]:
    """Video files under ``folder`` (recursive, sorted), skipping hidden names and ``exclude``."""
    found = []
    for root, dirs, files in os.walk(folder):
        rp = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (exclude is None or (rp / d).resolve() != exclude))
        found.extend(rp / f for f in files if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_EXTENSIONS)
    return sorted(found)


def _place(src: Path, folder: Path, out: Path, link: str) -> tuple[str, bool]:
    """Make ``src`` reachable from ``out``; returns (path relative to out, escapes out)."""
    src_abs, out_abs = src.resolve(), out.resolve()
    if out_abs in src_abs.parents:
        return src_abs.relative_to(out_abs).as_posix(), False
    if link == "relative":
        return Path(os.path.relpath(src_abs, out_abs)).as_posix(), True
    rel = Path("videos") / src.relative_to(folder)
    dest = out / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()
    if link == "symlink":
        os.symlink(src_abs, dest)
    else:
        shutil.copy2(src_abs, dest)
    return rel.as_posix(), False


REPORT_COLUMNS = ("file", "video_id", "problem", "reason")


def import_dataset(
    folder: str | os.PathLike[str],
    captions_file: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    split_from_captions: bool = False,
    link: str = "symlink",
    workers: int | None = None,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    progress: bool = True,
    on_problem: Callable[[dict[str, str]], None] | None = None,
) -> dict[str, Any]:
    """Probe, match and write ``out``'s manifest, captions and import report; returns a summary.

    Problems are never fatal: unreadable files, videos without captions, captions naming no
    video and duplicate ids go to the report (and ``on_problem``) and are left out.
    """
    import pyarrow as pa

    from videxperts.storage.manifest import check_video_id, write_captions, write_manifest

    t0 = time.perf_counter()
    folder_p, out_p = Path(folder), Path(out)
    if not folder_p.is_dir():
        raise UserError(f"{folder_p}: not a folder of videos")
    if link not in LINK_MODES:
        raise UserError(f"--link must be one of {', '.join(LINK_MODES)}, got {link!r}")
    if out_p.exists() and not out_p.is_dir():
        raise UserError(f"{out_p}: exists and is not a directory")
    caps = read_captions_file(captions_file)
    out_p.mkdir(parents=True, exist_ok=True)
    files = _scan(folder_p, out_p.resolve() / "videos")

    problems: list[dict[str, str]] = []

    def report(file: str, vid: str, problem: str, reason: str) -> None:
        row = {"file": file, "video_id": vid, "problem": problem, "reason": reason}
        problems.append(row)
        if on_problem:
            on_problem(row)

    by_id: dict[str, Path] = {}
    for f in files:
        vid, rel = f.stem, f.relative_to(folder_p).as_posix()
        try:
            check_video_id(vid)
        except UserError as exc:
            report(rel, vid, "bad_video_id", str(exc))
            continue
        if vid in by_id:
            report(rel, vid, "duplicate_id", f"same video_id as {by_id[vid].relative_to(folder_p).as_posix()}")
            continue
        by_id[vid] = f

    infos: dict[str, dict[str, Any]] = {}
    for vid, res in probe_files(by_id, timeout_s, workers, progress):
        rel = by_id[vid].relative_to(folder_p).as_posix()
        if isinstance(res, ProbeError):
            report(rel, vid, f"unreadable:{res.kind}", res.reason)
        else:
            infos[vid] = res

    rows: list[dict[str, Any]] = []
    cap_rows: list[dict[str, Any]] = []
    escapes = False
    for vid in sorted(infos):
        rel = by_id[vid].relative_to(folder_p).as_posix()
        texts = caps.by_video.get(vid)
        if not texts:
            report(rel, vid, "no_captions", "no caption names this video_id")
            continue
        if split_from_captions:
            split = caps.splits.get(vid)
            if split is None:
                report(rel, vid, "no_split", "--split-from-captions given but the captions file has no split for it")
                continue
        else:
            split = hash_split(vid)
        path, esc = _place(by_id[vid], folder_p, out_p, link)
        escapes |= esc
        info = infos[vid]
        rows.append({"video_id": vid, "path": path, "duration": info["duration"], "fps": info["fps"],
                     "width": info["width"], "height": info["height"], "has_audio": info["has_audio"],
                     "split": split, "num_frames": info["num_frames"], "codec": info["codec"], "source": rel})  # fmt: skip
        cap_rows.extend({"video_id": vid, "caption_idx": i, "caption": c, "split": split} for i, c in enumerate(texts))
    for vid in sorted(set(caps.by_video) - set(by_id)):
        report("", vid, "missing_video", f"{len(caps.by_video[vid])} caption(s) but no video file with this id")

    if not rows:
        raise UserError(f"{folder_p}: no usable captioned videos ({len(files)} video files, {len(problems)} problems)")
    write_manifest(out_p, rows, allow_outside=escapes)
    write_captions(out_p, cap_rows)
    cols = {c: pa.array([p[c] for p in problems], pa.string()) for c in REPORT_COLUMNS}
    pa_table = pa.Table.from_pydict(cols)
    import pyarrow.parquet as pq

    tmp = out_p / f".{REPORT_NAME}.tmp"
    pq.write_table(pa_table, tmp)
    os.replace(tmp, out_p / REPORT_NAME)
    counts: dict[str, int] = {}
    for p in problems:
        counts[p["problem"]] = counts.get(p["problem"], 0) + 1
    return {
        "out": str(out_p),
        "video_files": len(files),
        "videos": len(rows),
        "captions": len(cap_rows),
        "splits": {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")},
        "problems": counts,
        "paths_outside_out": escapes,
        "link": link,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }
