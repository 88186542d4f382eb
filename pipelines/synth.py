"""Deterministic synthetic video-text dataset made of real media (``videxperts data synth``).

Every clip is a real H.264 + AAC ``.mp4`` whose content is controlled, so each expert has a
ground truth to find: a background scene (scene/instance experts), one or two moving coloured
shapes (motion experts), a printed word (OCR), a spoken word made with espeak-ng (speech), a
background tone or noise (audio) and, in some clips, a real face photo (face). The captions
describe exactly those attributes, so retrieval on this data is learnable.

Determinism: the dataset plan (splits, which clips get a face, which have no audio track) is
drawn from ``seed`` with exact proportions so even a 6-clip dataset has every case; the content
of clip ``i`` is drawn from an RNG seeded with ``(seed, i)`` alone, so it does not depend on the
number of workers. Clips are encoded by Debian's ffmpeg with single-threaded x264 and bitexact
flags, so the same seed gives byte-identical videos, manifest and captions (checked in tests).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.errors import UserError

GENERATOR_VERSION = "3"
WIDTH, HEIGHT, FPS = 320, 240, 25
SAMPLE_RATE = 22_050  # espeak-ng's native rate: no resampling, AAC supports it
SPEC_DIR = ".synth"  # per-clip spec sidecars that make generation resumable
VIDEO_DIR = "videos"
SPLIT_FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
FACE_FRACTION = 0.40
NO_AUDIO_FRACTION = 0.10

# ---------------------------------------------------------------------------------------------
# Vocabulary: every generating attribute and the words captions use for it.
# ---------------------------------------------------------------------------------------------
COLORS: dict[str, tuple[int, int, int]] = {  # RGB
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "yellow": (245, 220, 30),
    "orange": (250, 140, 20),
    "purple": (140, 40, 180),
    "pink": (250, 120, 190),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
# scene -> colours too close to its background to be seen on it
SCENES: dict[str, tuple[str, ...]] = {
    "green field": (),
    "blue sky": ("blue", "white"),
    "grey brick wall": (),
    "sandy desert": ("yellow", "orange"),
    "night sky": ("black", "blue", "purple"),
    "snowy ground": ("white",),
    "wooden floor": ("orange",),
    "ocean waves": ("blue",),
}
SHAPES = ("circle", "square", "triangle", "star")
DIRECTIONS = ("left", "right", "up", "down")
# Printed words (OCR targets): common, distinct from every colour/shape/scene/direction word.
WORDS = (
    "river", "apple", "house", "music", "water", "light", "money", "happy", "table", "train",
    "sugar", "pizza", "robot", "tiger", "horse", "lemon", "cloud", "piano", "dream", "bread",
    "chair", "plant", "smile", "zebra", "mouse", "radio", "magic", "candy", "storm", "honey",
)  # fmt: skip
# Spoken words (speech targets): short, frequent words a small ASR model has a chance with.
SPOKEN = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "zero", "hello", "yes", "no", "stop", "go", "okay", "please", "thank you", "good morning",
)  # fmt: skip
SOUNDS = ("a low hum", "a high beep", "white noise", "a rising chirp", "silence")
# A keyword every caption phrase of that sound contains (what tests look for).
SOUND_KEYWORDS = {
    "a low hum": "hum",
    "a high beep": "beep",
    "white noise": "noise",
    "a rising chirp": "chirp",
    "silence": "silen",
}
FACE_PHRASES = ("a woman in a space suit", "an astronaut", "a smiling astronaut", "the face of an astronaut")  # Eileen Collins
FACE_KEYWORDS = ("astronaut", "space suit")

_MOTION = {
    "left": ("moves left", "slides to the left", "travels left", "drifts leftward"),
    "right": ("moves right", "slides to the right", "travels right", "drifts rightward"),
    "up": ("moves up", "drifts upward", "floats up", "rises up"),
    "down": ("moves down", "sinks downward", "falls down", "drops down"),
}
_SCENE_PREP = ("across", "over", "in front of")
# How a scene reads inside a sentence (article or none).
_SCENE_NP = {"snowy ground": "snowy ground", "ocean waves": "ocean waves"}
_WORD = ('the word "{w}" is shown', 'the text "{w}" appears on screen', 'a caption reads "{w}"',
         '"{w}" is written in white letters', 'the word "{w}" appears')  # fmt: skip
_SPOKEN = ('a voice says "{s}"', 'someone says "{s}"', 'a man\'s voice says "{s}"',
           'you can hear "{s}" being spoken', 'a computer voice says "{s}"')  # fmt: skip
_SOUND = {
    "a low hum": ("a low hum", "a low humming sound", "a deep hum"),
    "a high beep": ("a high beep", "high-pitched beeps", "a beeping tone"),
    "white noise": ("white noise", "a hiss of white noise", "static noise"),
    "a rising chirp": ("a rising chirp", "a chirp rising in pitch", "an upward chirp"),
    "silence": ("silence", "an otherwise silent soundtrack", "near silence"),
}
_SOUND_CLAUSE = ("over {p}", "with {p} in the background", "accompanied by {p}")
_FACE = ("{f} is visible", "{f} looks at the camera", "a photo of {f} is shown", "{f} appears in the frame")
_NO_AUDIO = ("there is no audio", "the clip has no sound track", "with no audio at all")


@dataclass(frozen=True)
class ShapeSpec:
    """One moving shape: what it is and the straight path it follows over the whole clip."""

    shape: str
    color: str
    direction: str
    size: int  # radius-like half extent, pixels
    start: tuple[float, float]  # (x, y) centre at t=0
    end: tuple[float, float]  # (x, y) centre at the last frame


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip's bytes; its hash decides whether a clip is reused."""

    video_id: str
    index: int
    seed: int
    num_frames: int
    scene: str
    scene_seed: int
    shapes: tuple[ShapeSpec, ...]
    word: str
    word_frames: tuple[int, int]  # shown on frames [start, end)
    word_box: tuple[int, int]  # top-left (x, y) of the text's dark box
    has_audio: bool
    spoken: str | None
    spoken_start: float | None
    sound: str | None
    has_face: bool
    face_box: tuple[int, int, int, int] | None  # x, y, w, h of the pasted photo crop
    split: str
    captions: tuple[str, ...] = field(default=())

    @property
    def duration(self) -> float:
        return self.num_frames / FPS

    def spec_hash(self) -> str:
        """Hash of what decides the clip's bytes (captions and split do not), to decide on reuse."""
        media = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("captions", "split")}
        blob = json.dumps([GENERATOR_VERSION, media], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# Planning: which clip gets what (pure, cheap, in the parent process)
# ---------------------------------------------------------------------------------------------
def _exact_counts(n: int) -> dict[str, int]:
    """Split sizes with exact proportions; val and test get at least one clip once n >= 3."""
    val = round(n * SPLIT_FRACTIONS["val"])
    test = round(n * SPLIT_FRACTIONS["test"])
    if n >= 3:
        val, test = max(val, 1), max(test, 1)
    return {"train": n - val - test, "val": val, "test": test}


def plan_dataset(n: int, seed: int) -> list[dict[str, Any]]:
    """Per-clip split / face / audio flags with exact proportions (at least one face and one silent clip for n >= 3)."""
    rng = np.random.default_rng([seed, 0x5EED])
    counts = _exact_counts(n)
    splits = np.array(["train"] * counts["train"] + ["val"] * counts["val"] + ["test"] * counts["test"])
    splits = splits[rng.permutation(n)]
    n_face = round(n * FACE_FRACTION)
    n_silent = round(n * NO_AUDIO_FRACTION)
    if n >= 3:
        n_face, n_silent = max(n_face, 1), max(n_silent, 1)
    face = np.zeros(n, bool)
    face[rng.permutation(n)[:n_face]] = True
    silent = np.zeros(n, bool)
    silent[rng.permutation(n)[:n_silent]] = True
    return [{"split": str(splits[i]), "has_face": bool(face[i]), "has_audio": not silent[i]} for i in range(n)]


def _shape_path(rng: np.random.Generator, direction: str, size: int, lane: tuple[float, float],
                free_y: tuple[int, int]) -> tuple:  # fmt: skip
    """Start/end centres: across most of the frame along ``direction``, at a random spot in ``lane`` across it.

    Horizontal movers stay in ``free_y`` (the rows the printed word never covers) so the
    word's box cannot hide them for most of the clip.
    """
    m = size + 6
    if direction in ("left", "right"):
        lo, hi = free_y[0] + m, free_y[1] - m
        y = float(rng.uniform(lo + lane[0] * (hi - lo), lo + lane[1] * (hi - lo)))
        a, b = float(WIDTH - m), float(m)
        xs = (a, b) if direction == "left" else (b, a)
        return (xs[0], y), (xs[1], y)
    x = float(rng.uniform(max(m, lane[0] * WIDTH), min(WIDTH - m, lane[1] * WIDTH)))
    a, b = float(HEIGHT - m), float(m)
    ys = (a, b) if direction == "up" else (b, a)
    return (x, ys[0]), (x, ys[1])


def make_spec(index: int, seed: int, flags: dict[str, Any], min_seconds: float, max_seconds: float) -> ClipSpec:
    """Draw clip ``index``'s content from an RNG seeded with ``(seed, index)`` only."""
    rng = np.random.default_rng([seed, index])
    num_frames = int(rng.integers(round(min_seconds * FPS), round(max_seconds * FPS) + 1))
    duration = num_frames / FPS
    scene = str(rng.choice(list(SCENES)))
    palette = [c for c in COLORS if c not in SCENES[scene]]
    word = str(rng.choice(WORDS))
    w_start = int(rng.integers(0, max(1, int(num_frames * 0.3))))
    w_len = max(FPS, int(num_frames * rng.uniform(0.5, 0.7)))
    word_frames = (w_start, min(num_frames, w_start + w_len))
    text_top = bool(rng.integers(0, 2))
    tw, th = _text_extent(word)
    bx = int(rng.integers(4, WIDTH - tw - 4))
    by = int(rng.integers(4, 10)) if text_top else int(rng.integers(HEIGHT - th - 10, HEIGHT - th - 4))
    free_y = (by + th + 2, HEIGHT) if text_top else (0, by - 2)

    n_shapes = int(rng.integers(1, 3))
    shapes: list[ShapeSpec] = []
    lanes = [(0.0, 1.0)] if n_shapes == 1 else [(0.0, 0.45), (0.55, 1.0)]
    used: set[tuple[str, str]] = set()
    for k in range(n_shapes):
        while True:
            shape, color = str(rng.choice(SHAPES)), str(rng.choice(palette))
            if (shape, color) not in used and (not used or color not in {c for _, c in used}):
                break
        used.add((shape, color))
        direction = str(rng.choice(DIRECTIONS))
        size = int(rng.integers(16, 27))
        start, end = _shape_path(rng, direction, size, lanes[k], free_y)
        shapes.append(ShapeSpec(shape, color, direction, size, start, end))

    has_audio = bool(flags["has_audio"])
    spoken = str(rng.choice(SPOKEN))
    sound = str(rng.choice(SOUNDS))
    spoken_start = round(float(rng.uniform(0.15, max(0.2, duration - 1.4))), 3)

    has_face = bool(flags["has_face"])
    face_box = None
    scale = float(rng.uniform(0.55, 0.72))
    fx = float(rng.uniform(0.0, 1.0))
    fy = float(rng.uniform(0.0, 1.0))
    if has_face:
        cw, ch = _FACE_CROP[2] - _FACE_CROP[0], _FACE_CROP[3] - _FACE_CROP[1]
        w, h = round(cw * scale), round(ch * scale)
        band = (th + 14, HEIGHT) if text_top else (0, HEIGHT - th - 14)  # keep clear of the text box
        x = round(fx * (WIDTH - w))
        y = band[0] + round(fy * max(0, band[1] - band[0] - h))
        face_box = (x, y, w, h)

    spec = ClipSpec(
        video_id=f"synth{index:05d}",
        index=index,
        seed=seed,
        num_frames=num_frames,
        scene=scene,
        scene_seed=int(rng.integers(0, 2**31 - 1)),
        shapes=tuple(shapes),
        word=word,
        word_frames=word_frames,
        word_box=(bx, by),
        has_audio=has_audio,
        spoken=spoken if has_audio else None,
        spoken_start=spoken_start if has_audio else None,
        sound=sound if has_audio else None,
        has_face=has_face,
        face_box=face_box,
        split=flags["split"],
    )
    caps = make_captions(spec, np.random.default_rng([seed, index, 1]))
    return dataclasses.replace(spec, captions=tuple(caps))


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(0, len(options)))])


def make_captions(spec: ClipSpec, rng: np.random.Generator, n_min: int = 5, n_max: int = 7) -> list[str]:
    """5-7 distinct captions; the first names every attribute, the others a random subset of them.

    Every caption names the scene and every shape with its colour and direction, so any one
    caption identifies the clip's look; the optional clauses (word, voice, sound, face) vary.
    """
    n = int(rng.integers(n_min, n_max + 1))
    captions: list[str] = []
    attempts = 0
    while len(captions) < n and attempts < 200:
        attempts += 1
        full = not captions
        cap = _one_caption(spec, rng, full)
        if cap not in captions:
            captions.append(cap)
    return captions


def _one_caption(spec: ClipSpec, rng: np.random.Generator, full: bool) -> str:
    movers = [f"{_article(s.color)} {s.color} {s.shape} {_pick(rng, _MOTION[s.direction])}" for s in spec.shapes]
    motion = " and ".join(movers)
    scene = _SCENE_NP.get(spec.scene, f"a {spec.scene}")
    if rng.random() < 0.5:
        main = f"{motion} {_pick(rng, _SCENE_PREP)} {scene}"
    else:
        main = f"{_pick(rng, ('on', 'against', 'in front of'))} {scene}, {motion}"

    extras: list[str] = [_pick(rng, _WORD).format(w=spec.word)]
    if spec.has_audio:
        assert spec.spoken is not None and spec.sound is not None
        extras.append(_pick(rng, _SPOKEN).format(s=spec.spoken))
        extras.append(_pick(rng, _SOUND_CLAUSE).format(p=_pick(rng, _SOUND[spec.sound])))
    else:
        extras.append(_pick(rng, _NO_AUDIO))
    if spec.has_face:
        extras.append(_pick(rng, _FACE).format(f=_pick(rng, FACE_PHRASES)))
    if not full:
        k = int(rng.integers(1, len(extras) + 1))
        extras = [extras[i] for i in sorted(rng.permutation(len(extras))[:k])]
    # Sound clauses ("over a low hum") attach without a connective; others take one, none twice.
    parts = [main]
    connectives = [" while ", ", ", " and ", "; "]
    for e in extras:
        if e.startswith(("over ", "with ", "accompanied ")):
            parts.append(" " + e)
        else:
            parts.append(connectives.pop(int(rng.integers(0, len(connectives)))) + e)
    return "".join(parts)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


# ---------------------------------------------------------------------------------------------
# Rendering (runs in worker processes)
# ---------------------------------------------------------------------------------------------
_FONT_SCALE, _FONT_THICK, _PAD = 1.6, 3, 10
# Crop of skimage.data.astronaut() around the face Haar finds at (177, 66, 95, 95): x0, y0, x1, y1
_FACE_CROP = (139, 28, 310, 206)


def _text_extent(word: str) -> tuple[int, int]:
    """Width and height of the dark box holding ``word``."""
    import cv2

    (tw, th), base = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE, _FONT_THICK)
    return tw + 2 * _PAD, th + base + 2 * _PAD


@lru_cache(maxsize=1)
def _face_crop() -> np.ndarray:
    from skimage import data

    x0, y0, x1, y1 = _FACE_CROP
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

    tw, th = _text_extent(word)
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


def render_audio(spec: ClipSpec) -> np.ndarray:
    """The clip's soundtrack: background sound + the spoken word, float32 mono in [-1, 1]."""
    n = spec.num_frames * SAMPLE_RATE // FPS
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng([spec.seed, spec.index, 2])
    if spec.sound == "a low hum":
        bed = 0.16 * np.sin(2 * np.pi * 110 * t) + 0.06 * np.sin(2 * np.pi * 220 * t)
    elif spec.sound == "a high beep":
        bed = 0.15 * np.sin(2 * np.pi * 1760 * t) * ((t % 0.5) < 0.25)
    elif spec.sound == "white noise":
        bed = rng.normal(0, 0.07, n)
    elif spec.sound == "a rising chirp":
        f0, f1, dur = 200.0, 2000.0, max(t[-1], 1e-3)
        bed = 0.15 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur)))
    else:  # silence
        bed = np.zeros(n)
    audio = bed.astype(np.float32)
    if spec.spoken:
        voice = speak(spec.spoken)
        start = int((spec.spoken_start or 0.0) * SAMPLE_RATE)
        end = min(n, start + voice.size)
        audio[start:end] += voice[: end - start]
    return np.clip(audio, -1.0, 1.0)


def encode_clip(spec: ClipSpec, dest: Path) -> None:
    """Write ``spec`` as H.264 (yuv420p, BT.601) + AAC mono mp4 at ``dest`` with the ffmpeg CLI.

    Why ffmpeg and not PyAV: PyAV 18's bundled x264 produced different bytes for the same input
    frames from run to run (checked), while Debian's ffmpeg with ``-threads 1`` and the
    bitexact flags is reproducible; the reproducibility test guards this.
    """
    import cv2

    exe = _ffmpeg()
    raw = b"".join(cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420).tobytes() for img in render_frames(spec))
    cmd = [exe, "-nostats", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "pipe:0"]  # fmt: skip
    audio_file = dest.with_name(dest.name + ".f32")
    try:
        if spec.has_audio:
            render_audio(spec).astype("<f4").tofile(audio_file)
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


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise UserError("ffmpeg not found: install the Debian package ffmpeg ('make install' does)")
    return exe


# ---------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------
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


def generate_clip(out_dir: str, spec: ClipSpec) -> tuple[str, bool]:
    """Worker entry: (re)write one clip atomically unless a complete matching clip exists."""
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
        encode_clip(spec, tmp)
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
        "word_box": [*spec.word_box, *_text_extent(spec.word)],
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
    from storage.manifest import MANIFEST_SCHEMA

    fields = [MANIFEST_SCHEMA.field(k) if k in MANIFEST_SCHEMA.names else None for k in cols]
    arrays = [pa.array(v, type=(f.type if f is not None else types.get(k))) for (k, v), f in zip(cols.items(), fields, strict=True)]
    return pa.Table.from_arrays(arrays, names=list(cols))


def _captions_rows(specs: list[ClipSpec]) -> list[dict[str, Any]]:
    return [
        {"video_id": s.video_id, "caption_idx": i, "caption": c, "split": s.split}
        for s in specs
        for i, c in enumerate(s.captions)
    ]


def plan_specs(n: int, seed: int = 0, min_seconds: float = 2.0, max_seconds: float = 6.0) -> list[ClipSpec]:
    """All clip specs of a dataset (cheap; no media is rendered)."""
    if n < 1:
        raise UserError(f"--videos must be at least 1, got {n}")
    if not (0.5 <= min_seconds <= max_seconds <= 600):
        raise UserError(f"need 0.5 <= --min-seconds <= --max-seconds <= 600, got {min_seconds} and {max_seconds}")
    flags = plan_dataset(n, seed)
    return [make_spec(i, seed, flags[i], min_seconds, max_seconds) for i in range(n)]


def synthesize(
    out: str | os.PathLike[str],
    videos: int,
    seed: int = 0,
    workers: int | None = None,
    min_seconds: float = 2.0,
    max_seconds: float = 6.0,
    progress: bool = True,
    on_done: Callable[[str, bool], None] | None = None,
) -> dict[str, Any]:
    """Generate the dataset under ``out`` and return a summary; existing matching clips are reused."""
    from tqdm import tqdm

    from storage.manifest import write_captions, write_manifest

    t0 = time.perf_counter()
    specs = plan_specs(videos, seed, min_seconds, max_seconds)
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise UserError(f"{out_path}: exists and is not a directory")
    (out_path / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    (out_path / SPEC_DIR).mkdir(parents=True, exist_ok=True)
    _ffmpeg()
    if shutil.which("espeak-ng") is None and any(s.has_audio for s in specs):
        raise UserError("espeak-ng not found: install the Debian package espeak-ng ('make install' does)")
    todo = [s for s in specs if not is_complete(out_path, s)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    made = 0
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="synth", unit="clip", disable=None if progress else True, file=sys.stderr)
    try:
        if workers == 1:
            for s in todo:
                _, fresh = generate_clip(str(out_path), s)
                made += fresh
                bar.update(1)
                if on_done:
                    on_done(s.video_id, fresh)
        else:
            # spawn: workers start clean (no inherited threads or locks from the parent)
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futs = {pool.submit(generate_clip, str(out_path), s): s for s in todo}
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
    }
