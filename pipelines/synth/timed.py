"""Timed synthetic clips for dense captioning (``videxperts data synth --timed``).

A timed clip is longer (10-40 s by default) and holds 2-5 events, each shown or heard only in
its own interval: a shape enters from one edge and crosses the frame, a word appears on screen,
a voice speaks (espeak-ng), a sound plays. Each event gets one sentence that says what happens
in that interval, written as clauses whose start words are recorded (``boundaries``) so a
segment critic can learn where one clause ends and the next begins; each video also gets a
paragraph (all its event sentences in time order, joined by "then") as a video-level caption.

Sentences are lower case without punctuation, so their words are exactly their whitespace
tokens (and the spaCy tokens): ``boundaries`` are indices into ``caption.split()``, always
starting with 0. Intervals may overlap, as ActivityNet's do. Clip 0 always has one event
shorter than one I3D step (2.56 s) and the plan has silent clips (no audio track: visual
events only), the two cases the published feature cropping special-cases.

Determinism is the plain synth's: clip ``i`` is drawn from ``(seed, i)`` alone and encoded
bitexact, so the same seed gives byte-identical videos and captions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError
from videxperts.pipelines.synth.plan import ShapeSpec, plan_dataset
from videxperts.pipelines.synth.render import (
    _draw_shape,
    _text_patch,
    encode_clip,
    render_background,
    sound_bed,
    speak,
    text_extent,
)
from videxperts.pipelines.synth.vocab import (
    COLORS,
    DIRECTIONS,
    FPS,
    GENERATOR_VERSION,
    HEIGHT,
    SAMPLE_RATE,
    SCENES,
    SHAPES,
    SOUNDS,
    SPOKEN,
    VIDEO_DIR,
    WIDTH,
    WORDS,
)

TIMED_VERSION = "1"
DEFAULT_SECONDS = (10.0, 40.0)
MIN_EVENT_S, MAX_EVENT_S, VOICE_EVENT_S = 1.5, 8.0, 2.0
SHORT_EVENT_S = 1.6  # clip 0's first event: shorter than one I3D step (64 frames at 25 fps)
_ENTER_FROM = {"right": "left", "left": "right", "up": "bottom", "down": "top"}
_MOVES = {
    "right": ("and moves to the right", "and slides to the right", "and crosses to the right"),
    "left": ("and moves to the left", "and slides to the left", "and crosses to the left"),
    "up": ("and moves up", "and rises to the top", "and floats upward"),
    "down": ("and moves down", "and sinks to the bottom", "and falls downward"),
}
_SOUND_NAMES = {
    "a low hum": ("a low hum", "a deep humming sound"),
    "a high beep": ("a high beep", "a beeping tone"),
    "white noise": ("white noise", "a hiss of static"),
    "a rising chirp": ("a rising chirp", "a chirp rising in pitch"),
}
AUDIBLE_SOUNDS = tuple(s for s in SOUNDS if s in _SOUND_NAMES)


@dataclass(frozen=True)
class Event:
    """One event: what it is, when (frames ``[start_frame, end_frame)``), and its sentence's clauses."""

    kind: str  # "shape" | "word" | "voice" | "sound"
    start_frame: int
    end_frame: int
    clauses: tuple[str, ...]
    shape: ShapeSpec | None = None
    text: str | None = None  # the printed or spoken word
    box: tuple[int, int] | None = None  # top-left of a printed word's box
    sound: str | None = None

    @property
    def start(self) -> float:
        return self.start_frame / FPS

    @property
    def end(self) -> float:
        return self.end_frame / FPS

    @property
    def sentence(self) -> str:
        return " ".join(self.clauses)

    def boundaries(self) -> list[int]:
        return clause_starts(self.clauses)


@dataclass(frozen=True)
class TimedClipSpec:
    """Everything that determines one timed clip's bytes."""

    video_id: str
    index: int
    seed: int
    num_frames: int
    scene: str
    scene_seed: int
    has_audio: bool
    split: str
    events: tuple[Event, ...]

    @property
    def duration(self) -> float:
        return self.num_frames / FPS

    @property
    def has_face(self) -> bool:  # the summary counts faces; timed clips have none
        return False

    def spec_hash(self) -> str:
        media = {k: v for k, v in dataclasses.asdict(self).items() if k != "split"}
        blob = json.dumps([GENERATOR_VERSION, TIMED_VERSION, media], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:20]

    @property
    def captions(self) -> tuple[str, ...]:
        return (*(e.sentence for e in self.events), paragraph(self.events)[0])


def clause_starts(clauses: tuple[str, ...] | list[str]) -> list[int]:
    """Word index at which each clause begins (the first is 0)."""
    starts, pos = [], 0
    for c in clauses:
        starts.append(pos)
        pos += len(c.split())
    return starts


def paragraph(events: tuple[Event, ...]) -> tuple[str, list[int]]:
    """All event sentences in time order joined by "then", and the paragraph's clause starts."""
    clauses: list[str] = []
    for k, e in enumerate(events):
        first, *rest = e.clauses
        clauses.append(first if k == 0 else f"then {first}")
        clauses.extend(rest)
    return " ".join(clauses), clause_starts(clauses)


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return str(options[int(rng.integers(0, len(options)))])


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _crossing(rng: np.random.Generator, direction: str, size: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """A path from just outside one edge to just outside the opposite one (the shape enters and leaves)."""
    m = size + 2
    if direction in ("left", "right"):
        y = float(rng.uniform(HEIGHT * 0.3, HEIGHT * 0.7))
        a, b = float(-m), float(WIDTH + m)
        return ((a, y), (b, y)) if direction == "right" else ((b, y), (a, y))
    x = float(rng.uniform(WIDTH * 0.2, WIDTH * 0.8))
    a, b = float(-m), float(HEIGHT + m)
    return ((x, a), (x, b)) if direction == "down" else ((x, b), (x, a))


def _event(rng: np.random.Generator, kind: str, frames: tuple[int, int], scene: str, word_slot: int) -> Event:
    if kind == "shape":
        palette = [c for c in COLORS if c not in SCENES[scene]]
        shape, color, direction = _pick(rng, SHAPES), _pick(rng, palette), _pick(rng, DIRECTIONS)
        size = int(rng.integers(16, 27))
        start, end = _crossing(rng, direction, size)
        clauses = [f"{_article(color)} {color} {shape} enters from the {_ENTER_FROM[direction]}", _pick(rng, _MOVES[direction])]
        if rng.random() < 0.5:
            clauses.append(f"over the {scene}")
        return Event(kind, *frames, tuple(clauses), shape=ShapeSpec(shape, color, direction, size, start, end))
    if kind == "word":
        word = _pick(rng, WORDS)
        tw, th = text_extent(word)
        bx = int(rng.integers(4, WIDTH - tw - 4))
        by = int(rng.integers(4, 10)) if word_slot == 0 else int(rng.integers(HEIGHT - th - 10, HEIGHT - th - 4))
        clauses = [f"the word {word} appears on the screen"]
        if rng.random() < 0.5:
            clauses.append("and then disappears")
        return Event(kind, *frames, tuple(clauses), text=word, box=(bx, by))
    if kind == "voice":
        spoken = _pick(rng, SPOKEN)
        clauses = [f"a voice says {spoken}"] if rng.random() < 0.5 else ["a voice is heard", f"and it says {spoken}"]
        return Event(kind, *frames, tuple(clauses), text=spoken)
    sound = _pick(rng, AUDIBLE_SOUNDS)
    clauses = [f"{_pick(rng, _SOUND_NAMES[sound])} can be heard"]
    if rng.random() < 0.5:
        clauses.append("and then it stops")
    return Event(kind, *frames, tuple(clauses), sound=sound)


def make_timed_spec(index: int, seed: int, flags: dict[str, Any], min_seconds: float, max_seconds: float) -> TimedClipSpec:
    """Draw timed clip ``index`` from an RNG seeded with ``(seed, index)`` only."""
    rng = np.random.default_rng([seed, index, 0x71ED])
    num_frames = int(rng.integers(round(min_seconds * FPS), round(max_seconds * FPS) + 1))
    duration = num_frames / FPS
    scene = _pick(rng, list(SCENES))
    has_audio = bool(flags["has_audio"])
    kinds = ["shape", "word", "voice", "sound"] if has_audio else ["shape", "word"]
    n_events = int(rng.integers(2, 6))
    events, words = [], 0
    for k in range(n_events):
        kind = _pick(rng, kinds)
        if kind == "word" and words == 2:  # two word slots (top and bottom band)
            kind = "shape"
        length = VOICE_EVENT_S if kind == "voice" else float(rng.uniform(MIN_EVENT_S, min(MAX_EVENT_S, duration / 2)))
        if index == 0 and k == 0:
            length = SHORT_EVENT_S
        start = float(rng.uniform(0.0, duration - length))
        s_frame = round(start * FPS)
        e_frame = min(num_frames, s_frame + max(1, round(length * FPS)))
        events.append(_event(rng, kind, (s_frame, e_frame), scene, words))
        words += kind == "word"
    events.sort(key=lambda e: (e.start_frame, e.end_frame))
    return TimedClipSpec(
        video_id=f"synth{index:05d}",
        index=index,
        seed=seed,
        num_frames=num_frames,
        scene=scene,
        scene_seed=int(rng.integers(0, 2**31 - 1)),
        has_audio=has_audio,
        split=flags["split"],
        events=tuple(events),
    )


def plan_timed_specs(n: int, seed: int = 0, min_seconds: float = DEFAULT_SECONDS[0],
                     max_seconds: float = DEFAULT_SECONDS[1]) -> list[TimedClipSpec]:  # fmt: skip
    if n < 1:
        raise UserError(f"--videos must be at least 1, got {n}")
    if not (4.0 <= min_seconds <= max_seconds <= 600):
        raise UserError(f"--timed needs 4 <= --min-seconds <= --max-seconds <= 600, got {min_seconds} and {max_seconds}")
    flags = plan_dataset(n, seed)
    return [make_timed_spec(i, seed, flags[i], min_seconds, max_seconds) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------
def render_timed_frames(spec: TimedClipSpec) -> Iterator[np.ndarray]:
    """RGB frames: each event drawn only on its own frames (shapes cross the frame in that time)."""
    bg = render_background(spec.scene, spec.scene_seed)
    patches = {id(e): _text_patch(e.text) for e in spec.events if e.kind == "word" and e.text}
    for i in range(spec.num_frames):
        img = bg.copy()
        for e in spec.events:
            if not e.start_frame <= i < e.end_frame:
                continue
            if e.kind == "shape" and e.shape is not None:
                _draw_shape(img, e.shape, (i - e.start_frame) / max(1, e.end_frame - e.start_frame - 1))
            elif e.kind == "word" and e.box is not None:
                patch = patches[id(e)]
                (bx, by), (th, tw) = e.box, patch.shape[:2]
                img[by : by + th, bx : bx + tw] = patch
        yield img


def render_timed_audio(spec: TimedClipSpec) -> np.ndarray:
    """Silence except each sound and voice event inside its own interval (speech cut at its end)."""
    n = spec.num_frames * SAMPLE_RATE // FPS
    audio = np.zeros(n, np.float32)
    for k, e in enumerate(spec.events):
        a, b = e.start_frame * SAMPLE_RATE // FPS, min(n, e.end_frame * SAMPLE_RATE // FPS)
        if e.kind == "sound":
            rng = np.random.default_rng([spec.seed, spec.index, 2, k])
            audio[a:b] += sound_bed(e.sound, np.arange(b - a) / SAMPLE_RATE, rng)
        elif e.kind == "voice" and e.text:
            voice = speak(e.text)[: b - a]
            audio[a : a + voice.size] += voice
    return np.clip(audio, -1.0, 1.0)


def encode_timed_clip(spec: TimedClipSpec, dest: Path) -> None:
    encode_clip(spec, dest, frames=render_timed_frames(spec), audio=render_timed_audio(spec) if spec.has_audio else None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# manifest and captions rows
# ---------------------------------------------------------------------------------------------
def _event_record(e: Event) -> dict[str, Any]:
    rec: dict[str, Any] = {"kind": e.kind, "start": e.start, "end": e.end, "sentence": e.sentence}
    if e.shape is not None:
        rec |= {"shape": e.shape.shape, "color": e.shape.color, "direction": e.shape.direction}
    if e.text is not None:
        rec["text"] = e.text
    if e.sound is not None:
        rec["sound"] = e.sound
    return rec


def timed_manifest_table(specs: list[TimedClipSpec]):
    import pyarrow as pa

    from videxperts.storage.manifest import MANIFEST_SCHEMA

    cols: dict[str, list] = {name: [] for name in MANIFEST_SCHEMA.names}
    extra: dict[str, list] = {"num_frames": [], "scene": [], "event_kinds": [], "events": [], "sample_rate": [], "seed": [],
                              "spec_hash": []}  # fmt: skip
    for s in specs:
        row = {"video_id": s.video_id, "path": f"{VIDEO_DIR}/{s.video_id}.mp4", "duration": s.duration, "fps": float(FPS),
               "width": WIDTH, "height": HEIGHT, "has_audio": s.has_audio, "split": s.split}  # fmt: skip
        for k, v in row.items():
            cols[k].append(v)
        extra["num_frames"].append(s.num_frames)
        extra["scene"].append(s.scene)
        extra["event_kinds"].append([e.kind for e in s.events])
        extra["events"].append(json.dumps([_event_record(e) for e in s.events], sort_keys=True))
        extra["sample_rate"].append(SAMPLE_RATE if s.has_audio else None)
        extra["seed"].append(s.seed)
        extra["spec_hash"].append(s.spec_hash())
    types = {"num_frames": pa.int32(), "scene": pa.string(), "event_kinds": pa.list_(pa.string()), "events": pa.string(),
             "sample_rate": pa.int32(),
             "seed": pa.int64(), "spec_hash": pa.string()}  # fmt: skip
    arrays = [pa.array(v, MANIFEST_SCHEMA.field(k).type) for k, v in cols.items()]
    arrays += [pa.array(v, types[k]) for k, v in extra.items()]
    return pa.Table.from_arrays(arrays, names=[*cols, *extra])


def timed_caption_rows(specs: list[TimedClipSpec]) -> list[dict[str, Any]]:
    """One row per event (``start``/``end`` seconds, ``event`` kind, ``boundaries``) and one
    video-level paragraph row per video (``start``/``end`` null, ``event`` "paragraph")."""
    rows = []
    for s in specs:
        for i, e in enumerate(s.events):
            rows.append({"video_id": s.video_id, "caption_idx": i, "caption": e.sentence, "split": s.split,
                         "start": e.start, "end": e.end, "event": e.kind, "boundaries": e.boundaries()})  # fmt: skip
        text, bounds = paragraph(s.events)
        rows.append({"video_id": s.video_id, "caption_idx": len(s.events), "caption": text, "split": s.split,
                     "start": None, "end": None, "event": "paragraph", "boundaries": bounds})  # fmt: skip
    return rows
