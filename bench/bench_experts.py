"""Per-expert CPU cost of an extraction profile, in milliseconds of compute per second of video.

Generates a 4 s 320x240 test clip with sound (PyAV), decodes it once for every expert of the
profile (``videxperts.extractors.decode.decode_video`` when it exists, else PyAV directly), then times
``extract`` (after a warm-up call) for each expert. Model loading is timed separately.

    .venv/bin/python bench/bench_experts.py --profile demo --experts scene,inst,i3d,r2p1d,audio --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videxperts.extractors.base import MediaView  # noqa: E402
from videxperts.extractors.registry import build_expert, load_profile  # noqa: E402


def make_clip(path: Path, seconds: float = 4.0, fps: int = 25, w: int = 320, h: int = 240) -> None:
    """A moving gradient with a square and a 440 Hz tone: enough texture for real decode work."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        as_ = out.add_stream("aac", rate=16000)
        as_.layout = "mono"
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(int(seconds * fps)):
            img = np.stack([(xx + 4 * i) % 256, (yy + 2 * i) % 256, np.full_like(xx, (8 * i) % 256)], -1)
            x0 = (10 * i) % (w - 60)
            img[100:160, x0:x0 + 60] = 255
            for p in vs.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        sr, block = 16000, 1024
        t = np.arange(int(seconds * sr)) / sr
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(wave), block):
            fr = av.AudioFrame.from_ndarray(wave[None, k:k + block], format="flt", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = sr, k, Fraction(1, sr)
            for p in as_.encode(fr):
                out.mux(p)
        for p in as_.encode():
            out.mux(p)


def pyav_view(path: Path, expert, seconds: float) -> MediaView:
    """Fallback decode: frames at the expert's fps (nearest frame), short side at its size."""
    import av
    import torch

    from videxperts.extractors.experts._frames import resize_short_side

    needs = expert.needs
    view = MediaView(video_id="bench", duration=seconds)
    with av.open(str(path)) as c:
        if needs.frames is not None:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            src_fps = float(c.streams.video[0].average_rate)
            n = int(np.floor(seconds * needs.frames.fps + 1e-6))
            times = np.arange(n) / needs.frames.fps
            idx = np.minimum(np.round(times * src_fps).astype(int), len(frames) - 1)
            arr = torch.from_numpy(np.stack([frames[i] for i in idx]))
            if needs.frames.size:
                arr = resize_short_side(arr, needs.frames.size)
            view.frames, view.frame_times = arr.numpy(), times
    if needs.audio is not None:
        with av.open(str(path)) as c:
            rs = av.AudioResampler(format="flt", layout="mono", rate=needs.audio.sample_rate)
            chunks = [r.to_ndarray().flatten() for f in c.decode(audio=0) for r in rs.resample(f)]
        view.audio, view.sample_rate = np.concatenate(chunks), needs.audio.sample_rate
    return view


def decode_for(path: Path, expert, seconds: float) -> MediaView:
    try:
        from videxperts.extractors.decode import decode_video
    except ImportError:
        return pyav_view(path, expert, seconds)
    return decode_video(str(path), {expert.name: expert.needs}, video_id="bench")[expert.name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="demo")
    ap.add_argument("--experts", default="scene,inst,i3d,r2p1d,audio")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = load_profile(args.profile)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "bench.mp4"
        make_clip(clip, args.seconds)
        for name in args.experts.split(","):
            expert = build_expert(name, profile["experts"][name])
            t0 = time.perf_counter()
            expert.load("cpu")
            load_s = time.perf_counter() - t0
            view = decode_for(clip, expert, args.seconds)
            out = expert.extract([view])[0]  # warm-up
            times, cpu = [], []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                expert.extract([view])
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            best = min(times)
            rows.append({
                "expert": name, "variant": expert.variant, "dim": expert.dim, "units": int(out.features.shape[0]),
                "load_s": round(load_s, 2), "extract_s": round(best, 3),
                "ms_per_video_second": round(1000 * best / args.seconds, 1),
                "cpu_ms_per_video_second": round(1000 * min(cpu) / args.seconds, 1),
            })
    if args.json:
        print(json.dumps({"profile": args.profile, "threads": torch.get_num_threads(),
                          "loadavg": os.getloadavg()[0], "rows": rows}, indent=1))
    else:
        print(f"profile={args.profile} torch_threads={torch.get_num_threads()} clip={args.seconds}s 320x240")
        for r in rows:
            print(f"{r['expert']:7s} {r['variant']:18s} dim={r['dim']:5d} units={r['units']:3d} "
                  f"load={r['load_s']:6.2f}s  wall {r['ms_per_video_second']:8.1f} ms/video-s"
                  f"  cpu {r['cpu_ms_per_video_second']:8.1f} ms/video-s")
        print(f"total wall {sum(r['ms_per_video_second'] for r in rows):.1f} ms/video-s, "
              f"cpu {sum(r['cpu_ms_per_video_second'] for r in rows):.1f} ms/video-s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
