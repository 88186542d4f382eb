"""The ``videxperts caption`` job: a captioning run's best model captions segments of a store's videos.

Segments come from a file (ActivityNet layout ``{vid: {"timestamps": [[s, e], ...]}}`` or a
submission's ``{"results": {vid: [{"timestamp": [s, e]}]}}``) or are uniform windows over each
video. Output is the ActivityNet submission JSON.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from videxperts.errors import UserError


def read_segment_file(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """{video_id: [(start, end), ...]} of a segments JSON (ActivityNet reference or submission layout)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable segments JSON ({exc})") from None
    items = doc.get("results", doc) if isinstance(doc, dict) else None
    if not isinstance(items, dict):
        raise UserError(f'{path}: expected {{video_id: {{"timestamps": [[start, end], ...]}}}}')
    out: dict[str, list[tuple[float, float]]] = {}
    for vid, entry in items.items():
        stamps = entry.get("timestamps") if isinstance(entry, dict) else [e.get("timestamp") for e in entry
                                                                           if isinstance(e, dict)]
        try:
            out[str(vid)] = [(float(s), float(e)) for s, e in stamps]
        except (TypeError, ValueError):
            raise UserError(f"{path}: video {vid!r}: timestamps must be [start, end] pairs of seconds") from None
    return out


def uniform_windows(duration: float, window: float) -> list[tuple[float, float]]:
    """Back-to-back windows of ``window`` seconds covering ``duration`` (the last one shorter)."""
    if duration <= 0:
        return [(0.0, 0.0)]
    n = max(1, int(-(-duration // window)))
    return [(i * window, min((i + 1) * window, duration)) for i in range(n)]


def caption_videos(ref: str, store: str, videos: list[str] | None = None, segments: str | None = None,
                   window: float = 10.0, data: str | None = None, beam: int | None = None,
                   tracking_uri: str | None = None) -> dict[str, Any]:
    import torch

    from videxperts.storage.reader import StoreReader
    from videxperts.training.captioning.data import load_segments
    from videxperts.training.captioning.evaluation import caption_split, submission
    from videxperts.training.captioning.vocab import vocabulary_for
    from videxperts.training.checkpoint import load_model_checkpoint, resolve_checkpoint
    from videxperts.training.preflight import check_config_matches_store, open_store

    with tempfile.TemporaryDirectory(prefix="vx-cap-") as tmp:
        path = resolve_checkpoint(ref, tracking_uri, tmp)
        cfg, model, _ = load_model_checkpoint(path)
    if getattr(cfg, "task", None) != "captioning":
        raise UserError(f"run {ref} is a {cfg.task} run, not a captioning one")
    opened = open_store(store)
    check_config_matches_store(cfg, opened, f"checkpoint {ref}", store)
    reader = StoreReader(opened)
    present = set(map(str, reader.video_ids))
    if segments:
        wanted = read_segment_file(segments)
        ids = videos or sorted(wanted)
    else:
        wanted, ids = {}, videos or sorted(present)
    missing = [v for v in ids if v not in present]
    if missing:
        raise UserError(f"videos not in store {store}: {', '.join(missing[:5])}"
                        f"{' ...' if len(missing) > 5 else ''} (extract them first)")
    durations = _durations(reader, cfg, ids, data)
    segs = {v: {"duration": durations[v],
                "segments": [("", s, e) for s, e in (wanted.get(v) or uniform_windows(durations[v], window))]}
            for v in ids}
    vocab = vocabulary_for(cfg.data.dataset, cfg.data.min_freq, f"checkpoint {ref}: data.dataset")
    split = load_segments(reader, cfg, ids, segs, vocab)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    sentences = caption_split(model, split, device, cfg.train.eval_batch_size, cfg.decode.max_len,
                              beam if beam is not None else cfg.decode.beam)
    out = submission(split, sentences)
    out["external_data"] = {"used": True, "details": f"videxperts {cfg.name} ({cfg.model.arch}); features: "
                            f"{cfg.data.video_expert}, {cfg.data.audio_expert}"}
    return out


def _durations(reader: Any, cfg: Any, ids: list[str], data: str | None) -> dict[str, float]:
    """Seconds per video: the manifest's when ``data`` is given, else the video features' time span."""
    import numpy as np

    if data is not None:
        from videxperts.storage.manifest import read_manifest

        m = read_manifest(data).to_pydict()
        known = dict(zip(m["video_id"], m["duration"], strict=True))
        if all(known.get(v) for v in ids):
            return {v: float(known[v]) for v in ids}
    ts = reader.load_timestamps(cfg.data.video_expert, ids)
    _, mask = reader.load_expert(cfg.data.video_expert, ids, mode="seq")
    out = {}
    for i, v in enumerate(ids):
        t = ts[i][mask[i]]
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        out[v] = float(t[-1] + step) if len(t) else 0.0
    return out

