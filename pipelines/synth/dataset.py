"""Generating a whole synthetic dataset: resumable per-clip generation in worker processes, manifest and captions."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from videxperts.errors import UserError
from videxperts.pipelines.synth.plan import ClipSpec, plan_specs
from videxperts.pipelines.synth.render import encode_clip, ffmpeg_exe, text_extent
from videxperts.pipelines.synth.vocab import (
    FPS,
    HEIGHT,
    SAMPLE_RATE,
    SPEC_DIR,
    SPLIT_FRACTIONS,
    VIDEO_DIR,
    WIDTH,
)


def _spec_file(out: Path, video_id: str) -> Path:
    return out / SPEC_DIR / f"{video_id}.json"


def is_complete(out: Path, spec: ClipSpec) -> bool:
    """A clip is reusable when its sidecar names the same spec hash and the mp4 has the recorded size."""
    side = _spec_file(out, spec.video_id)
    video = out / VIDEO_DIR / f"{spec.video_id}.mp4"
    try:
        meta = json.loads(side.read_text())
        return meta.get("spec_hash") == spec.spec_hash() and video.stat().st_size == meta.get("size")
    except (OSError, ValueError):
        return False


def generate_clip(out_dir: str, spec: ClipSpec, encode: Callable[[Any, Path], None] | None = None) -> tuple[str, bool]:
    """Worker entry: (re)write one clip atomically unless a complete matching clip exists
    (``encode``: the clip's encoder, :func:`encode_clip` unless the spec is a timed one)."""
    import cv2

    cv2.setNumThreads(1)
    out = Path(out_dir)
    if is_complete(out, spec):
        return spec.video_id, False
    video = out / VIDEO_DIR / f"{spec.video_id}.mp4"
    side = _spec_file(out, spec.video_id)
    side.unlink(missing_ok=True)  # the sidecar is written last: no sidecar = not complete
    tmp = video.with_name(f".{spec.video_id}.{os.getpid()}.tmp.mp4")
    try:
        (encode or encode_clip)(spec, tmp)
        os.replace(tmp, video)
    finally:
        tmp.unlink(missing_ok=True)
    side_tmp = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    side_tmp.write_text(json.dumps({"spec_hash": spec.spec_hash(), "size": video.stat().st_size}))
    os.replace(side_tmp, side)
    return spec.video_id, True


def manifest_row(spec: ClipSpec) -> dict[str, Any]:
    """The manifest row of one clip: contract columns + every generating attribute."""
    first = spec.shapes[0]
    return {
        "video_id": spec.video_id,
        "path": f"{VIDEO_DIR}/{spec.video_id}.mp4",
        "duration": spec.duration,
        "fps": float(FPS),
        "width": WIDTH,
        "height": HEIGHT,
        "has_audio": spec.has_audio,
        "split": spec.split,
        "num_frames": spec.num_frames,
        "scene": spec.scene,
        "shape": first.shape,
        "color": first.color,
        "direction": first.direction,
        "shapes": [s.shape for s in spec.shapes],
        "colors": [s.color for s in spec.shapes],
        "directions": [s.direction for s in spec.shapes],
        "word": spec.word,
        "word_start": spec.word_frames[0] / FPS,
        "word_end": spec.word_frames[1] / FPS,
        "word_box": [*spec.word_box, *text_extent(spec.word)],
        "spoken": spec.spoken,
        "spoken_start": spec.spoken_start,
        "sound": spec.sound,
        "has_face": spec.has_face,
        "face_box": list(spec.face_box) if spec.face_box else None,
        "sample_rate": SAMPLE_RATE if spec.has_audio else None,
        "seed": spec.seed,
        "spec_hash": spec.spec_hash(),
    }


def _manifest_table(specs: list[ClipSpec]):
    import pyarrow as pa

    rows = [manifest_row(s) for s in specs]
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    types = {
        "num_frames": pa.int32(), "shapes": pa.list_(pa.string()), "colors": pa.list_(pa.string()),
        "directions": pa.list_(pa.string()), "spoken": pa.string(), "spoken_start": pa.float64(),
        "sound": pa.string(), "face_box": pa.list_(pa.int32()), "word_box": pa.list_(pa.int32()), "sample_rate": pa.int32(),
        "seed": pa.int64(), "word_start": pa.float64(), "word_end": pa.float64(),
    }  # fmt: skip
    from videxperts.storage.manifest import MANIFEST_SCHEMA

    fields = [MANIFEST_SCHEMA.field(k) if k in MANIFEST_SCHEMA.names else None for k in cols]
    arrays = [pa.array(v, type=(f.type if f is not None else types.get(k))) for (k, v), f in zip(cols.items(), fields, strict=True)]
    return pa.Table.from_arrays(arrays, names=list(cols))


def _captions_rows(specs: list[ClipSpec]) -> list[dict[str, Any]]:
    return [
        {"video_id": s.video_id, "caption_idx": i, "caption": c, "split": s.split}
        for s in specs
        for i, c in enumerate(s.captions)
    ]


def synthesize(
    out: str | os.PathLike[str],
    videos: int,
    seed: int = 0,
    workers: int | None = None,
    min_seconds: float = 2.0,
    max_seconds: float = 6.0,
    progress: bool = True,
    on_done: Callable[[str, bool], None] | None = None,
    timed: bool = False,
) -> dict[str, Any]:
    """Generate the dataset under ``out`` and return a summary; existing matching clips are reused.

    ``timed``: long clips with timed events and per-event captions for dense captioning
    (:mod:`.timed`; ``min_seconds``/``max_seconds`` then bound those clips)."""
    from tqdm import tqdm

    from videxperts.pipelines.synth import timed as timed_mod
    from videxperts.storage.manifest import write_captions, write_manifest

    t0 = time.perf_counter()
    encode = timed_mod.encode_timed_clip if timed else None
    if timed:
        specs: list[Any] = timed_mod.plan_timed_specs(videos, seed, min_seconds, max_seconds)
    else:
        specs = plan_specs(videos, seed, min_seconds, max_seconds)
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise UserError(f"{out_path}: exists and is not a directory")
    (out_path / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    (out_path / SPEC_DIR).mkdir(parents=True, exist_ok=True)
    ffmpeg_exe()
    if shutil.which("espeak-ng") is None and any(s.has_audio for s in specs):
        raise UserError("espeak-ng not found: install the Debian package espeak-ng ('make install' does)")
    todo = [s for s in specs if not is_complete(out_path, s)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    made = 0
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="synth", unit="clip", disable=None if progress else True, file=sys.stderr)
    try:
        if workers == 1:
            for s in todo:
                _, fresh = generate_clip(str(out_path), s, encode)
                made += fresh
                bar.update(1)
                if on_done:
                    on_done(s.video_id, fresh)
        else:
            # spawn: workers start clean (no inherited threads or locks from the parent)
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futs = {pool.submit(generate_clip, str(out_path), s, encode): s for s in todo}
                for fut in as_completed(futs):
                    try:
                        vid, fresh = fut.result()
                    except Exception as exc:
                        for f in futs:
                            f.cancel()
                        raise UserError(f"clip {futs[fut].video_id} failed: {exc}") from exc
                    made += fresh
                    bar.update(1)
                    if on_done:
                        on_done(vid, fresh)
    finally:
        bar.close()
    if timed:
        from videxperts.pipelines.anet_import import write_timed_exports
        from videxperts.storage.manifest import read_captions, read_manifest

        write_manifest(out_path, timed_mod.timed_manifest_table(specs))
        write_captions(out_path, timed_mod.timed_caption_rows(specs))
        write_timed_exports(out_path, read_captions(out_path), read_manifest(out_path),
                            {s: (s, None) for s in SPLIT_FRACTIONS})  # fmt: skip
    else:
        write_manifest(out_path, _manifest_table(specs))
        write_captions(out_path, _captions_rows(specs))
    splits = {k: sum(s.split == k for s in specs) for k in SPLIT_FRACTIONS}
    return {
        "out": str(out_path),
        "videos": len(specs),
        "generated": made,
        "reused": len(specs) - len(todo),
        "captions": sum(len(s.captions) for s in specs),
        "splits": splits,
        "with_face": sum(s.has_face for s in specs),
        "without_audio": sum(not s.has_audio for s in specs),
        "total_seconds_of_video": round(sum(s.duration for s in specs), 2),
        "seed": seed,
        "workers": workers,
        "elapsed_s": round(time.perf_counter() - t0, 2),
        **({"timed": True, "events": sum(len(s.events) for s in specs)} if timed else {}),
    }
