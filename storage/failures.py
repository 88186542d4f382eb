"""Failures of a store grouped by (state, error class, expert): what `store info` prints.

Failure messages name the file, so grouping by message gives one line per file; grouping by
the error class keeps one line per kind of problem, with a count and a few examples.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

EXAMPLES = 3


def failure_groups(records: pd.DataFrame, examples: int = EXAMPLES) -> list[dict[str, Any]]:
    """One entry per (state, error_class, expert) of failed or quarantined experts, largest first.

    Each entry: ``state``, ``error_class`` (``None`` when unrecorded), ``expert``, ``count``,
    ``videos`` (the first few video ids) and ``messages`` (their messages, which name the files).
    """
    bad = records[(records["kind"] == "expert") & records["state"].isin(["failed", "quarantined"])]
    if bad.empty:
        return []
    cls = bad["error_class"].fillna("").astype(str)
    out = []
    for (state, error_class, expert), grp in bad.groupby([bad["state"].astype(str), cls, bad["name"].astype(str)],
                                                         sort=True):
        head = grp.head(examples)
        out.append({"state": state, "error_class": error_class or None, "expert": expert, "count": len(grp),
                    "videos": head["video_id"].astype(str).tolist(),
                    "messages": head["message"].fillna("").astype(str).tolist()})
    out.sort(key=lambda g: (g["state"] != "failed", -g["count"], g["expert"]))
    return out
