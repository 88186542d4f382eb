"""Accuracy and CPU cost of the offline engine experts (OCR, face, speech) on the synthetic dataset.

The synthetic clips carry ground truth (manifest ``word``, ``spoken``, ``has_face``,
``face_box``), so each engine can be scored on what it must find:

* OCR word accuracy: clips whose printed word is among the recognised words (+ extra words);
* ASR word recall/precision: spoken words found / recognised words that were spoken, and word
  error rate (edit distance of the recognised word sequence to the spoken one / spoken words,
  both normalised alike: lower case, numbers spelled out, "ok" → "okay");
* face detection recall: face clips with a detection overlapping the true box (IoU >= 0.3),
  and false positives: no-face clips with any detection.

Engines are compared in one run (same clips, same process): ``--asr faster-whisper,pocketsphinx``
and ``--face mtcnn,haar``; the table's ``x`` columns are each setting's CPU cost over the first
setting's of that expert.

Cost is the expert's ``extract()`` CPU time (all threads of this process and its child
processes) per second of video, with single-threaded engines and torch; decoding is excluded
(one PyAV decode per clip is shared by all settings). CPU time rather than wall time because
the measuring machine is shared; on an idle core the two agree.

    .venv/bin/python bench/bench_engine_accuracy.py --data /tmp/h5synth [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videxperts.extractors.base import MediaView  # noqa: E402


@dataclass
class Clip:
    row: dict
    frames: np.ndarray  # all source frames, uint8 RGB
    times: np.ndarray
    audio: np.ndarray | None  # 16 kHz mono float32


def decode(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every frame (RGB) with its time, and the audio as 16 kHz mono float32, with PyAV."""
    import av

    frames, times, audio = [], [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
    with av.open(str(path)) as c:
        if c.streams.audio:
            rs = av.AudioResampler(format="flt", layout="mono", rate=16000)
            for f in c.decode(audio=0):
                for g in rs.resample(f):
                    audio.append(g.to_ndarray().reshape(-1))
            for g in rs.resample(None):
                audio.append(g.to_ndarray().reshape(-1))
    a = np.concatenate(audio).astype(np.float32) if audio else None
    return np.stack(frames), np.asarray(times), a


def sample(clip: Clip, fps: float) -> MediaView:
    """The expert's view: frames nearest to k / fps (as the decoder plans them), native size."""
    dur = float(clip.row["duration"])
    want = np.arange(max(1, int(np.ceil(dur * fps - 1e-9)))) / fps
    idx = np.abs(clip.times[None, :] - want[:, None]).argmin(axis=1)
    return MediaView(clip.row["video_id"], dur, frames=clip.frames[idx], frame_times=want)


def audio_view(clip: Clip) -> MediaView:
    return MediaView(clip.row["video_id"], float(clip.row["duration"]), audio=clip.audio,
                     sample_rate=None if clip.audio is None else 16000)


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


def timed(expert, views):
    """Outputs and the CPU seconds this process spent (wall time is meaningless on a shared box)."""
    t0 = _cpu()
    outs = expert.extract(views)
    return outs, _cpu() - t0


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the tesseract CLI runs as one)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def bench_ocr(clips, fps: float, min_conf: float, engine: str) -> dict:
    from videxperts.extractors.experts.ocr import OCRExpert

    e = OCRExpert(fps=fps, min_confidence=min_conf, engine=engine, threads=1)
    e.load()
    hit = extra = 0
    secs = 0.0
    for c in clips:
        (out,), dt = timed(e, [sample(c, fps)])
        secs += dt
        words = out.extra["words"]
        hit += c.row["word"] in words
        extra += sum(w != c.row["word"] for w in words)
    n, dur = len(clips), sum(float(c.row["duration"]) for c in clips)
    return {"expert": "ocr", "setting": f"{engine} fps={fps} min_conf={min_conf}",
            "word_accuracy": hit / n, "extra_words_per_clip": extra / n, "clips": n,
            "cpu_ms_per_video_s": 1000 * secs / dur}


def bench_face(clips, fps: float, scale: float, neighbors: int, crop: int, detector: str = "haar") -> dict:
    import torch

    from videxperts.extractors.experts.face import FaceExpert

    torch.set_num_threads(1)
    e = FaceExpert(fps=fps, scale_factor=scale, min_neighbors=neighbors, crop_size=crop, device="cpu",
                   detector=detector, threads=1)
    e.load()
    tp = fp = n_face = n_none = 0
    frames_hit = frames_face = 0
    secs = 0.0
    for c in clips:
        v = sample(c, fps)
        (out,), dt = timed(e, [v])
        secs += dt
        boxes = [b[1:5] for b in out.extra["boxes"]]
        if c.row["has_face"]:
            n_face += 1
            truth = tuple(c.row["face_box"])
            good = [b for b in out.extra["boxes"] if iou(b[1:5], truth) >= 0.3]
            tp += bool(good)
            frames_face += len(v.frames)
            frames_hit += len({b[0] for b in good})
        else:
            n_none += 1
            fp += bool(boxes)
    dur = sum(float(c.row["duration"]) for c in clips)
    label = f"haar scale={scale} neighbors={neighbors}" if detector == "haar" else detector
    return {"expert": "face", "setting": f"{label} fps={fps} crop={crop}",
            "video_recall": tp / max(1, n_face), "frame_recall": frames_hit / max(1, frames_face),
            "false_positive_clips": fp / max(1, n_none), "face_clips": n_face, "no_face_clips": n_none,
            "cpu_ms_per_video_s": 1000 * secs / dur}


def norm_words(text: str) -> list[str]:
    """The words both engines are scored on: lower case, numbers spelled out, ok → okay, mr → mister."""
    from videxperts.extractors.experts._whisper_ct2 import words_of

    return [_SAME.get(w, w) for w in words_of(text)]


_SAME = {"ok": "okay", "mr": "mister", "mrs": "missus"}


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def bench_speech(clips, options: dict, label: str, engine: str = "pocketsphinx") -> dict:
    from videxperts.extractors.experts.speech import SpeechExpert

    e = SpeechExpert(engine=engine, engine_options=options, threads=1)
    e.load()
    found = total = correct = recognised = errors = 0
    secs = 0.0
    audio_clips = [c for c in clips if c.audio is not None and c.row["spoken"]]
    for c in audio_clips:
        (out,), dt = timed(e, [audio_view(c)])
        secs += dt
        truth = norm_words(str(c.row["spoken"]))
        words = norm_words(" ".join(out.extra["words"]))
        found += sum(t in words for t in truth)
        total += len(truth)
        correct += sum(w in truth for w in words)
        recognised += len(words)
        errors += edit_distance(truth, words)
    dur = sum(float(c.row["duration"]) for c in audio_clips)
    return {"expert": "speech", "setting": label, "word_recall": found / max(1, total),
            "word_precision": correct / max(1, recognised), "wer": errors / max(1, total),
            "clips": len(audio_clips),
            "cpu_ms_per_video_s": 1000 * secs / max(dur, 1e-9)}


def fmt(r: dict) -> str:
    keys = [k for k in r if k not in ("expert", "setting")]
    vals = ", ".join(f"{k}={r[k]:.3f}" if isinstance(r[k], float) else f"{k}={r[k]}" for k in keys)
    return f"| {r['expert']} | {r['setting']} | {vals} |"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="synthetic dataset dir (videxperts data synth --out DIR)")
    p.add_argument("--max-videos", type=int, default=None)
    p.add_argument("--experts", default="ocr,face,speech")
    p.add_argument("--ocr", default="rapidocr:1.0:0.5", help="engine:fps:min_conf,... settings to compare")
    p.add_argument("--face", default="mtcnn:2.0:224,haar:1.1:7:2.0:224",
                   help="face settings to compare: mtcnn:fps:crop | haar:scale:neighbors:fps:crop "
                        "(or the older scale:neighbors:fps:crop for haar)")
    p.add_argument("--asr", default="faster-whisper,pocketsphinx",
                   help="ASR settings, comma separated: faster-whisper[+beam_size=<n>] | pocketsphinx "
                        "(or default) | vocab (pocketsphinx, closed set: the manifest's spoken phrases) | "
                        "lw=<x>+beam=<x> (pocketsphinx)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import pyarrow.parquet as pq

    data = Path(args.data)
    rows = pq.read_table(data / "manifest.parquet").to_pylist()[: args.max_videos]
    t0 = time.perf_counter()
    clips = []
    for r in rows:
        frames, times, audio = decode(data / r["path"])
        clips.append(Clip(r, frames, times, audio))
    decode_s = time.perf_counter() - t0
    experts = args.experts.split(",")
    results: list[dict] = []

    def done(r: dict) -> None:  # progress on stderr: one table row as each setting finishes
        results.append(r)
        print(fmt(r), file=sys.stderr, flush=True)

    for expert in experts:
        if expert == "ocr":
            for s in args.ocr.split(","):
                engine, fps, conf = s.split(":")
                done(bench_ocr(clips, float(fps), float(conf), engine))
        elif expert == "face":
            for s in args.face.split(","):
                parts = s.split(":")
                if parts[0] == "mtcnn":
                    done(bench_face(clips, float(parts[1]), 1.1, 7, int(parts[2]), detector="mtcnn"))
                else:
                    scale, nb, fps, crop = parts[1:] if parts[0] == "haar" else parts
                    done(bench_face(clips, float(fps), float(scale), int(nb), int(crop)))
        elif expert == "speech":
            run_speech(clips, args.asr, done)
    add_ratios(results)
    doc = {"data": str(data), "videos": len(clips), "video_seconds": sum(float(c.row["duration"]) for c in clips),
           "decode_s": decode_s, "results": results, "command": " ".join(sys.argv)}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{doc['videos']} clips, {doc['video_seconds']:.1f} s of video (decode {decode_s:.1f} s, excluded)")
        print("| expert | setting | measured |\n|---|---|---|")
        for r in results:
            print(fmt(r))
    return 0


def add_ratios(results: list[dict]) -> None:
    """``cpu_x``: each setting's CPU cost over the first measured setting of the same expert."""
    first: dict[str, float] = {}
    for r in results:
        base = first.setdefault(r["expert"], r["cpu_ms_per_video_s"])
        r["cpu_x"] = r["cpu_ms_per_video_s"] / base if base else float("nan")


def run_speech(clips: list[Clip], settings: str, done) -> None:
    """Each ASR setting: faster-whisper[+opt=v] | pocketsphinx | default | vocab | lw=<x>+beam=<x>."""
    for s in settings.split(","):
        if s.startswith("faster-whisper"):
            opts: dict = {k: int(v) for k, v in (kv.split("=") for kv in s.split("+")[1:])}
            done(bench_speech(clips, opts, s, engine="faster-whisper"))
            continue
        if s in ("default", "pocketsphinx"):
            opts = {}
        elif s == "vocab":
            opts = {"vocabulary": sorted({str(c.row["spoken"]) for c in clips if c.row["spoken"]})}
        else:
            opts = {k: float(v) for k, v in (kv.split("=") for kv in s.split("+"))}
        done(bench_speech(clips, opts, f"pocketsphinx {s}"))


if __name__ == "__main__":
    raise SystemExit(main())
