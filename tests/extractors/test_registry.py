"""videxperts.extractors.registry: profiles load and validate; every CNN expert builds from the demo profile."""

from __future__ import annotations

import numpy as np
import pytest

from videxperts.errors import UserError
from videxperts.extractors.base import Expert, MediaView
from videxperts.extractors.registry import (
    EXPERT_CLASSES,
    ProfileError,
    available_experts,
    build_expert,
    load_profile,
)

CNN = ["audio", "i3d", "inst", "r2p1d", "scene"]


def test_available_experts_sorted_and_complete():
    assert available_experts() == sorted(["scene", "inst", "i3d", "r2p1d", "audio", "ocr", "face", "speech", "regions"])
    assert EXPERT_CLASSES["audio"] == "videxperts.extractors.experts.audio:VGGishExpert"


@pytest.mark.parametrize("profile", ["demo", "paper"])
def test_profiles_have_the_agreed_shape(profile):
    p = load_profile(profile)
    assert p["name"] == profile and p["source"].endswith(f"extract/{profile}.yaml")
    assert set(p["experts"]) == set(available_experts())
    assert p["decoder"]["backend"] == "decord"
    assert p["experts"]["ocr"] == {"fps": 1.0, "min_confidence": 0.5, "word_encoder": "minilm"}
    assert p["experts"]["face"] == {"fps": 2.0, "detector": "mtcnn", "embedding": "resnet50", "dim": 512, "seed": 0}
    assert p["experts"]["speech"] == {"engine": "faster-whisper", "word_encoder": "minilm"}
    assert set(p["text_encoders"]) == {"minilm", "wordvec", "gpt2"}


def test_every_cnn_expert_builds_from_the_demo_profile():
    p = load_profile("demo")
    dims = {}
    for name in CNN:
        e = build_expert(name, p["experts"][name])
        assert isinstance(e, Expert) and e.name == name
        dims[name] = e.dim
        prov = e.provenance()
        assert prov["weights"] == "random-init:seed=0" and prov["sampling"] == e.needs.to_dict()
    assert dims == {"scene": 1024, "inst": 512, "i3d": 1024, "r2p1d": 512, "audio": 128}
    # the whole profile is accepted too, and builds the named expert
    assert build_expert("inst", p).variant == "resnet18"


def test_demo_expert_extracts_after_registry_build():
    e = build_expert("inst", load_profile("demo"), weights=None)
    frames = np.random.default_rng(0).integers(0, 255, (3, 112, 149, 3), dtype=np.uint8)
    out = e.extract([MediaView("v", 3.0, frames, np.arange(3.0))])[0]
    assert out.features.shape == (3, 512)


def test_paper_profile_dims():
    p = load_profile("paper")
    assert {n: build_expert(n, p).dim for n in CNN} == {
        "scene": 2208, "inst": 2048, "i3d": 1024, "r2p1d": 512, "audio": 128}


def test_weights_override(tmp_path):
    e = build_expert("audio", {"variant": "vggish_small"}, weights=str(tmp_path / "x.pt"))
    assert e.weights == str(tmp_path / "x.pt")
    with pytest.raises(UserError, match="x.pt: weights file not found"):
        e.load("cpu")
    with pytest.raises(UserError, match="x.pt: weights file not found"):
        e.provenance()
    offline = build_expert("audio", {"variant": "vggish_small", "cache_dir": str(tmp_path)},
                           weights="http://127.0.0.1:9/v.pt")
    with pytest.raises(UserError, match="http://127.0.0.1:9/v.pt: cannot download"):
        offline.provenance()


def write(tmp_path, text: str):
    path = tmp_path / "custom.yaml"
    path.write_text(text)
    return path


# Unknown experts, unknown top-level and expert keys, wrong types, a missing profile and YAML
# syntax errors are fault-suite cases run through the CLI: tests/test_fault_bad_configs.py.


def test_unknown_decoder_and_text_encoder_keys(tmp_path):
    with pytest.raises(ProfileError, match="decoder.backnd"):
        load_profile(write(tmp_path, "decoder: {backnd: pyav}\nexperts:\n  scene: {}\n"))
    with pytest.raises(ProfileError, match="text_encoders.bert"):
        load_profile(write(tmp_path, "experts:\n  scene: {}\ntext_encoders: {bert: {}}\n"))


def test_bad_values_and_files(tmp_path):
    with pytest.raises(ProfileError, match="non-empty mapping"):
        load_profile(write(tmp_path, "name: x\n"))
    with pytest.raises(UserError, match="unknown variant 'densenet999'"):
        build_expert("scene", {"variant": "densenet999"})
    with pytest.raises(UserError, match="unknown expert 'sound'"):
        build_expert("sound", {})
    with pytest.raises(UserError, match="unknown key 'colour'"):
        build_expert("inst", {"colour": 1})


@pytest.mark.slow
def test_demo_experts_on_a_real_decode_windows_concatenate(tmp_path):
    """One real decode serves all five CNN experts; 1 s windows give the whole-video rows."""
    from tests.media import make_clip
    from videxperts.extractors.base import ExpertOutput
    from videxperts.extractors.decode import decode_video, decode_windows

    clip = make_clip(tmp_path / "c.mp4", seconds=2.5, fps=25, size=(160, 120), audio_rate=16_000)
    p = load_profile("demo")
    experts = {n: build_expert(n, p) for n in CNN}
    for e in experts.values():
        e.load("cpu")
    needs = {n: e.needs for n, e in experts.items()}
    whole = decode_video(clip, needs, backend="pyav")
    windows = list(decode_windows(clip, needs, backend="pyav", window_seconds=1.0))
    assert len(windows) >= 2
    for n, e in experts.items():
        one = e.extract([whole[n]])[0]
        parts = ExpertOutput.concat([o for o in e.extract([w[n] for w in windows])], e.dim)
        assert one.features.shape[0] >= 1 and one.features.shape == parts.features.shape, n
        assert one.features.shape[1] == e.dim
        np.testing.assert_allclose(parts.timestamps, one.timestamps, atol=1e-6)
        if n == "audio":  # only the last 15 ms frame of a window's final segment differs
            assert one.features.shape[0] == 2  # floor(2.5 / 0.96)
            assert np.corrcoef(parts.features.ravel(), one.features.ravel())[0, 1] > 0.99
        else:
            np.testing.assert_allclose(parts.features, one.features, rtol=1e-4,
                                       atol=1e-4 * np.abs(one.features).max())


def test_replicas_is_a_pool_setting_of_any_expert():
    from videxperts.extractors.registry import ProfileError, build_expert, load_profile, validate_profile
    from videxperts.pipelines.extract_plan import plan_experts

    profile = load_profile("demo")
    assert build_expert("audio", profile).resources.replicas == 1
    profile["experts"]["audio"] = {**profile["experts"]["audio"], "replicas": 3}
    assert build_expert("audio", profile).resources.replicas == 3
    assert plan_experts(profile, ["audio"], None)["audio"].replicas == 3
    for bad in (0, "two", True, 1.5):
        profile["experts"]["audio"]["replicas"] = bad
        with pytest.raises(ProfileError, match="experts.audio.replicas' must be an integer >= 1"):
            build_expert("audio", profile)
        with pytest.raises(ProfileError, match="experts.audio.replicas' must be an integer >= 1"):
            validate_profile({k: v for k, v in profile.items() if k != "source"})  # refused at load, before any job
