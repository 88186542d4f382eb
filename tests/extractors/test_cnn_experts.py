"""CNN experts (scene, inst, i3d, r2p1d, audio): shapes, sampling, determinism, checkpoints, batching.

Models are the small demo variants on tiny inputs; the paper-size architectures are checked by
parameter names and counts (built on the meta device, so no memory is spent).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from videxperts.extractors.base import ExpertOutput, MediaView
from videxperts.extractors.experts._frames import clip_starts, prepare_frames
from videxperts.extractors.experts.audio import SEGMENT_SAMPLES, VGGish, VGGishExpert, waveform_to_patches
from videxperts.extractors.experts.i3d import I3DExpert, InceptionI3d
from videxperts.extractors.experts.inst import InstExpert, build_resnet
from videxperts.extractors.experts.r2p1d import R2P1DExpert, r2plus1d_34
from videxperts.extractors.experts.scene import SceneExpert
from videxperts.extractors.weights import save_checkpoint

SMALL = {
    "scene": (SceneExpert, {"variant": "densenet121", "fps": 2.0, "size": 32, "batch_size": 3}),
    "inst": (InstExpert, {"variant": "resnet18", "fps": 2.0, "size": 40, "crop": 32, "batch_size": 3}),
    "i3d": (I3DExpert, {"fps": 8.0, "size": 32, "clip_len": 8, "clip_stride": 8, "batch_size": 2}),
    "r2p1d": (R2P1DExpert, {"variant": "r2plus1d_18", "fps": 8.0, "size": 40, "crop": 32, "clip_len": 4,
                            "clip_stride": 4, "batch_size": 2}),
    "audio": (VGGishExpert, {"variant": "vggish_small", "batch_size": 3}),
}
DIMS = {"scene": 1024, "inst": 512, "i3d": 1024, "r2p1d": 512, "audio": 128}


def make(name: str, **over) -> object:
    cls, cfg = SMALL[name]
    e = cls(**{**cfg, "device": "cpu", **over})
    e.load("cpu")
    return e


def frames_view(seconds: float, fps: float, size: int, seed: int = 0, vid: str = "v") -> MediaView:
    """A moving bright square on noise: frames at the expert's rate, 4:3 with short side ``size``."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    h, w = size, size * 4 // 3
    frames = rng.integers(0, 80, (n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        x0 = (i * 5) % (w - 12)
        frames[i, 10:22, x0:x0 + 12] = 250
    return MediaView(video_id=vid, duration=seconds, frames=frames, frame_times=np.arange(n) / fps)


def audio_view(seconds: float, freq: float = 440.0, vid: str = "a", start: float = 0.0) -> MediaView:
    t = np.arange(int(seconds * 16000)) / 16000
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return MediaView(video_id=vid, duration=seconds, audio=wave, sample_rate=16000, audio_start=start)


def view_for(name: str, seconds: float, seed: int = 0, vid: str = "v") -> MediaView:
    if name == "audio":
        return audio_view(seconds, 300.0 + 200 * seed, vid)
    _, cfg = SMALL[name]
    return frames_view(seconds, cfg["fps"], cfg["size"], seed, vid)


def expected_units(name: str, seconds: float) -> int:
    _, cfg = SMALL[name]
    if name == "audio":
        return max(1, int(seconds * 16000) // SEGMENT_SAMPLES)
    n = int(round(seconds * cfg["fps"]))
    if "clip_len" in cfg:
        return len(clip_starts(n, cfg["clip_len"], cfg["clip_stride"]))
    return n


@pytest.fixture(scope="module")
def experts():
    return {name: make(name) for name in SMALL}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_shape_dtype_units_and_timestamps(experts, name):
    e = experts[name]
    assert e.dim == DIMS[name]
    seconds = 2.0
    out = e.extract([view_for(name, seconds)])[0]
    assert isinstance(out, ExpertOutput)
    t = expected_units(name, seconds)
    assert out.features.shape == (t, DIMS[name]) and out.features.dtype == np.float32
    assert np.isfinite(out.features).all() and out.features.std() > 0
    assert out.timestamps.shape == (t,) and np.all(np.diff(out.timestamps) > 0)
    assert out.timestamps[0] == 0.0
    # features depend on the content
    other = e.extract([view_for(name, seconds, seed=3)])[0]
    assert not np.allclose(other.features, out.features)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_determinism_seed_and_checkpoint_round_trip(experts, name, tmp_path):
    view = view_for(name, 1.0)
    a = experts[name].extract([view])[0].features
    b = make(name).extract([view])[0].features  # a fresh model, same seed
    np.testing.assert_array_equal(a, b)
    other = make(name, seed=1)
    c = other.extract([view])[0].features
    assert not np.allclose(a, c)
    # checkpoint round trip: the seed-1 weights saved and reloaded give identical features
    path = tmp_path / f"{name}.pt"
    ident = save_checkpoint(other.model, path)
    assert ident == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    cls, cfg = SMALL[name]
    assert cls(**{**cfg, "weights": str(path)}).provenance()["weights"] == ident  # known before load()
    loaded = make(name, weights=str(path), seed=0)
    np.testing.assert_array_equal(loaded.extract([view])[0].features, c)
    prov = loaded.provenance()
    assert prov["weights"] == ident
    assert experts[name].provenance()["weights"] == "random-init:seed=0"
    for key in ("backbone", "sampling", "extractor_version", "dtype", "variant"):
        assert key in prov
    assert prov["dtype"] == "float32"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_batching_across_views_equals_separate_calls(experts, name):
    e = experts[name]
    v1, v2 = view_for(name, 2.0, seed=1, vid="one"), view_for(name, 1.0, seed=2, vid="two")
    together = e.extract([v1, v2])
    apart = [e.extract([v1])[0], e.extract([v2])[0]]
    for t, a in zip(together, apart, strict=True):
        assert t.features.shape == a.features.shape
        np.testing.assert_allclose(t.features, a.features, rtol=1e-4, atol=1e-4 * np.abs(a.features).max())
        np.testing.assert_array_equal(t.timestamps, a.timestamps)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_empty_view_gives_zero_rows(experts, name):
    out = experts[name].extract([MediaView(video_id="empty", duration=0.0)])[0]
    assert out.features.shape == (0, DIMS[name])


def test_short_video_gets_one_padded_clip_and_windows_concatenate(experts):
    e = experts["i3d"]  # clip_len 8 at 8 fps
    short = frames_view(0.5, 8.0, 32)  # 4 frames < one clip
    out = e.extract([short])[0]
    assert out.features.shape == (1, 1024)
    assert clip_starts(100, 64, 25) == [0, 25]
    # two windows of whole clips give the same rows as one window
    whole = frames_view(2.0, 8.0, 32, seed=4)
    w1 = MediaView("w", 2.0, whole.frames[:8], whole.frame_times[:8])
    w2 = MediaView("w", 2.0, whole.frames[8:], whole.frame_times[8:], window_index=1)
    joined = ExpertOutput.concat(e.extract([w1, w2]), 1024)
    one = e.extract([whole])[0]
    np.testing.assert_allclose(joined.features, one.features, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(joined.timestamps, one.timestamps)


def test_frames_resized_when_decoder_did_not():
    big = np.zeros((2, 240, 320, 3), np.uint8)
    out = prepare_frames(big, 48, 40)
    assert tuple(out.shape) == (2, 40, 40, 3) and out.dtype == torch.uint8


def test_i3d_flow_stream(tmp_path):
    e = I3DExpert(modality="flow", fps=8.0, size=32, clip_len=8, clip_stride=8, device="cpu")
    e.load()
    assert e.model.Conv3d_1a_7x7.conv3d.weight.shape[1] == 2
    out = e.extract([frames_view(1.0, 8.0, 32)])[0]
    assert out.features.shape == (1, 1024) and np.isfinite(out.features).all()
    assert e.provenance()["backbone"] == "inception_i3d_flow"


# --------------------------------------------------------------------------- published naming
def test_i3d_parameter_names_match_converted_checkpoints():
    with torch.device("meta"):
        model = InceptionI3d()
    sd = model.state_dict()
    keys = set(sd)
    for k in ("Conv3d_1a_7x7.conv3d.weight", "Conv3d_1a_7x7.bn.weight", "Conv3d_1a_7x7.bn.running_mean",
              "Conv3d_2b_1x1.conv3d.weight", "Conv3d_2c_3x3.bn.bias", "Mixed_3b.b0.conv3d.weight",
              "Mixed_3b.b1a.bn.running_var", "Mixed_4f.b1b.conv3d.weight", "Mixed_5c.b2b.conv3d.weight",
              "Mixed_5c.b3b.bn.bias", "logits.conv3d.weight", "logits.conv3d.bias"):
        assert k in keys, k
    assert not any(k.startswith(("MaxPool", "end_points")) or "b3a" in k for k in keys)
    assert "Conv3d_1a_7x7.conv3d.bias" not in keys
    assert tuple(sd["Conv3d_1a_7x7.conv3d.weight"].shape) == (64, 3, 7, 7, 7)
    assert tuple(sd["Mixed_5c.b0.conv3d.weight"].shape) == (384, 832, 1, 1, 1)
    assert tuple(sd["logits.conv3d.weight"].shape) == (400, 1024, 1, 1, 1)
    n = sum(p.numel() for p in model.parameters())
    assert 12_000_000 < n < 13_000_000  # the converted RGB I3D: 12,697,264 parameters


def test_vggish_parameter_names_and_count_match_torchvggish():
    with torch.device("meta"):
        sd = VGGish().state_dict()
    expected = {f"features.{i}.{p}" for i in (0, 3, 6, 8, 11, 13) for p in ("weight", "bias")}
    expected |= {f"embeddings.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}
    assert set(sd) == expected
    assert tuple(sd["embeddings.0.weight"].shape) == (4096, 512 * 4 * 6)
    assert sum(v.numel() for v in sd.values()) == 72_141_184  # the released VGGish


def test_vggish_frontend_segments_and_mel():
    from videxperts.extractors.experts.audio import LogMelFrontend

    fe = LogMelFrontend()
    assert waveform_to_patches(np.zeros(3 * SEGMENT_SAMPLES, np.float32), fe).shape == (3, 96, 64)
    assert waveform_to_patches(np.zeros(3 * SEGMENT_SAMPLES + 9000, np.float32), fe).shape == (3, 96, 64)
    assert waveform_to_patches(np.zeros(4000, np.float32), fe).shape == (1, 96, 64)
    assert waveform_to_patches(np.zeros(4000, np.float32), fe, pad_short=False).shape == (0, 96, 64)
    assert waveform_to_patches(np.zeros(0, np.float32), fe).shape == (0, 96, 64)
    silent = waveform_to_patches(np.zeros(SEGMENT_SAMPLES, np.float32), fe)
    assert torch.allclose(silent, torch.full_like(silent, float(np.log(0.01))))
    # a 1 kHz tone peaks in the mel band around 1 kHz (HTK mel: band ~ 22 of 64 over 125-7500 Hz)
    t = np.arange(SEGMENT_SAMPLES) / 16000
    tone = waveform_to_patches(np.sin(2 * np.pi * 1000 * t).astype(np.float32), fe)
    peak = int(tone[0].mean(0).argmax())
    assert 19 <= peak <= 24


def test_audio_resampled_and_timestamps_offset(experts):
    e = experts["audio"]
    v = audio_view(2.0, start=9.6)
    out = e.extract([v])[0]
    np.testing.assert_allclose(out.timestamps, [9.6, 10.56])
    t = np.arange(int(2.0 * 44100)) / 44100
    v44 = MediaView("a44", 2.0, audio=(0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sample_rate=44100)
    out44 = e.extract([v44])[0]
    assert out44.features.shape == (2, 128)
    np.testing.assert_allclose(out44.features, out.features, rtol=0.05, atol=0.05 * np.abs(out.features).max())


def test_paper_architectures_build_with_published_shapes():
    with torch.device("meta"):
        wsl = build_resnet("resnext101_32x48d")
        r34 = r2plus1d_34(400)
    n_wsl = sum(p.numel() for p in wsl.parameters())
    assert 820_000_000 < n_wsl < 840_000_000  # ResNeXt-101 32x48d: 829M
    assert tuple(wsl.layer1[0].conv2.weight.shape) == (1536, 48, 3, 3)  # 32 groups x 48 channels
    sd34 = r34.state_dict()
    assert tuple(sd34["layer2.0.conv2.0.0.weight"].shape) == (288, 128, 1, 3, 3)  # Caffe2 mid-planes
    assert tuple(sd34["layer4.2.conv2.0.3.weight"].shape) == (512, 1152, 3, 1, 1)
    assert "stem.0.weight" in sd34 and "fc.weight" in sd34
    assert 63_000_000 < sum(p.numel() for p in r34.parameters()) < 64_000_000  # R(2+1)D-34: 63.5M
    scene = SceneExpert()  # paper defaults
    assert scene.dim == 2208 and scene.variant == "densenet161"
    i3d = I3DExpert()
    assert i3d.needs.frames.fps == 25 and i3d.needs.frames.clip_len == 64 and i3d.needs.frames.clip_stride == 25
    r2 = R2P1DExpert()
    assert r2.variant == "r2plus1d_34" and r2.needs.frames.clip_len == 32 and r2.needs.frames.fps == 30


def test_paper_i3d_forward_at_small_spatial_size():
    m = InceptionI3d().eval()
    from videxperts.extractors.weights import init_or_load

    init_or_load(m, None, seed=0)
    with torch.inference_mode():
        y = m.features(torch.zeros(1, 3, 16, 64, 64).uniform_(-1, 1))
        logits = m(torch.zeros(1, 3, 16, 64, 64))
    assert y.shape == (1, 1024) and logits.shape == (1, 400)
