"""Tiny timed-caption datasets and feature stores for the captioning tests (real parquet, real Zarr).

Each video has 2-3 segments; a segment shows one colour and one shape: the video rows inside it
carry the colour's and the shape's code, the audio rows the colour's, and its caption names
both ("a red circle moves then stops"), so a captioner can learn far above chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from videxperts.storage.store import FeatureStore

COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["circle", "square", "triangle"]
VERBS = ["moves then stops", "spins and falls", "appears"]
STEP_V, STEP_A = 2.56, 0.96
PROVENANCE = {"backbone": "synthetic", "weights": "random-init:seed=0", "sampling": {},
              "extractor_version": "1", "dtype": "float32"}

TINY = {
    "task": "captioning",
    "name": "tiny-bmhrl",
    "model": {"arch": "bmhrl", "d_vid": 16, "d_aud": 8, "d_model": 16, "d_caps": 12, "heads": 2, "layers": 1,
              "dropout": 0.0, "ff_vid": 16, "ff_aud": 8, "ff_caps": 16, "goal_dim": 4, "goal_heads": 2,
              "critic": {"hidden": 8, "lstm_layers": 1, "gru_layers": 1}},
    "rl": {"warmstart_epochs": 1},
    "optim": {"lr": 0.003, "warmstart_lr": 0.003},
    "train": {"batch_size": 8, "eval_batch_size": 16, "epochs": 3, "seed": 0, "val_scorer": "nltk"},
    "decode": {"max_len": 12},
}


def tiny_cfg(dataset: str | None = None, **over: dict) -> dict:
    import copy

    cfg = copy.deepcopy(TINY)
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    if dataset is not None:
        cfg.setdefault("data", {})["dataset"] = str(dataset)
    return cfg


def make_dataset(root: Path, videos: int = 12, seed: int = 0, d_vid: int = 16, d_aud: int = 8,
                 store: bool = True) -> tuple[Path, str]:
    """(dataset dir, store url): manifest + timed captions, and i3d/audio features in a Zarr store."""
    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    manifest, captions, feats = [], [], {}
    for i in range(videos):
        vid = f"v{i:03d}"
        split = "train" if i < videos * 2 // 3 else ("val" if i % 2 == 0 else "test")
        duration = float(rng.uniform(12, 24))
        tv, ta = int(duration / STEP_V), int(duration / STEP_A)
        video = rng.normal(0, 0.1, (tv, d_vid)).astype(np.float32)
        audio = rng.normal(0, 0.1, (ta, d_aud)).astype(np.float32)
        n = 2 + i % 2
        bounds = np.linspace(0, duration, n + 1)
        for j in range(n):
            c, s, verb = rng.integers(len(COLOURS)), rng.integers(len(SHAPES)), rng.integers(len(VERBS))
            start, end = float(bounds[j]), float(bounds[j + 1])
            rv = slice(int(tv * start / duration), max(int(tv * end / duration), int(tv * start / duration) + 1))
            ra = slice(int(ta * start / duration), max(int(ta * end / duration), int(ta * start / duration) + 1))
            video[rv, c] += 1.0
            video[rv, len(COLOURS) + s] += 1.0
            video[rv, len(COLOURS) + len(SHAPES) + verb] += 1.0
            audio[ra, c] += 1.0
            captions.append({"video_id": vid, "caption_idx": j, "split": split, "start": start, "end": end,
                             "caption": f"a {COLOURS[c]} {SHAPES[s]} {VERBS[verb]}"})
        manifest.append({"video_id": vid, "path": f"{vid}.mp4", "duration": duration, "fps": 25.0, "width": 64,
                         "height": 64, "has_audio": True, "split": split})
        feats[vid] = (video, audio)
    pq.write_table(pa.Table.from_pylist(manifest, schema=pa.schema([
        ("video_id", pa.string()), ("path", pa.string()), ("duration", pa.float64()), ("fps", pa.float64()),
        ("width", pa.int32()), ("height", pa.int32()), ("has_audio", pa.bool_()), ("split", pa.string())])),
        data / "manifest.parquet")
    pq.write_table(pa.Table.from_pylist(captions, schema=pa.schema([
        ("video_id", pa.string()), ("caption_idx", pa.int32()), ("caption", pa.string()), ("split", pa.string()),
        ("start", pa.float64()), ("end", pa.float64())])), data / "captions.parquet")
    url = str(root / "store.zarr")
    if store:
        st = FeatureStore.open(url, mode="w")
        st.ensure_expert("i3d", d_vid, PROVENANCE)
        st.ensure_expert("audio", d_aud, PROVENANCE)
        w = st.writer("test")
        for vid, (video, audio) in feats.items():
            w.write(vid, "i3d", video, np.arange(len(video), dtype=np.float32) * STEP_V)
            w.write(vid, "audio", audio, np.arange(len(audio), dtype=np.float32) * STEP_A)
        w.close()
    return data, url
