"""The learnability check of SPEC-DCPG §4.2: class-conditioned Gaussian region features with
template captions naming the class (a colour and a thing), 5 per item.

Chance for N test items: R@K = 100 K / N in both directions (t2i ranks N images; i2t finds one
of 5 own captions among 5N). Used by the tests and ``scripts/matching_results.py``.
"""

from __future__ import annotations

import numpy as np

COLOURS = ["red", "green", "blue", "yellow", "black", "white"]
THINGS = ["dog", "car", "house", "tree"]


def toy_items(n: int, img_dim: int, regions: int, seed: int = 0, noise: float = 0.3
              ) -> tuple[list[str], np.ndarray, dict[str, list[str]]]:
    """(item ids, regions [n, regions, img_dim] float32, 5 captions per item)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((len(COLOURS) * len(THINGS), img_dim))
    ids, feats, caps = [], [], {}
    for i in range(n):
        cls = int(rng.integers(len(centres)))
        colour, thing = COLOURS[cls % len(COLOURS)], THINGS[cls // len(COLOURS)]
        item = f"img{seed}_{i:04d}"
        ids.append(item)
        feats.append(centres[cls] + noise * rng.standard_normal((regions, img_dim)))
        caps[item] = [f"a {colour} {thing}", f"the {thing} is {colour}", f"{colour} {thing} here",
                      f"one {colour} {thing}", f"look , a {thing} that is {colour}"]
    return ids, np.asarray(feats, np.float32), caps
