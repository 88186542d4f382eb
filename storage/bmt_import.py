"""Import the published BMT feature files into a feature store (``videxperts store import-bmt``).

The BMT/BMHRL release ships features extracted elsewhere (v-iashin/video_features):
``i3d_25fps_stack64step64_2stream_npy/<vid>_rgb.npy`` and ``<vid>_flow.npy`` (each ``[T, 1024]``
float32, one row per 64-frame stack at 25 fps, i.e. every 2.56 s) and ``vggish_npy/<vid>.npy``
(``[T, 128]``, one row per 0.96 s). They become the store's ``i3d`` expert (the two streams
**summed**, as the models consume them; 1024-d) and ``audio`` expert (128-d), with timestamps
at each row's start (``k * 2.56`` and ``k * 0.96`` seconds) and a provenance that names the
import, so a user with those files trains without re-extracting; videos are streamed one at a
time (memory-mapped, never unpickled) and committed in batches.

A video whose file is missing, unreadable or of the wrong shape is recorded as *failed* for
that expert with the reason (one line), never fatal; the readers then treat that modality as
missing, which is what the published loader's zero-row fallback expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

I3D_STEP_S = 64 / 25.0  # one stack of 64 frames at 25 fps
VGGISH_STEP_S = 0.96
I3D_DIM, VGGISH_DIM = 1024, 128
I3D_PROVENANCE = {
    "backbone": "inception_i3d_rgb+flow",
    "weights": "imported:bmt-release",
    "extractor_version": "bmt-import-1",
    "dtype": "float32",
    "modality": "rgb+flow",
    "streams": "sum",
    "sampling": {"fps": 25.0, "clip_len": 64, "clip_stride": 64},
    "source": "v-iashin/BMT release: i3d_25fps_stack64step64_2stream_npy (v-iashin/video_features, PWC-Net flow)",
}
VGGISH_PROVENANCE = {
    "backbone": "vggish",
    "weights": "imported:bmt-release",
    "extractor_version": "bmt-import-1",
    "dtype": "float32",
    "sampling": {"segment_seconds": 0.96, "hop_seconds": 0.96},
    "source": "v-iashin/BMT release: vggish_npy (v-iashin/video_features)",
}


class _Bad(Exception):
    """One video's file cannot be used; the message says why."""


def _load(path: Path, dim: int) -> np.ndarray:
    if not path.is_file():
        raise _Bad(f"missing file {path.name}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _Bad(f"{path.name}: not a readable .npy array ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise _Bad(f"{path.name}: expected [T, {dim}], got {list(arr.shape)}")
    out = np.asarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise _Bad(f"{path.name}: contains NaN or inf")
    return out


def bmt_video_ids(i3d_dir: Path | None, vggish_dir: Path | None) -> list[str]:
    ids: set[str] = set()
    if i3d_dir is not None:
        for p in i3d_dir.glob("*.npy"):
            for suffix in ("_rgb.npy", "_flow.npy"):
                if p.name.endswith(suffix):
                    ids.add(p.name[: -len(suffix)])
    if vggish_dir is not None:
        ids.update(p.stem for p in vggish_dir.glob("*.npy"))
    return sorted(ids)


def import_bmt_features(
    store_url: str,
    i3d_dir: str | Path | None,
    vggish_dir: str | Path | None = None,
    *,
    video_ids: list[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    commit_every: int = 64,
) -> dict[str, Any]:
    """Stream the BMT files into ``store_url`` (created when missing); returns a summary."""
    from videxperts.storage.manifest import check_video_id
    from videxperts.storage.store import FeatureStore

    i3d_p = Path(i3d_dir) if i3d_dir is not None else None
    vgg_p = Path(vggish_dir) if vggish_dir is not None else None
    if i3d_p is None and vgg_p is None:
        raise UserError("import-bmt: give --i3d DIR (<vid>_rgb.npy, <vid>_flow.npy) and/or --vggish DIR (<vid>.npy)")
    for p, what in ((i3d_p, "--i3d"), (vgg_p, "--vggish")):
        if p is not None and not p.is_dir():
            raise UserError(f"import-bmt: {what} {p} is not a folder")
    ids = sorted(video_ids) if video_ids is not None else bmt_video_ids(i3d_p, vgg_p)
    if not ids:
        raise UserError(f"import-bmt: no BMT feature files (<vid>_rgb.npy / <vid>.npy) in {i3d_p or ''} {vgg_p or ''}".strip())
    for vid in ids:
        check_video_id(vid, "import-bmt: ")

    store = FeatureStore.open(store_url, mode="a", storage_options=storage_options)
    experts = []
    if i3d_p is not None:
        store.ensure_expert("i3d", I3D_DIM, I3D_PROVENANCE)
        experts.append("i3d")
    if vgg_p is not None:
        store.ensure_expert("audio", VGGISH_DIM, VGGISH_PROVENANCE)
        experts.append("audio")
    done = {e: 0 for e in experts}
    failed: dict[str, list[str]] = {e: [] for e in experts}
    with store.writer("import-bmt") as w:
        for k, vid in enumerate(ids):
            if i3d_p is not None:
                try:
                    rgb, flow = _load(i3d_p / f"{vid}_rgb.npy", I3D_DIM), _load(i3d_p / f"{vid}_flow.npy", I3D_DIM)
                    if len(rgb) != len(flow):
                        raise _Bad(f"rgb has {len(rgb)} rows but flow has {len(flow)}")
                    w.write(vid, "i3d", rgb + flow, np.arange(len(rgb)) * I3D_STEP_S)
                    done["i3d"] += 1
                except _Bad as exc:
                    w.fail(vid, "i3d", "BMTImportError", str(exc), 1)
                    failed["i3d"].append(f"{vid}: {exc}")
            if vgg_p is not None:
                try:
                    aud = _load(vgg_p / f"{vid}.npy", VGGISH_DIM)
                    w.write(vid, "audio", aud, np.arange(len(aud)) * VGGISH_STEP_S)
                    done["audio"] += 1
                except _Bad as exc:
                    w.fail(vid, "audio", "BMTImportError", str(exc), 1)
                    failed["audio"].append(f"{vid}: {exc}")
            if (k + 1) % commit_every == 0:
                w.commit()
        w.commit()
    return {
        "store": store_url,
        "videos": len(ids),
        "experts": experts,
        "done": done,
        "failed": {e: len(v) for e, v in failed.items()},
        "failures": {e: v[:20] for e, v in failed.items() if v},
    }
