"""`videxperts store repair`: move unreadable objects aside and mark the pairs they held pending.

Damage never silently shrinks a store: every object that cannot be read is moved, not deleted,
under ``damaged/<timestamp>/`` (same relative path), and every (video, expert) pair whose rows
sit in an unreadable array or chunk gets a ``failed`` record with error class ``StoreDamaged``
(attempts 0, so the retry cap is not spent). The next ``extract`` then redoes exactly those
pairs: failed pairs are pending, done ones are skipped. Pairs named only by an unreadable commit
record are unknown by nature; once it is moved aside they have no record, so they are pending too.

What is repaired, in order:
- the root ``zarr.json`` (missing or unreadable): rewritten;
- ``HEAD.json`` or the base it names (unreadable): moved aside, HEAD pointed at the newest
  readable base, or removed (the folded records are then gone: their pairs are pending);
- unreadable commit records and registry entries: moved aside (an expert is registered again
  by the next ``extract``; its surviving records come back if its settings are unchanged);
- unreadable arrays, chunks, rows past an array's end, non-finite values: their pairs are
  marked failed (the bad bytes stay where they are; ``compact`` drops them, nothing reads them).
"""

from __future__ import annotations

import json
import time
from typing import Any

from videxperts.storage._fs import StoreRoot
from videxperts.storage._registry import StoreDamaged, group_json
from videxperts.storage.store import FORMAT_VERSION, FeatureStore

DAMAGED_DIR = "damaged"
ERROR_CLASS = "StoreDamaged"


def _move_aside(root: StoreRoot, rel: str, stamp: str) -> str:
    dest = f"{DAMAGED_DIR}/{stamp}/{rel}"
    src_path, dst_path = root.path(rel), root.path(dest)
    if root.local:
        import os

        os.makedirs(os.path.dirname(dst_path), exist_ok=True)
        os.replace(src_path, dst_path)
    else:
        root.fs.mv(src_path, dst_path, recursive=True)
    root._invalidate(rel)
    return dest


def _root_ok(root: StoreRoot) -> bool:
    try:
        return "videxperts_store" in json.loads(root.read_bytes("zarr.json")).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False


def _fix_head(root: StoreRoot, stamp: str, moved: list[str]) -> None:
    """HEAD.json must parse and name a base whose index reads; else the newest such base, or none."""
    store = FeatureStore(root, "a")
    try:
        base = store._read_head()
        if base is not None:
            store._base(base)
        return
    except StoreDamaged:
        pass
    if root.exists("HEAD.json"):
        try:
            base = json.loads(root.read_bytes("HEAD.json")).get("base")
        except (OSError, ValueError, AttributeError):
            base = None
        if isinstance(base, str) and root.exists(f"base/{base}"):
            moved.append(_move_aside(root, f"base/{base}", stamp))
    good = None
    for gen in sorted((n for n in root.list_names("base") if n != "zarr.json"), reverse=True):
        try:
            FeatureStore(root, "a")._base(gen)
            good = gen
            break
        except StoreDamaged:
            continue
    if good is None:
        if root.exists("HEAD.json"):
            moved.append(_move_aside(root, "HEAD.json", stamp))
    else:
        root.put_atomic("HEAD.json", json.dumps({"base": good}).encode())


def repair(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Repair the store at ``url``; returns what was moved aside and how many pairs are pending again."""
    root = StoreRoot(str(url), dict(storage_options or {}))
    if not any(root.exists(d) for d in ("zarr.json", "experts", "commits")):
        raise StoreDamaged(f"no feature store at {url}")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    moved: list[str] = []
    fixed: list[str] = []
    if not _root_ok(root):
        if root.exists("zarr.json"):
            moved.append(_move_aside(root, "zarr.json", stamp))
        root.put_atomic("zarr.json", group_json({"videxperts_store": FORMAT_VERSION}))
        fixed.append("zarr.json")
    _fix_head(root, stamp, moved)
    store = FeatureStore.open(url, mode="a", storage_options=storage_options)
    report = store.verify_report()
    marked = 0
    pairs: set[tuple[str, str, str]] = set()
    for d in report:
        if d.object.startswith("commits/") and d.object.endswith(".parquet"):
            moved.append(_move_aside(root, d.object, stamp))
        elif d.object.startswith(("experts/", "text/")) and d.object.endswith("/zarr.json") and d.kind:
            folder = d.object.rsplit("/", 1)[0]  # the entry's folder, with or without its zarr.json
            if root.exists(folder):
                moved.append(_move_aside(root, folder, stamp))
        for v in d.videos:
            if d.kind and d.name:
                pairs.add((d.kind, d.name, v))
    if pairs:
        reason = "rows unreadable in the store (see store verify); extract again"
        text = store.snapshot().records
        text = text[(text["kind"] == "text") & (text["state"] == "done")]
        with store.writer("repair") as w:
            for kind, name, vid in sorted(pairs):
                if kind == "expert":
                    w.fail(vid, name, ERROR_CLASS, reason, attempts=0)
                    marked += 1
                    continue
                caps = text[(text["name"] == name) & (text["video_id"] == vid)]["caption_idx"]
                for idx in sorted(int(i) for i in caps):
                    w.fail_text(vid, idx, name, ERROR_CLASS, reason)
                    marked += 1
    return {"url": store.url, "damage": [d.to_dict() for d in report], "moved_aside": moved, "rewritten": fixed,
            "pairs_marked_pending": marked}
