"""Rendering one synthetic clip to real media: frames, espeak-ng speech, audio, and the ffmpeg encode.

Runs in worker processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from videxperts.errors import UserError
from videxperts.pipelines.synth.vocab import COLORS, FACE_CROP, FPS, HEIGHT, SAMPLE_RATE, WIDTH

if TYPE_CHECKING:
    from videxperts.pipelines.synth.plan import ClipSpec, ShapeSpec

_FONT_SCALE, _FONT_THICK, _PAD = 1.6, 3, 10


def text_extent(word: str) -> tuple[int, int]:
    """Width and height of the dark box holding ``word``."""
    import cv2

    (tw, th), base = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, _FONT_THICK)
    return tw + 2 * _PAD, th + base + 2 * _PAD


@lru_cache(maxsize=1)
def _face_crop() -> np.ndarray:
    from skimage import data

    x0, y0, x1, y1 = FACE_CROP
    return np.ascontiguousarray(data.astronaut()[y0:y1, x0:x1])


def render_background(scene: str, seed: int) -> np.ndarray:
    """A static textured RGB background for ``scene`` (uint8 [H, W, 3])."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = HEIGHT, WIDTH
    yy = np.linspace(0.0, 1.0, h)[:, None, None]
    if scene == "green field":
        img = np.empty((h, w, 3), np.float32)
        img[:] = (60, 140, 50)
        for _ in range(220):  # grass blades
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            shade = float(rng.uniform(-40, 40))
            cv2.line(img, (x, y), (x + int(rng.integers(-3, 4)), y - int(rng.integers(6, 16))), (60 + shade, 140 + shade, 50 + shade / 2), 1)
        img += rng.normal(0, 6, (h, w, 1))
    elif scene == "blue sky":
        top, bottom = np.array([70, 130, 220]), np.array([175, 215, 250])
        img = (top * (1 - yy) + bottom * yy).repeat(w, axis=1).astype(np.float32)
        for _ in range(int(rng.integers(2, 5))):
            c = (int(rng.integers(20, w - 20)), int(rng.integers(15, h // 2)))
            cv2.ellipse(img, c, (int(rng.integers(20, 45)), int(rng.integers(8, 16))), 0, 0, 360, (245, 245, 250), -1)
    elif scene == "grey brick wall":
        img = np.full((h, w, 3), 70, np.float32)  # mortar
        bh, bw = 20, 44
        for r in range(h // bh + 1):
            off = (bw // 2) * (r % 2)
            for c in range(-1, w // bw + 2):
                g = float(rng.uniform(110, 160))
                x0, y0 = c * bw - off + 2, r * bh + 2
                cv2.rectangle(img, (x0, y0), (x0 + bw - 4, y0 + bh - 4), (g, g, g), -1)
        img += rng.normal(0, 5, (h, w, 1))
    elif scene == "sandy desert":
        img = np.empty((h, w, 3), np.float32)
        img[:] = (215, 185, 125)
        xs = np.arange(w)
        for k in range(5):
            phase, amp = rng.uniform(0, 6.28), rng.uniform(5, 12)
            ys = (40 + k * 45 + amp * np.sin(xs / 40.0 + phase)).astype(np.int32)
            pts = np.stack([xs, ys], 1).reshape(-1, 1, 2)
            cv2.polylines(img, [pts], False, (180, 150, 95), 2)
        img += rng.normal(0, 4, (h, w, 1))
    elif scene == "night sky":
        img = np.empty((h, w, 3), np.float32)
        img[:] = (12, 16, 45)
        for _ in range(120):
            b = float(rng.uniform(150, 255))
            img[int(rng.integers(0, h)), int(rng.integers(0, w))] = (b, b, b)
    elif scene == "snowy ground":
        img = np.empty((h, w, 3), np.float32)
        img[:] = (232, 238, 245)
        img += rng.normal(0, 7, (h, w, 1))
    elif scene == "wooden floor":
        img = np.empty((h, w, 3), np.float32)
        img[:] = (135, 85, 45)
        for r in range(0, h, 30):
            img[r : r + 30] += float(rng.uniform(-18, 18))
            cv2.line(img, (0, r), (w, r), (70, 40, 20), 2)
            for _ in range(6):  # grain
                y = r + int(rng.integers(4, 27))
                cv2.line(img, (0, y), (w, y + int(rng.integers(-3, 4))), (115, 70, 35), 1)
    elif scene == "ocean waves":
        img = np.empty((h, w, 3), np.float32)
        img[:] = (20, 80, 160)
        xs = np.arange(w)
        for k in range(8):
            phase = rng.uniform(0, 6.28)
            ys = (15 + k * 30 + 6 * np.sin(xs / 18.0 + phase)).astype(np.int32)
            cv2.polylines(img, [np.stack([xs, ys], 1).reshape(-1, 1, 2)], False, (90, 160, 225), 3)
    else:
        raise ValueError(f"unknown scene {scene!r}")
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_shape(img: np.ndarray, s: ShapeSpec, t: float) -> None:
    import cv2

    cx = s.start[0] + (s.end[0] - s.start[0]) * t
    cy = s.start[1] + (s.end[1] - s.start[1]) * t
    color = COLORS[s.color]
    r = s.size
    outline = (0, 0, 0) if s.color != "black" else (255, 255, 255)
    if s.shape == "circle":
        cv2.circle(img, (round(cx), round(cy)), r, color, -1, cv2.LINE_AA)
        cv2.circle(img, (round(cx), round(cy)), r, outline, 1, cv2.LINE_AA)
        return
    if s.shape == "square":
        pts = np.array([[-r, -r], [r, -r], [r, r], [-r, r]], np.float64)
    elif s.shape == "triangle":
        pts = np.array([[0, -r], [r * 0.95, r * 0.75], [-r * 0.95, r * 0.75]], np.float64)
    elif s.shape == "star":
        ang = np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r * 1.15, r * 0.48)
        pts = np.stack([rad * np.cos(ang), -rad * np.sin(ang)], 1)
    else:
        raise ValueError(f"unknown shape {s.shape!r}")
    poly = np.round(pts + (cx, cy)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(img, [poly], color, cv2.LINE_AA)
    cv2.polylines(img, [poly], True, outline, 1, cv2.LINE_AA)


def render_frames(spec: ClipSpec) -> Iterator[np.ndarray]:
    """The clip's RGB frames (uint8 [H, W, 3]) in order."""
    import cv2

    bg = render_background(spec.scene, spec.scene_seed)
    face = None
    if spec.has_face and spec.face_box is not None:
        x, y, w, h = spec.face_box
        face = cv2.resize(_face_crop(), (w, h), interpolation=cv2.INTER_AREA)
    text = _text_patch(spec.word)
    bx, by = spec.word_box
    th, tw = text.shape[:2]
    for i in range(spec.num_frames):
        img = bg.copy()
        t = i / max(1, spec.num_frames - 1)
        for s in spec.shapes:
            _draw_shape(img, s, t)
        if face is not None and spec.face_box is not None:
            x, y, w, h = spec.face_box
            img[y : y + h, x : x + w] = face
        if spec.word_frames[0] <= i < spec.word_frames[1]:
            img[by : by + th, bx : bx + tw] = text
        yield img


def _text_patch(word: str) -> np.ndarray:
    """White ``word`` on an opaque dark box, rendered once per clip (the box hides what is under it)."""
    import cv2

    tw, th = text_extent(word)
    patch = np.full((th, tw, 3), 20, np.uint8)
    (_, text_h), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, _FONT_THICK)
    org = (_PAD, _PAD + text_h)
    cv2.putText(patch, word, org, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, (255, 255, 255), _FONT_THICK, cv2.LINE_AA)
    return patch


@lru_cache(maxsize=64)
def speak(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng as float32 mono at :data:`SAMPLE_RATE` (cached per process)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UserError("espeak-ng not found: install the Debian package espeak-ng ('make install' does)")
    with tempfile.TemporaryDirectory(prefix="vx-speak-") as tmp:
        wav = os.path.join(tmp, "speech.wav")
        subprocess.run([exe, "-v", "en-us", "-s", "140", "-w", wav, text], check=True, capture_output=True, timeout=60)
        with wave.open(wav, "rb") as f:
            if f.getframerate() != SAMPLE_RATE or f.getnchannels() != 1 or f.getsampwidth() != 2:
                raise RuntimeError(f"espeak-ng wrote unexpected audio ({f.getframerate()} Hz, {f.getnchannels()} ch)")
            pcm = np.frombuffer(f.readframes(f.getnframes()), np.int16)
    x = pcm.astype(np.float32) / 32768.0
    nz = np.flatnonzero(np.abs(x) > 0.01)  # trim espeak's leading/trailing silence
    if nz.size:
        x = x[nz[0] : nz[-1] + 1]
    peak = float(np.abs(x).max()) if x.size else 0.0
    return (x * (0.7 / peak) if peak > 0 else x).astype(np.float32)


def sound_bed(sound: str | None, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One background sound sampled at times ``t`` (seconds from the sound's start), float32."""
    n = t.size
    if sound == "a low hum":
        bed = 0.16 * np.sin(2 * np.pi * 110 * t) + 0.06 * np.sin(2 * np.pi * 220 * t)
    elif sound == "a high beep":
        bed = 0.15 * np.sin(2 * np.pi * 1760 * t) * ((t % 0.5) < 0.25)
    elif sound == "white noise":
        bed = rng.normal(0, 0.07, n)
    elif sound == "a rising chirp":
        f0, f1, dur = 200.0, 2000.0, max(t[-1], 1e-3) if n else 1e-3
        bed = 0.15 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur)))
    else:  # silence
        bed = np.zeros(n)
    return bed.astype(np.float32)


def render_audio(spec: ClipSpec) -> np.ndarray:
    """The clip's soundtrack: background sound + the spoken word, float32 mono in [-1, 1]."""
    n = spec.num_frames * SAMPLE_RATE // FPS
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng([spec.seed, spec.index, 2])
    audio = sound_bed(spec.sound, t, rng)
    if spec.spoken:
        voice = speak(spec.spoken)
        start = int((spec.spoken_start or 0.0) * SAMPLE_RATE)
        end = min(n, start + voice.size)
        audio[start:end] += voice[: end - start]
    return np.clip(audio, -1.0, 1.0)


def encode_clip(spec: ClipSpec, dest: Path, frames: Iterator[np.ndarray] | None = None,
                audio: np.ndarray | None = None) -> None:  # fmt: skip
    """Write ``spec`` as H.264 (yuv420p, BT.601) + AAC mono mp4 at ``dest`` with the ffmpeg CLI.

    Why ffmpeg and not PyAV: PyAV 18's bundled x264 produced different bytes for the same input
    frames from run to run (checked), while Debian's ffmpeg with ``-threads 1`` and the
    bitexact flags is reproducible; the reproducibility test guards this.
    """
    import cv2

    exe = ffmpeg_exe()
    frames = render_frames(spec) if frames is None else frames
    raw = b"".join(cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420).tobytes() for img in frames)
    cmd = [exe, "-nostats", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "pipe:0"]  # fmt: skip
    audio_file = dest.with_name(dest.name + ".f32")
    try:
        if spec.has_audio:
            (render_audio(spec) if audio is None else audio).astype("<f4").tofile(audio_file)
            cmd += ["-f", "f32le", "-ar", str(SAMPLE_RATE), "-ac", "1", "-i", str(audio_file),
                    "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "64k", "-flags:a", "+bitexact"]  # fmt: skip
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", str(2 * FPS), "-threads", "1",
                "-pix_fmt", "yuv420p", "-colorspace", "bt470bg", "-color_primaries", "bt470bg",
                "-color_trc", "smpte170m", "-color_range", "tv", "-flags:v", "+bitexact",
                "-fflags", "+bitexact", "-map_metadata", "-1", "-movflags", "+faststart", "-f", "mp4", str(dest)]  # fmt: skip
        proc = subprocess.run(cmd, input=raw, capture_output=True, timeout=300)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"ffmpeg failed on {spec.video_id}: {msg[-1] if msg else proc.returncode}")
    finally:
        audio_file.unlink(missing_ok=True)


def ffmpeg_exe() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise UserError("ffmpeg not found: install the Debian package ffmpeg ('make install' does)")
    return exe
