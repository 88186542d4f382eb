"""Captions of a synthetic clip: each one names attributes the clip really has, so retrieval is learnable."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from videxperts.pipelines.synth.vocab import FACE_PHRASES

if TYPE_CHECKING:
    from videxperts.pipelines.synth.plan import ClipSpec

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
