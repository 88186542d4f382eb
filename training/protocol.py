"""The evaluation protocol made visible: warnings for splits too small to mean anything.

Every task's evaluation returns counts of what it scored (``videos``, ``queries``, ...); a
retrieval R@k is 100 by construction when k >= the number of videos ranked, and a split of a
handful of videos gives numbers with no resolution. These warnings are printed by ``train``,
``evaluate`` and ``report`` and logged as a tag on the MLflow runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

TINY_SPLIT = 10  # fewer videos than this: the split's metrics are too coarse to compare models
WARNINGS_TAG = "videxperts.protocol.warnings"
_RECALL_AT = re.compile(r"(?:^|/)R(\d+)$")


def split_size_warnings(splits: Mapping[str, list[str]]) -> list[str]:
    """Empty or tiny splits (by video count), before anything is trained."""
    return split_count_warnings({k: len(v or []) for k, v in splits.items()})


def split_count_warnings(counts: Mapping[str, int]) -> list[str]:
    """Empty or tiny splits from their numbers of videos (``data import``, ``train``)."""
    out = []
    for name in ("train", "val", "test"):
        n = int(counts.get(name) or 0)
        if n == 0:
            out.append(f"split {name!r} is empty" + (": no model selection (the last epoch is kept)"
                                                     if name == "val" else ": nothing to report" if name == "test"
                                                     else ""))
        elif n < TINY_SPLIT and name == "train":
            out.append(f"split 'train' has only {n} videos: too few to learn from")
        elif n < TINY_SPLIT:
            out.append(f"split {name!r} has only {n} videos: its metrics move in steps of {100 / n:.0f} points")
    return out


def trivial_recall_ks(n_videos: int, metrics: Iterable[str]) -> list[int]:
    """The k of every R@k metric that is 100 by construction (k >= videos ranked)."""
    ks = {int(m.group(1)) for name in metrics if (m := _RECALL_AT.search(name))}
    return sorted(k for k in ks if k >= n_videos > 0)


def protocol_warnings(counts: Mapping[str, Mapping[str, int]], metrics: Iterable[str]) -> list[str]:
    """Warnings on the scored splits: tiny ones and R@k trivial for k >= #videos."""
    out = []
    names = list(metrics)
    for split, c in counts.items():
        videos = int(c.get("videos", 0))
        ks = trivial_recall_ks(videos, names)
        if ks:
            out.append(f"{split}: R@{', R@'.join(map(str, ks))} = 100 by construction ({videos} videos ranked)")
        elif 0 < videos < TINY_SPLIT:
            out.append(f"{split}: only {videos} videos scored: metrics move in steps of {100 / videos:.0f} points")
    return out
