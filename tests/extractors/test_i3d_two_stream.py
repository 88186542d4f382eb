"""Two-stream I3D (rgb + flow summed, as BMT/BMHRL use it) and the `anet` extraction profile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.extractors.test_cnn_experts import frames_view
from videxperts.extractors.experts._frames import ExpertConfigError
from videxperts.extractors.experts.i3d import I3DExpert
from videxperts.extractors.registry import build_expert, load_profile

TINY = {"fps": 8.0, "size": 32, "clip_len": 8, "clip_stride": 8, "device": "cpu", "batch_size": 2}


def test_two_stream_is_the_sum_of_the_streams(tmp_path):
    view = frames_view(2.0, 8.0, 32, seed=1)
    rgb = I3DExpert(modality="rgb", seed=3, **TINY).extract([view])[0]
    flow = I3DExpert(modality="flow", seed=4, **TINY).extract([view])[0]
    both_e = I3DExpert(modality="rgb+flow", seed=3, **TINY)
    both = both_e.extract([view])[0]
    assert both.features.shape == (2, 1024)
    np.testing.assert_allclose(both.features, rgb.features + flow.features, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(both.timestamps, rgb.timestamps)
    prov = both_e.provenance()
    assert prov["modality"] == "rgb+flow" and prov["streams"] == "sum"
    assert prov["weights"] == "rgb=random-init:seed=3;flow=random-init:seed=4"
    # each stream from its own checkpoint (the published rgb_imagenet.pt / flow_imagenet.pt layout)
    e_rgb, e_flow = I3DExpert(modality="rgb", seed=7, **TINY), I3DExpert(modality="flow", seed=8, **TINY)
    e_rgb.load()
    e_flow.load()
    torch.save(e_rgb.model.state_dict(), tmp_path / "rgb.pt")
    torch.save(e_flow.model.state_dict(), tmp_path / "flow.pt")
    loaded = I3DExpert(modality="rgb+flow", weights=str(tmp_path / "rgb.pt"), flow_weights=str(tmp_path / "flow.pt"), **TINY)
    planned = loaded.provenance()["weights"]
    out = loaded.extract([view])[0]
    want = e_rgb.extract([view])[0].features + e_flow.extract([view])[0].features
    np.testing.assert_allclose(out.features, want, rtol=1e-4, atol=1e-5)
    assert loaded.provenance()["weights"] == planned and planned.startswith("rgb=sha256:") and ";flow=sha256:" in planned
    with pytest.raises(ExpertConfigError, match="flow_weights only applies"):
        I3DExpert(modality="rgb", flow_weights=str(tmp_path / "flow.pt"), **TINY)


def test_anet_profile_samples_as_published():
    p = load_profile("anet")
    assert set(p["experts"]) == {"i3d", "audio"}
    p["experts"]["i3d"] |= {"size": 32, "crop": 32, "device": "cpu"}  # tiny pixels, published timing
    i3d = build_expert("i3d", p)
    assert (i3d.modality, i3d.fps, i3d.clip_len, i3d.clip_stride, i3d.dim) == ("rgb+flow", 25.0, 64, 64, 1024)
    assert build_expert("audio", p).dim == 128
    out = i3d.extract([frames_view(6.0, 25.0, 32)])[0]  # 150 frames: stacks at frames 0 and 64
    assert out.features.shape == (2, 1024)
    np.testing.assert_allclose(out.timestamps, [0.0, 2.56])
