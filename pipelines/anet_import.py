"""Import ActivityNet Captions (``train.json``, ``val_1.json``, ``val_2.json``) as a dataset
(``videxperts data import-anet``).

Each file is ``{video_id: {"duration": s, "timestamps": [[s, e], ...], "sentences": [...]}}``.
Captions become timed rows of ``captions.parquet`` (``start``/``end``), cleaned as the published
BMT meta files were: a right single quote becomes ``'``, every ``.`` not followed by a digit is
removed, newlines become spaces, runs of spaces collapse, then strip. ``train.json`` gives the
train split; ``val_1.json`` and ``val_2.json`` annotate (mostly) the same videos, so both go to
the val split and each row says which file it came from (``reference_set``).

Only about 91 % of ActivityNet could ever be downloaded, and references that still hold the
missing videos lower every score (BMT issue #17: METEOR 7.6 instead of > 8). So a video is kept
when it is available -- a readable file in ``--videos`` or a BMT feature file in ``--features``
-- and every other one is listed (``import_report.parquet``, problem ``missing_video``) and left
out, never fatal. Every kept video gets a manifest row (the splits are read from it); one known
only by its features has ``video_file`` false and the features' sampling (25 fps, 224 px) in
place of the missing file's. ``references/<file>_no_missings.json`` are the reference files restricted to
the kept videos, with the original (uncleaned) sentences, exactly what the evaluator needs; an
input that is already a ``*_no_missings.json`` is accepted under its base name.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from videxperts.errors import UserError
from videxperts.pipelines.data_import import (
    DEFAULT_PROBE_TIMEOUT_S,
    REPORT_COLUMNS,
    REPORT_NAME,
    ProbeError,
    _place,
    _scan,
    probe_files,
)

ANET_FILES = {"train": "train", "val_1": "val", "val_2": "val"}  # reference set -> split
REFERENCES_DIR = "references"
_DOT = re.compile(r"\.(?!\d)")
_SPACES = re.compile(r" +")


def clean_caption(text: str) -> str:
    """The published caption cleaning (BMT's meta files)."""
    text = text.replace("\u2019", "'")
    text = _DOT.sub("", text)
    text = text.replace("\n", " ")
    return _SPACES.sub(" ", text).strip()


def reference_set(path: str | os.PathLike[str]) -> str:
    """``train`` / ``val_1`` / ``val_2`` from a file name (``val_1_no_missings.json`` is ``val_1``)."""
    stem = Path(path).name.lower().removesuffix(".json").removesuffix("_no_missings")
    if stem not in ANET_FILES:
        raise UserError(f"{path}: expected an ActivityNet Captions file named train.json, val_1.json or val_2.json")
    return stem


def read_anet_json(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """One ActivityNet Captions file, checked: every problem is one line naming the file and video."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: ActivityNet captions file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{p}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{p}: expected {{video_id: {{duration, timestamps, sentences}}}}")
    for vid, entry in doc.items():
        where = f"{p}: video {vid!r}"
        if not isinstance(entry, dict) or not {"duration", "timestamps", "sentences"} <= set(entry):
            raise UserError(f"{where}: needs duration, timestamps and sentences")
        dur = entry["duration"]
        if not isinstance(dur, int | float) or not math.isfinite(dur) or dur <= 0:
            raise UserError(f"{where}: duration must be a positive number, got {dur!r}")
        ts, sents = entry["timestamps"], entry["sentences"]
        if not isinstance(ts, list) or not isinstance(sents, list) or len(ts) != len(sents):
            raise UserError(f"{where}: timestamps and sentences must be lists of the same length")
        for k, (t, s) in enumerate(zip(ts, sents, strict=True)):
            ok = isinstance(t, list) and len(t) == 2 and all(isinstance(x, int | float) and math.isfinite(x) for x in t)
            if not ok or not isinstance(s, str):
                raise UserError(f"{where}: segment {k} needs [start, end] numbers and a sentence string")
    return doc


def _event_times(start: float, end: float) -> tuple[float, float] | None:
    """Stored times: negative starts clamp to 0; an empty or reversed span is left out."""
    start = max(0.0, float(start))
    return (start, float(end)) if end > start else None


def bmt_feature_ids(features: str | os.PathLike[str]) -> set[str]:
    """Video ids with BMT features: ``<vid>_rgb.npy`` under ``features`` (any depth)."""
    root = Path(features)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder of BMT feature files (<vid>_rgb.npy, <vid>_flow.npy)")
    return {p.name.removesuffix("_rgb.npy") for p in root.rglob("*_rgb.npy")}


def import_activitynet(
    annotations: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    videos: str | os.PathLike[str] | None = None,
    features: str | os.PathLike[str] | None = None,
    link: str = "symlink",
    workers: int | None = None,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``out``'s captions (and a manifest of the probed videos), the import report and the
    ``*_no_missings`` references; returns a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from videxperts.storage.manifest import check_video_id, write_captions, write_manifest

    t0 = time.perf_counter()
    if not annotations:
        raise UserError("give at least one ActivityNet Captions file (train.json, val_1.json, val_2.json)")
    if videos is None and features is None:
        raise UserError("say where the videos are: --videos FOLDER and/or --features BMT_FEATURE_FOLDER")
    sets: dict[str, dict[str, dict[str, Any]]] = {}
    for a in annotations:
        name = reference_set(a)
        if name in sets:
            raise UserError(f"{a}: {name} given twice")
        sets[name] = read_anet_json(a)
    split_of: dict[str, str] = {}
    for name, doc in sets.items():
        for vid in doc:
            check_video_id(vid, f"{name}: ")
            split = ANET_FILES[name]
            if split_of.setdefault(vid, split) != split:
                raise UserError(f"video {vid!r} is in train.json and in {name}.json: one split per video")

    out_p = Path(out)
    if out_p.exists() and not out_p.is_dir():
        raise UserError(f"{out_p}: exists and is not a directory")
    out_p.mkdir(parents=True, exist_ok=True)
    problems: list[dict[str, str]] = []
    available: set[str] = set()
    rows: list[dict[str, Any]] = []
    escapes = False
    if features is not None:
        available |= bmt_feature_ids(features) & set(split_of)
    if videos is not None:
        folder = Path(videos)
        if not folder.is_dir():
            raise UserError(f"{folder}: not a folder of videos")
        files = {f.stem: f for f in _scan(folder, out_p.resolve() / "videos") if f.stem in split_of}
        for vid, res in probe_files(files, timeout_s, workers, progress):
            rel = files[vid].relative_to(folder).as_posix()
            if isinstance(res, ProbeError):
                problems.append({"file": rel, "video_id": vid, "problem": f"unreadable:{res.kind}", "reason": res.reason})
                continue
            path, esc = _place(files[vid], folder, out_p, link)
            escapes |= esc
            rows.append({"video_id": vid, "path": path, "duration": res["duration"], "fps": res["fps"],
                         "width": res["width"], "height": res["height"], "has_audio": res["has_audio"],
                         "split": split_of[vid], "num_frames": res["num_frames"], "codec": res["codec"],
                         "source": rel, "anet_duration": float(_duration(sets, vid)), "video_file": True})  # fmt: skip
            available.add(vid)
    if features is not None:
        # Videos known only by their features still need a manifest row (splits are read from
        # it): the video's place, its annotated duration, and the features' sampling (25 fps,
        # 224 px crop) in place of the unknown file's; video_file false says there is no file.
        in_rows = {r["video_id"] for r in rows}
        vgg_dirs = [d for d in (Path(features).parent / "vggish_npy", Path(features).parent / "vggish") if d.is_dir()]
        for vid in sorted(available - in_rows):
            dur = _duration(sets, vid)
            rows.append({"video_id": vid, "path": f"videos/{vid}.mp4", "duration": dur, "fps": 25.0, "width": 224,
                         "height": 224, "has_audio": any((d / f"{vid}.npy").is_file() for d in vgg_dirs),
                         "split": split_of[vid], "num_frames": None, "codec": None, "source": "bmt-features",
                         "anet_duration": dur, "video_file": False})  # fmt: skip
        rows.sort(key=lambda r: r["video_id"])

    cap_rows: list[dict[str, Any]] = []
    dropped_segments = 0
    for vid in sorted(split_of):
        if vid not in available:
            problems.append({"file": "", "video_id": vid, "problem": "missing_video",
                             "reason": "in " + ", ".join(n for n in sets if vid in sets[n]) + " but no readable video or feature file"})  # fmt: skip
            continue
        idx = 0
        for name, doc in sets.items():
            if vid not in doc:
                continue
            for (s, e), sent in zip(doc[vid]["timestamps"], doc[vid]["sentences"], strict=True):
                times, text = _event_times(s, e), clean_caption(sent)
                if times is None or not text:
                    dropped_segments += 1
                    problems.append({"file": f"{name}.json", "video_id": vid, "problem": "bad_segment",
                                     "reason": f"segment [{s}, {e}] {sent[:40]!r}: empty span or caption"})  # fmt: skip
                    continue
                cap_rows.append({"video_id": vid, "caption_idx": idx, "caption": text, "split": split_of[vid],
                                 "start": times[0], "end": times[1], "reference_set": name,
                                 "duration": float(doc[vid]["duration"])})  # fmt: skip
                idx += 1
    if not cap_rows:
        raise UserError(f"no ActivityNet video is available ({len(split_of)} annotated, none found on disk)")

    write_captions(out_p, cap_rows)
    write_manifest(out_p, rows, allow_outside=escapes)
    ref_dir = out_p / REFERENCES_DIR
    ref_dir.mkdir(exist_ok=True)
    refs_written = {}
    for name, doc in sets.items():
        kept = {vid: doc[vid] for vid in doc if vid in available}
        dest = ref_dir / f"{name}_no_missings.json"
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_text(json.dumps(kept, sort_keys=True), encoding="utf-8")
        os.replace(tmp, dest)
        refs_written[name] = {"file": str(dest), "videos": len(kept), "of": len(doc)}
    from videxperts.storage.manifest import read_captions, read_manifest

    meta = write_timed_exports(out_p, read_captions(out_p), read_manifest(out_p, allow_outside=True),
                               {name: (ANET_FILES[name], name) for name in sets})  # fmt: skip
    for name in meta:  # keep only the BMT meta files here: the references are the *_no_missings files
        (ref_dir / f"{name}.json").unlink(missing_ok=True)
    table = pa.Table.from_pydict({c: pa.array([p[c] for p in problems], pa.string()) for c in REPORT_COLUMNS})
    tmp = out_p / f".{REPORT_NAME}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, out_p / REPORT_NAME)
    missing = sorted(p["video_id"] for p in problems if p["problem"] == "missing_video")
    (out_p / "missing_videos.txt").write_text("".join(f"{v}\n" for v in missing), encoding="utf-8")
    return {
        "out": str(out_p),
        "annotated_videos": len(split_of),
        "available_videos": len(available),
        "videos_in_manifest": len(rows),
        "videos_with_file": sum(bool(r["video_file"]) for r in rows),
        "missing_videos": len(missing),
        "captions": len(cap_rows),
        "dropped_segments": dropped_segments,
        "splits": {s: sum(1 for v in available if split_of[v] == s) for s in ("train", "val")},
        "references": refs_written,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }


def _duration(sets: dict[str, dict[str, dict[str, Any]]], vid: str) -> float:
    return next(float(doc[vid]["duration"]) for doc in sets.values() if vid in doc)


def captions_to_anet(captions: Any, split: str | None = None, reference_set: str | None = None,
                     durations: dict[str, float] | None = None) -> dict[str, dict]:  # fmt: skip
    """Timed rows of a captions table as an ActivityNet reference file (for the evaluator); e.g.
    the synthetic ``--timed`` val split. Video-level rows (no times) are skipped; ``duration``
    comes from ``durations`` (the manifest's), else a ``duration`` column, else the last end."""
    out: dict[str, dict[str, Any]] = {}
    for r in captions.to_pylist():
        if r.get("start") is None or (split and r["split"] != split):
            continue
        if reference_set and r.get("reference_set") not in (None, reference_set):
            continue
        e = out.setdefault(r["video_id"], {"duration": 0.0, "timestamps": [], "sentences": []})
        e["timestamps"].append([r["start"], r["end"]])
        e["sentences"].append(r["caption"])
        known = (durations or {}).get(r["video_id"]) or r.get("duration")
        e["duration"] = float(known) if known else max(e["duration"], float(r["end"]))
    return out


BMT_META_COLUMNS = ("video_id", "caption", "start", "end", "duration", "phase", "idx")


def write_bmt_meta(captions: Any, dest: str | os.PathLike[str], phase: str, split: str | None = None,
                   reference_set: str | None = None, durations: dict[str, float] | None = None) -> int:  # fmt: skip
    """The BMT meta file of one phase (tab-separated ``video_id caption start end duration phase
    idx``, one row per timed caption, as the original ``data/<phase>.csv``); returns the rows."""
    doc = captions_to_anet(captions, split, reference_set, durations)
    lines = ["\t".join(BMT_META_COLUMNS)]
    for vid in doc:
        e = doc[vid]
        for (s, t), sent in zip(e["timestamps"], e["sentences"], strict=True):
            text = clean_caption(sent).replace("\t", " ")
            lines.append("\t".join([vid, text, f"{s:g}", f"{t:g}", f"{e['duration']:g}", phase, str(len(lines) - 1)]))
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return len(lines) - 1


def write_timed_exports(out: str | os.PathLike[str], captions: Any, manifest: Any, phases: dict[str, tuple[str, str | None]]) -> dict[str, Any]:
    """``references/<phase>.json`` (ActivityNet shape) and ``meta/<phase>.csv`` (BMT's 7 columns)
    for each ``phase -> (split, reference_set)``; phases with no timed caption are skipped."""
    durations = dict(zip(manifest.column("video_id").to_pylist(), manifest.column("duration").to_pylist(), strict=True))
    written: dict[str, Any] = {}
    for phase, (split, ref_set) in phases.items():
        doc = captions_to_anet(captions, split, ref_set, durations)
        if not doc:
            continue
        ref = Path(out) / REFERENCES_DIR / f"{phase}.json"
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
        os.replace(tmp, ref)
        rows = write_bmt_meta(captions, Path(out) / "meta" / f"{phase}.csv", phase, split, ref_set, durations)
        written[phase] = {"videos": len(doc), "segments": rows}
    return written
