"""Planning a synthetic dataset: which clip gets what (pure and cheap; runs in the parent process)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from videxperts.errors import UserError
from videxperts.pipelines.synth.captions import make_captions
from videxperts.pipelines.synth.render import text_extent
from videxperts.pipelines.synth.vocab import (
    COLORS,
    DIRECTIONS,
    FACE_CROP,
    FACE_FRACTION,
    FPS,
    GENERATOR_VERSION,
    HEIGHT,
    NO_AUDIO_FRACTION,
    SCENES,
    SHAPES,
    SOUNDS,
    SPLIT_FRACTIONS,
    SPOKEN,
    WIDTH,
    WORDS,
)


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
    tw, th = text_extent(word)
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
        cw, ch = FACE_CROP[2] - FACE_CROP[0], FACE_CROP[3] - FACE_CROP[1]
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


def plan_specs(n: int, seed: int = 0, min_seconds: float = 2.0, max_seconds: float = 6.0) -> list[ClipSpec]:
    """All clip specs of a dataset (cheap; no media is rendered)."""
    if n < 1:
        raise UserError(f"--videos must be at least 1, got {n}")
    if not (0.5 <= min_seconds <= max_seconds <= 600):
        raise UserError(f"need 0.5 <= --min-seconds <= --max-seconds <= 600, got {min_seconds} and {max_seconds}")
    flags = plan_dataset(n, seed)
    return [make_spec(i, seed, flags[i], min_seconds, max_seconds) for i in range(n)]
