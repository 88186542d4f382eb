"""Import Karpathy-split captions (``dataset_coco.json`` / ``dataset_flickr30k.json``) for raw images.

The JSON lists ``images`` with ``filename`` (COCO also ``filepath``: train2014/val2014), a
``split`` (train, val, test, and COCO's ``restval``) and ``sentences`` with the ``raw`` text.
Each image becomes a manifest row (id = file stem; path: the image itself when the image root
is inside ``DIR``, else a per-file symlink under ``DIR/videos/``, the link folder that manifest
readers accept, as ``data import`` makes for videos) and its first ``captions_per_image``
raw sentences become captions 0..4. ``restval`` goes to train by default, as SCAN's 113,287
COCO training images do. Image sizes come from the file headers (PIL, nothing decoded); a
missing or unreadable image is an error naming it, before anything is written. The result is
a dataset dir that ``videxperts extract DIR --experts regions`` turns into a store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from videxperts.errors import UserError

SPLIT_MAP = {"train": "train", "val": "val", "test": "test"}
RESTVAL = ("train", "val", "skip")


def import_karpathy(json_path: str | os.PathLike[str], images_root: str | os.PathLike[str],
                    out: str | os.PathLike[str], *, restval: str = "train", captions_per_image: int = 5,
                    limit: int | None = None) -> dict[str, Any]:
    """Write ``out/manifest.parquet`` and ``out/captions.parquet``; returns a summary."""
    from PIL import Image, UnidentifiedImageError

    from videxperts.storage.manifest import check_video_id, write_captions, write_manifest

    if restval not in RESTVAL:
        raise UserError(f"--restval must be one of {', '.join(RESTVAL)}, got {restval!r}")
    json_path, root, out = Path(json_path), Path(images_root).resolve(), Path(out)
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        entries = doc["images"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{json_path}: not a Karpathy split file with an 'images' list ({exc})") from exc
    if not root.is_dir():
        raise UserError(f"{images_root}: no such image folder")
    out.mkdir(parents=True, exist_ok=True)
    inside = root == out.resolve() or out.resolve() in root.parents
    manifest, captions, seen, links = [], [], set(), []
    for n, e in enumerate(entries[:limit] if limit else entries):
        where = f"{json_path}: image {n}"
        try:
            rel = Path(e.get("filepath") or "") / e["filename"]
            split = "train" if e["split"] == "restval" and restval == "train" else \
                "val" if e["split"] == "restval" and restval == "val" else SPLIT_MAP.get(e["split"])
            raws = [s["raw"].strip() for s in e["sentences"]]
        except (KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{where}: lacks filename/split/sentences ({exc})") from exc
        if e["split"] == "restval" and restval == "skip":
            continue
        if split is None:
            raise UserError(f"{where}: unknown split {e['split']!r}")
        if len(raws) < captions_per_image or not all(raws[:captions_per_image]):
            raise UserError(f"{where} ({rel}): {len(raws)} sentences, need {captions_per_image} non-empty")
        vid = check_video_id(rel.stem, f"{where}: ")
        if vid in seen:
            raise UserError(f"{where}: two images named {vid!r}")
        seen.add(vid)
        src = root / rel
        try:
            with Image.open(src) as im:  # header only
                width, height = im.size
        except (OSError, UnidentifiedImageError) as exc:
            raise UserError(f"{src}: missing or not an image ({exc})") from exc
        links.append((out / "videos" / rel, src))
        manifest.append({"video_id": vid, "path": (Path("videos") / rel).as_posix() if not inside
                         else (src.relative_to(out.resolve())).as_posix(), "duration": 0.04, "fps": 25.0,
                         "width": int(width), "height": int(height), "has_audio": False, "split": split})
        captions += [{"video_id": vid, "caption_idx": k, "caption": raws[k], "split": split}
                     for k in range(captions_per_image)]
    if not manifest:
        raise UserError(f"{json_path}: no images to import")
    for link, src in [] if inside else links:
        if link.is_symlink() and os.path.realpath(link) == str(src):
            continue
        if link.exists() or link.is_symlink():
            raise UserError(f"{link} exists and is not a link to {src}")
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, link)
    write_manifest(out, manifest)
    write_captions(out, captions)
    splits = {s: sum(r["split"] == s for r in manifest) for s in ("train", "val", "test")}
    return {"out": str(out), "images": len(manifest), "captions": len(captions), "splits": splits,
            "linked": 0 if inside else len(links)}
