"""Synthetic image-caption pairs: keyframes of the synthetic clips, 5 captions each, for matching.

Each image is the keyframe of a planned synthetic clip (``plan_specs``: scene, coloured shapes,
a printed word, sometimes a face) taken while the word is on screen, written as PNG; its 5
distinct captions say only what a still shows (scene, each shape with its colour and side of
the picture, the word, the face), never motion or sound. ``--images N --test-images T`` gives
T test and T val images and the rest for training; with T = 5·k the test split is COCO-like
(5 folds of k images for the COCO 1K protocol with ``fold_size`` k). Same seed, same bytes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError
from videxperts.pipelines.synth.plan import ClipSpec, plan_specs
from videxperts.pipelines.synth.render import render_frames
from videxperts.pipelines.synth.vocab import HEIGHT, WIDTH

IMAGE_DIR = "images"
CAPTIONS_PER_IMAGE = 5
_LEADS = ("a picture of", "an image showing", "a still of", "a frame with", "a photo of")
_SCENE_PREP = ("in front of", "against", "over", "on")


def keyframe_index(spec: ClipSpec) -> int:
    """A frame where the word is visible: the middle of its interval."""
    return (spec.word_frames[0] + spec.word_frames[1] - 1) // 2


def keyframe(spec: ClipSpec) -> np.ndarray:
    k = keyframe_index(spec)
    for i, frame in enumerate(render_frames(spec)):
        if i == k:
            return frame
    raise AssertionError(f"clip {spec.video_id} has no frame {k}")  # pragma: no cover - plan guarantees it


def _side(spec: ClipSpec, shape_index: int) -> str:
    s = spec.shapes[shape_index]
    t = keyframe_index(spec) / max(1, spec.num_frames - 1)
    x = s.start[0] + (s.end[0] - s.start[0]) * t
    return "on the left" if x < WIDTH / 3 else "on the right" if x > 2 * WIDTH / 3 else "in the middle"


def image_captions(spec: ClipSpec, seed: int) -> list[str]:
    """5 distinct captions of the keyframe; the first names everything it shows."""
    rng = np.random.default_rng([seed, spec.index, 7])
    out: list[str] = []
    for attempt in range(200):
        shapes = [f"{'an' if s.color[0] in 'aeiou' else 'a'} {s.color} {s.shape}"
                  + (f" {_side(spec, i)}" if attempt == 0 or rng.random() < 0.5 else "")
                  for i, s in enumerate(spec.shapes)]
        main = f"{' and '.join(shapes)} {_SCENE_PREP[int(rng.integers(len(_SCENE_PREP)))]} a {spec.scene}"
        extras = [f'the word "{spec.word}" written in white']
        if spec.has_face:
            extras.append("an astronaut's face")
        if attempt:
            extras = [e for e in extras if rng.random() < 0.6]
        lead = _LEADS[int(rng.integers(len(_LEADS)))]
        cap = f"{lead} {main}" + "".join(f", with {e}" for e in extras)
        if cap not in out:
            out.append(cap)
        if len(out) == CAPTIONS_PER_IMAGE:
            return out
    raise AssertionError(f"could not make {CAPTIONS_PER_IMAGE} distinct captions")  # pragma: no cover


def synthesize_images(out: str | os.PathLike[str], images: int, test_images: int | None = None, seed: int = 0,
                      ) -> dict[str, Any]:
    """Write ``images`` PNG keyframes + manifest + 5 captions each under ``out``; returns a summary."""
    from PIL import Image

    from videxperts.storage.manifest import write_captions, write_manifest

    t0 = time.perf_counter()
    test = test_images if test_images is not None else max(1, images // 10)
    if test < 1 or images - 2 * test < 1:
        raise UserError(f"--images {images} leaves no training images with --test-images {test} "
                        "(val and test get that many each)")
    specs = plan_specs(images, seed, 1.0, 1.0)
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise UserError(f"{out_path}: exists and is not a directory")
    (out_path / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    manifest, captions = [], []
    for i, spec in enumerate(specs):
        split = "test" if i < test else "val" if i < 2 * test else "train"  # contiguous: folds are slices
        vid = f"img{i:05d}"
        rel = f"{IMAGE_DIR}/{vid}.png"
        Image.fromarray(keyframe(spec)).save(out_path / rel, optimize=False, compress_level=6)
        manifest.append({"video_id": vid, "path": rel, "duration": 0.04, "fps": 25.0, "width": WIDTH,
                         "height": HEIGHT, "has_audio": False, "split": split})
        captions += [{"video_id": vid, "caption_idx": k, "caption": c, "split": split}
                     for k, c in enumerate(image_captions(spec, seed))]
    write_manifest(out_path, manifest)
    write_captions(out_path, captions)
    splits = {s: sum(r["split"] == s for r in manifest) for s in ("train", "val", "test")}
    return {"out": str(out_path), "images": images, "captions": len(captions), "splits": splits, "seed": seed,
            "coco_like_folds_of": test // 5 if test % 5 == 0 else None,
            "elapsed_s": round(time.perf_counter() - t0, 2)}
