"""videxperts against the per-extractor algorithm of v-iashin/video_features, side by side (never a test).

The baseline is that tool's algorithm as its documentation describes it, written here (none of
its code): **one process per extractor**, each opening and decoding every video again with a
per-frame loop (OpenCV ``VideoCapture.read``), transforming frame by frame, and running its
model with torch's default threads (all cores):

* ``r21d``: every frame; per frame: RGB float in [0, 1], bilinear resize to 128x171, Kinetics
  normalisation, centre crop 112; stacks of 16 frames every 16 frames (an incomplete last
  stack is dropped); one stack per forward; feature = the 512-d input of the classifier.
* ``resnet``: every frame; per frame: short side 224 (PIL bilinear), centre crop 224, ImageNet
  normalisation; one frame per forward; feature = the 512-d pooled ``layer4``.
* ``vggish``: ``ffmpeg`` writes the audio as a 16 kHz mono wav, VGGish's ``waveform_to_examples``
  (25 ms periodic-Hann frames every 10 ms, 512-point FFT, 64 HTK-mel bands 125-7500 Hz,
  ``log(mel + 0.01)``, non-overlapping 96-frame examples: whole examples only), raw VGGish
  with the port's final ReLU, no PCA.

For a profile whose experts sample sparser than "every frame" (``demo``), the same loops keep
the frames nearest to each sample time (frames are still all decoded, as a per-frame loop does;
the real tool would re-encode the video with ffmpeg at the target rate, which costs more).

Both sides load the **same weights**: each architecture is initialised once with the seeded
init, saved, and given to the peer (``torch.load(weights_only=True)``) and to videxperts
(``weights:`` + ``sha256`` in a copy of the profile). videxperts runs as one
``videxperts extract`` process (a private Ray, start-up included). Repetitions interleave the
two sides (the order alternates), and each side's CPU time is that of its **whole process
tree**: this process becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every Ray
daemon and worker that outlives its parent is reaped here and its CPU time lands in
``RUSAGE_CHILDREN``. The balance calibration cache is warmed by an untimed run first.

Features: per expert, the max abs difference between the two sides over the rows both have,
and the row counts. With ``peer_matched`` the sampling is the same (every frame, whole stacks,
whole examples), so the difference comes only from pre-processing (resize filter and crop
offset for frames; the resampler for audio).

    .venv/bin/python bench/bench_peer.py --clips 20 --reps 3 --profiles peer_matched,demo
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.report import fmt, ratio, summarize  # noqa: E402

EXPERTS = {"r2p1d": "r21d", "audio": "vggish", "inst": "resnet"}  # ours -> the peer's extractor
KINETICS = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


# ----------------------------------------------------------------------------- process-tree CPU
def become_subreaper() -> None:
    """Orphaned descendants (Ray's daemons and workers) are re-parented to this process."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _orphans() -> list[int]:
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me:
                out.append(int(d))
    return out


def run_tree(cmd: list[str], env: dict[str, str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``cmd``; wall seconds and CPU seconds of it and every process it started."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - t0
    deadline = time.monotonic() + 60
    while True:  # reap what the command left behind (Ray's processes exit shortly after the driver)
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if time.monotonic() > deadline:
                for p in _orphans():
                    os.kill(p, 9)
                deadline = time.monotonic() + 10
            time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "cpu_s": _children_cpu() - c0, "stdout": out}


# ----------------------------------------------------------------------------- inputs and weights
def make_clips(root: Path, n: int, seed: int = 0) -> list[Path]:
    """n synthetic 320x240 25 fps clips with a tone, 2-6 s long (seeded)."""
    from tests.media import make_clip

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = root / f"c{i:03d}.mp4"
        if not p.exists():
            make_clip(p, seconds=round(float(rng.uniform(2.0, 6.0)), 2), size=(320, 240))
        out.append(p)
    return out


def save_weights(profile: dict[str, Any], experts: list[str], wdir: Path) -> dict[str, tuple[str, str]]:
    """Seeded-init each expert's network once and save it: {expert: (path, sha256)}."""
    from videxperts.extractors.registry import build_expert
    from videxperts.extractors.weights import file_sha256, save_checkpoint

    wdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for e in experts:
        cfg = dict(profile["experts"][e])
        path = wdir / f"{e}-{cfg.get('variant')}.pt"
        if not path.exists():
            ex = build_expert(e, {**cfg, "device": "cpu"})
            ex.load("cpu")
            save_checkpoint(ex.model, path)
        out[e] = (str(path), file_sha256(path))
    return out


def bench_profile(name: str, experts: list[str], weights: dict[str, tuple[str, str]], work: Path) -> Path:
    """A copy of profile ``name`` with the shared weights filled in (sha256 verified on load)."""
    import yaml

    from videxperts.extractors.registry import load_profile

    prof = load_profile(name)
    prof = {k: v for k, v in prof.items() if k != "source"}
    prof["experts"] = {e: {**prof["experts"][e], "weights": weights[e][0], "sha256": weights[e][1]} for e in experts}
    path = work / f"{name}-bench.yaml"
    path.write_text(yaml.safe_dump(prof, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- the peer's algorithm
def _frames_loop(path: str) -> tuple[list[np.ndarray], float]:
    """Every frame of the video, RGB, read one by one as the peer's loop does."""
    import cv2

    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, fps


def _keep(n: int, src_fps: float, fps: float | None) -> list[int]:
    """Indices of the frames nearest to ``k / fps`` (all frames when ``fps`` is None or >= the source's)."""
    if fps is None or fps >= src_fps - 1e-6:
        return list(range(n))
    times = np.arange(int(np.ceil(n / src_fps * fps - 1e-9))) / fps
    return sorted(set(np.clip(np.rint(times * src_fps).astype(int), 0, n - 1).tolist()))


def peer_r21d(videos: list[str], s: dict[str, Any], model: Any, out: Path) -> None:
    import torch
    import torch.nn.functional as F

    mean = torch.tensor(KINETICS[0]).view(3, 1, 1)
    std = torch.tensor(KINETICS[1]).view(3, 1, 1)
    h, w, crop, stack, step = s["resize_h"], s["resize_w"], s["crop"], s["stack"], s["step"]
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    for v in videos:
        frames, src_fps = _frames_loop(v)
        keep = _keep(len(frames), src_fps, s.get("fps"))
        tensors = []
        for i in keep:  # per-frame transform
            x = torch.from_numpy(frames[i]).permute(2, 0, 1).float() / 255.0
            x = F.interpolate(x[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            x = (x - mean) / std
            tensors.append(x[:, top:top + crop, left:left + crop])
        feats = []
        with torch.no_grad():
            for start in range(0, len(tensors) - stack + 1, step):
                clip = torch.stack(tensors[start:start + stack], dim=1)[None]  # [1, 3, T, H, W]
                feats.append(model(clip)[0].numpy())
        np.save(out / f"{Path(v).stem}.npy", np.stack(feats) if feats else np.zeros((0, 512), np.float32))


def peer_resnet(videos: list[str], s: dict[str, Any], model: Any, out: Path) -> None:
    import torch
    from PIL import Image

    mean = torch.tensor(IMAGENET[0]).view(3, 1, 1)
    std = torch.tensor(IMAGENET[1]).view(3, 1, 1)
    size, crop = s["size"], s["crop"]
    for v in videos:
        frames, src_fps = _frames_loop(v)
        feats = []
        with torch.no_grad():
            for i in _keep(len(frames), src_fps, s.get("fps")):
                img = Image.fromarray(frames[i])
                wd, ht = img.size
                sc = size / min(wd, ht)
                img = img.resize((round(wd * sc), round(ht * sc)), Image.BILINEAR)
                wd, ht = img.size
                left, top = int(round((wd - crop) / 2.0)), int(round((ht - crop) / 2.0))
                img = img.crop((left, top, left + crop, top + crop))
                x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
                feats.append(model(((x - mean) / std)[None])[0].numpy())
        np.save(out / f"{Path(v).stem}.npy", np.stack(feats) if feats else np.zeros((0, 512), np.float32))


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + f / 700.0)


def peer_log_mel_examples(data: np.ndarray, sr: int = 16000) -> np.ndarray:
    """VGGish's waveform_to_examples on a 16 kHz waveform: ``[N, 96, 64]`` (whole examples only)."""
    win, hop, nfft = 400, 160, 512
    if data.size < win:
        return np.zeros((0, 96, 64), np.float32)
    n = 1 + (data.size - win) // hop
    frames = np.lib.stride_tricks.as_strided(data, (n, win), (data.strides[0] * hop, data.strides[0]))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    spec = np.abs(np.fft.rfft(frames * window, nfft))
    bins = _hz_to_mel(np.linspace(0.0, sr / 2.0, nfft // 2 + 1))
    edges = np.linspace(_hz_to_mel(np.array(125.0)), _hz_to_mel(np.array(7500.0)), 66)
    mel = np.empty((nfft // 2 + 1, 64))
    for i in range(64):
        lo, c, hi = edges[i:i + 3]
        mel[:, i] = np.maximum(0.0, np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)))
    mel[0, :] = 0.0
    logmel = np.log(spec @ mel + 0.01)
    k = logmel.shape[0] // 96
    return logmel[: k * 96].reshape(k, 96, 64).astype(np.float32)


def peer_vggish(videos: list[str], s: dict[str, Any], model: Any, out: Path) -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        for v in videos:
            wav = Path(tmp) / f"{Path(v).stem}.wav"
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", v, "-vn", "-ac", "1", "-ar", "16000",
                            "-acodec", "pcm_s16le", str(wav)], check=True)
            with wave.open(str(wav)) as f:
                pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
            ex = peer_log_mel_examples(pcm.astype(np.float64) / 32768.0)
            with torch.no_grad():
                feats = model(torch.from_numpy(ex)[:, None]).numpy() if len(ex) else np.zeros((0, 128), np.float32)
            np.save(out / f"{Path(v).stem}.npy", feats)


def peer_model(extractor: str, weights: str, s: dict[str, Any]) -> Any:
    import torch
    from torch import nn

    state = torch.load(weights, map_location="cpu", weights_only=True)
    if extractor == "r21d":
        from torchvision.models.video import r2plus1d_18

        m = r2plus1d_18(weights=None, num_classes=400)
        m.load_state_dict(state)
        m.fc = nn.Identity()
    elif extractor == "resnet":
        from torchvision.models import resnet18

        m = resnet18(weights=None)
        m.load_state_dict(state)
        m.fc = nn.Identity()
    else:
        from videxperts.extractors.experts.audio import VGGish  # the architecture (same as the port's)

        m = VGGish(1.0, final_relu=s.get("final_relu", True))
        m.load_state_dict(state)
    return m.eval()


def peer_worker(args: argparse.Namespace) -> None:
    """One extractor's process (``--peer-worker``): model, then every video decoded again."""
    s = json.loads(args.settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = peer_model(args.peer_worker, args.weights, s)
    videos = Path(args.videos).read_text().split("\n")
    {"r21d": peer_r21d, "resnet": peer_resnet, "vggish": peer_vggish}[args.peer_worker](videos, s, model, out)


def peer_settings(profile: dict[str, Any], e: str) -> dict[str, Any]:
    """The peer's options for our expert ``e`` as configured in ``profile`` (every frame when fps >= source)."""
    c = profile["experts"][e]
    if e == "r2p1d":
        size, crop = int(c.get("size", 128)), int(c.get("crop") or c.get("size", 128))
        return {"fps": float(c["fps"]), "resize_h": size, "resize_w": round(size * 320 / 240), "crop": crop,
                "stack": int(c["clip_len"]), "step": int(c.get("clip_stride") or c["clip_len"])}
    if e == "inst":
        size = int(c.get("size", 224))
        return {"fps": float(c["fps"]), "size": size, "crop": int(c.get("crop") or size)}
    return {"final_relu": bool(c.get("final_relu", False))}


# ----------------------------------------------------------------------------- one repetition
def env_for(cache: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "VIDEXPERTS_CACHE": str(cache),
           "RAY_DEDUP_LOGS": "1"}
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAY_ADDRESS"):
        env.pop(k, None)  # each side picks its own threads: the peer uses torch's default (all cores)
    return env


def run_peer(videos: list[Path], profile: dict[str, Any], experts: list[str], weights: dict, out: Path,
             env: dict[str, str]) -> dict[str, Any]:
    lst = out / "videos.txt"
    out.mkdir(parents=True, exist_ok=True)
    lst.write_text("\n".join(str(v) for v in videos))
    wall = cpu = 0.0
    for e in experts:  # three runs, as its users do
        cmd = [sys.executable, str(Path(__file__).resolve()), "--peer-worker", EXPERTS[e], "--videos", str(lst),
               "--weights", weights[e][0], "--settings", json.dumps(peer_settings(profile, e)),
               "--out", str(out / e)]
        r = run_tree(cmd, env)
        wall += r["wall_s"]
        cpu += r["cpu_s"]
    return {"wall_s": wall, "cpu_s": cpu}


def run_ours(clips: Path, profile_path: Path, experts: list[str], store: Path, env: dict[str, str],
             extra: list[str]) -> dict[str, Any]:
    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-m", "videxperts.pipelines.cli", "extract", str(clips), "--out", str(store),
           "--profile", str(profile_path), "--experts", ",".join(experts), "--no-tracking", "--no-captions",
           "--json", *extra]
    for attempt in range(3):  # a loaded machine can time Ray's node start out (30 s in Ray): again
        try:
            r = run_tree(cmd, env)
            break
        except RuntimeError as exc:
            if "timed out during startup" not in str(exc) or attempt == 2:
                raise
            print("Ray's node start timed out; starting the job again", file=sys.stderr, flush=True)
            shutil.rmtree(store, ignore_errors=True)
    summary = json.loads(r["stdout"].strip().splitlines()[-1])
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "summary": summary}


def compare(store: Path, peer_out: Path, videos: list[Path], experts: list[str]) -> dict[str, Any]:
    from videxperts.storage.reader import StoreReader

    reader = StoreReader(str(store))
    ids = [v.stem for v in videos]
    out = {}
    for e in experts:
        feats, mask = reader.load_expert(e, ids, mode="seq")
        diffs, ours_rows, peer_rows = [], 0, 0
        for i, vid in enumerate(ids):
            mine = feats[i][mask[i].astype(bool)]
            theirs = np.load(peer_out / e / f"{vid}.npy")
            ours_rows += len(mine)
            peer_rows += len(theirs)
            n = min(len(mine), len(theirs))
            if n:
                diffs.append(float(np.abs(mine[:n] - theirs[:n]).max()))
        out[e] = {"max_abs_diff": max(diffs) if diffs else None, "rows_ours": ours_rows, "rows_peer": peer_rows,
                  "feature_scale": float(np.abs(feats[mask.astype(bool)]).max()) if mask.any() else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--profiles", default="peer_matched,demo")
    ap.add_argument("--experts", default="r2p1d,audio,inst")
    ap.add_argument("--work", default=None, help="working dir (default: a temporary one, removed)")
    ap.add_argument("--ours-args", default="", help="extra arguments for videxperts extract (e.g. --no-balance)")
    ap.add_argument("--json", action="store_true")
    # internal: one peer extractor process
    ap.add_argument("--peer-worker", choices=["r21d", "resnet", "vggish"], help=argparse.SUPPRESS)
    ap.add_argument("--videos", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    ap.add_argument("--settings", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_worker:
        peer_worker(args)
        return
    from videxperts.extractors.registry import load_profile

    become_subreaper()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-peer-"))
    experts = args.experts.split(",")
    clips = work / "clips"
    videos = make_clips(clips, args.clips)
    video_s = sum(float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                                        "csv=p=0", str(v)], capture_output=True, text=True).stdout) for v in videos)
    cache = work / "cache"
    env = env_for(cache)
    extra = args.ours_args.split()
    profiles = {}
    for name in args.profiles.split(","):
        prof = load_profile(name)
        weights = save_weights(prof, experts, work / "weights" / name)
        profiles[name] = (prof, weights, bench_profile(name, experts, weights, work))
    load = os.getloadavg()
    for _prof, _w, ppath in profiles.values():  # untimed: warms the calibration cache and the page cache
        run_ours(clips, ppath, experts, work / "warm.zarr", env, extra)
    rows: dict[str, dict[str, list[float]]] = {n: {k: [] for k in ("pw", "pc", "ow", "oc")} for n in profiles}
    last: dict[str, Any] = {}
    for rep in range(args.reps):
        for name, (prof, weights, ppath) in profiles.items():
            order = ["peer", "ours"] if rep % 2 == 0 else ["ours", "peer"]
            for side in order:
                if side == "peer":
                    p = run_peer(videos, prof, experts, weights, work / f"peer-{name}", env)
                    rows[name]["pw"].append(p["wall_s"])
                    rows[name]["pc"].append(p["cpu_s"])
                else:
                    o = run_ours(clips, ppath, experts, work / f"store-{name}.zarr", env, extra)
                    rows[name]["ow"].append(o["wall_s"])
                    rows[name]["oc"].append(o["cpu_s"])
                    last[name] = o["summary"]
            (work / "partial.json").write_text(json.dumps({"rows": rows, "load": os.getloadavg()}))
            print(f"rep {rep + 1}/{args.reps} {name}: peer {rows[name]['pw'][-1]:.1f} s, "
                  f"videxperts {rows[name]['ow'][-1]:.1f} s; CPU {rows[name]['pc'][-1]:.1f} vs {rows[name]['oc'][-1]:.1f} "
                  f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    result: dict[str, Any] = {"clips": args.clips, "video_s": round(video_s, 2), "reps": args.reps,
                              "load_before": [round(x, 2) for x in load],
                              "load_after": [round(x, 2) for x in os.getloadavg()], "profiles": {}}
    for name, r in rows.items():
        summ = last[name]
        result["profiles"][name] = {
            "peer_wall_s": summarize(r["pw"]), "peer_cpu_s": summarize(r["pc"]),
            "ours_wall_s": summarize(r["ow"]), "ours_cpu_s": summarize(r["oc"]),
            "wall_ratio": ratio(r["pw"], r["ow"]), "cpu_ratio": ratio(r["pc"], r["oc"]),
            "features": compare(work / f"store-{name}.zarr", work / f"peer-{name}", videos, experts),
            "ours_startup_s": summ.get("startup_s"), "ours_processing_s": summ.get("processing_s"),
            "ours_cpu_breakdown": summ.get("cpu_s"), "ours_balance": summ.get("balance"),
        }
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    print_table(result)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def print_table(res: dict[str, Any]) -> None:
    print(f"\n{res['clips']} clips, {res['video_s']:.1f} video-s, {res['reps']} interleaved reps; "
          f"load before {res['load_before']}, after {res['load_after']}")
    print("| profile | peer wall s | videxperts wall s | peer/videxperts wall | peer CPU s | videxperts CPU s | "
          "peer/videxperts CPU |")
    print("|---|---|---|---|---|---|---|")
    for name, p in res["profiles"].items():
        print(f"| {name} | {fmt(p['peer_wall_s'], '.1f')} | {fmt(p['ours_wall_s'], '.1f')} | "
              f"**{fmt(p['wall_ratio'])}** | {fmt(p['peer_cpu_s'], '.1f')} | {fmt(p['ours_cpu_s'], '.1f')} | "
              f"{fmt(p['cpu_ratio'])} |")
    for name, p in res["profiles"].items():
        feats = ", ".join(f"{e}: max abs diff {f['max_abs_diff']:.3g} (rows {f['rows_ours']} vs {f['rows_peer']}, "
                          f"max |x| {f['feature_scale']:.3g})" for e, f in p["features"].items()
                          if f["max_abs_diff"] is not None)
        print(f"\n{name}: start-up {p['ours_startup_s']} s, processing {p['ours_processing_s']} s; {feats}")
        cpu = p.get("ours_cpu_breakdown") or {}
        if cpu.get("share"):
            print("  videxperts CPU shares: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in cpu["share"].items()))
        bal = p.get("ours_balance") or {}
        for s, a in (bal.get("stages") or {}).items():
            print(f"  {s}: replicas {a['replicas']} x threads {a['threads']}, batch {a['batch_size']}, "
                  f"cost {a['cost_per_video_s']} CPU-s/video-s ({a['cost_source']})")


if __name__ == "__main__":
    main()
