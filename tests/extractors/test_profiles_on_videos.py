"""Every expert of both profiles, built by the registry, runs through one decode on a real
sample video and on a synthetic clip.

The paper profile keeps its published architectures (DenseNet-161, ResNeXt-101 32x48d, I3D,
R(2+1)D-34, VGGish, ...) and only samples fewer frames here, so the test stays within CPU
reach; weights are seeded random initialisation, as offline tests must be.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videxperts.extractors.decode import decode_video
from videxperts.extractors.registry import build_expert, load_profile

# Fewer units per expert on CPU; the architecture, clip length and input size stay the paper's.
PAPER_CPU_RATES = {"scene": 0.5, "inst": 0.25, "i3d": 12.5, "r2p1d": 6.0, "face": 1.0, "regions": 0.2}


@pytest.fixture(scope="module")
def videos(sample_videos, synth_dataset):
    """bigbuckbunny.mp4 (1280x720, 5.3 s, 25 fps, with audio) and a 2 s synthetic clip with a face, a word and audio."""
    import pyarrow.parquet as pq

    manifest = pq.read_table(synth_dataset / "manifest.parquet").to_pylist()
    face_clip = next(r for r in manifest if r["has_face"] and r["has_audio"])
    return {"real": next(p for p in sample_videos if p.name == "bigbuckbunny.mp4"),
            "synth": synth_dataset / face_clip["path"]}


@pytest.mark.slow
@pytest.mark.parametrize("source", ["real", "synth"])
@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_every_expert_runs_on_a_video(profile, source, videos):
    torch.manual_seed(0)
    prof = load_profile(profile)
    experts = {}
    for name in sorted(prof["experts"]):
        cfg = dict(prof["experts"][name])
        if profile == "paper" and name in PAPER_CPU_RATES:
            cfg["fps"] = PAPER_CPU_RATES[name]
        experts[name] = build_expert(name, cfg)
    assert sorted(experts) == ["audio", "face", "i3d", "inst", "ocr", "r2p1d", "regions", "scene", "speech"]

    stats: dict = {}
    views = decode_video(videos[source], {n: e.needs for n, e in experts.items()}, video_id=source, stats=stats)
    assert set(views) == set(experts)

    for name, expert in experts.items():
        expert.load("cpu")
        (out,) = expert.extract([views[name]])
        assert out.features.dtype == np.float32 and out.features.shape[1] == expert.dim, name
        assert np.isfinite(out.features).all(), name
        assert np.all(np.diff(out.timestamps) >= 0), name
        assert out.timestamps.size == 0 or 0 <= out.timestamps.min() <= out.timestamps.max() <= views[name].duration + 0.1, name
        if name in ("scene", "inst", "i3d", "r2p1d", "audio", "regions") or (source == "synth" and name == "ocr"):
            assert out.features.shape[0] >= 1, f"{name} produced no rows on the {source} video"
        prov = expert.provenance()
        assert prov["extractor_version"] and prov["weights"], name
        if name in ("scene", "inst", "i3d", "r2p1d", "audio", "regions"):
            assert prov["weights"] == "random-init:seed=0", name
        del expert
    assert views["audio"].audio is not None and views["audio"].sample_rate == 16_000
