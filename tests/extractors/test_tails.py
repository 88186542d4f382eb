"""How a video's tail is handled: VGGish's last analysis frame and R(2+1)D's last partial clip.

docs/EXPERTS.md ("Sampling: units and timestamps") states the rules these tests hold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videxperts.extractors.base import AudioNeeds, DecodeNeeds, FrameNeeds
from videxperts.extractors.decode.plan import build_plan
from videxperts.extractors.experts.audio import HOP, SEGMENT_SAMPLES, WIN, LogMelFrontend, waveform_to_patches

EXTRA = WIN - HOP  # 240 samples: how far a segment's last frame reads past the segment


def test_a_segments_last_frame_reads_the_audio_that_follows() -> None:
    fe = LogMelFrontend()
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(3 * SEGMENT_SAMPLES + 5000).astype(np.float32)
    whole = waveform_to_patches(wave, fe)  # 3 segments, every frame from real audio
    # a window cut at 2 segments + the 240 samples the decoder adds: identical to the whole
    window = waveform_to_patches(wave[: 2 * SEGMENT_SAMPLES + EXTRA], fe)
    assert window.shape[0] == 2
    assert torch.equal(window, whole[:2])
    # without those samples (the old behaviour) the last two frames of segment 2 differ: frame 94
    # reads 80 samples (5 ms) past the segment, frame 95 240 samples (15 ms)
    cut = waveform_to_patches(wave[: 2 * SEGMENT_SAMPLES], fe)
    assert torch.equal(cut[:, :94], whole[:2, :94]) and torch.equal(cut[0], whole[0])
    assert not torch.allclose(cut[1, 94], whole[1, 94]) and not torch.allclose(cut[1, 95], whole[1, 95])


def test_audio_that_ends_inside_the_last_frame_pad_keeps_drop_drops() -> None:
    fe = LogMelFrontend()
    wave = np.random.default_rng(1).standard_normal(2 * SEGMENT_SAMPLES + 100).astype(np.float32)
    assert waveform_to_patches(wave, fe).shape[0] == 2  # pad: the final 140 missing samples are zeros
    assert waveform_to_patches(wave, fe, tail="drop").shape[0] == 1  # VGGish: whole frames only
    full = np.random.default_rng(1).standard_normal(2 * SEGMENT_SAMPLES + EXTRA).astype(np.float32)
    assert waveform_to_patches(full, fe, tail="drop").shape[0] == 2
    assert waveform_to_patches(np.ones(4000, np.float32), fe, tail="drop").shape[0] == 0  # no short-clip pad


def test_vggish_segment_count_matches_waveform_to_examples() -> None:
    """tail: drop gives VGGish's count, ((S - 400) // 160 + 1) // 96, for any length."""
    fe = LogMelFrontend()
    for s in (400, 15359, 15600, 15601, 30959, 31000, 46320, 46321):
        want = ((s - 400) // 160 + 1) // 96 if s >= 400 else 0
        assert waveform_to_patches(np.zeros(s, np.float32), fe, tail="drop").shape[0] == want, s


def test_decoder_windows_carry_the_lookahead() -> None:
    needs = {"a": DecodeNeeds(audio=AudioNeeds(16_000, 0.96, tail_seconds=EXTRA / 16_000))}
    plan = build_plan(needs, 5.0, None, 1.92)
    lo0, hi0 = plan.windows[0].audio["a"]
    lo1, _ = plan.windows[1].audio["a"]
    assert (lo0, hi0, lo1) == (0, 2 * SEGMENT_SAMPLES + EXTRA, 2 * SEGMENT_SAMPLES)
    assert plan.windows[-1].audio["a"][1] is None


def test_clip_tail_pad_keeps_drop_drops_the_partial_stack() -> None:
    ft = np.arange(100) / 25  # 100 frames: 6 whole 16-frame stacks + 4 frames
    pad = build_plan({"c": DecodeNeeds(FrameNeeds(25, None, 16, 16))}, 4.0, ft, None)
    drop = build_plan({"c": DecodeNeeds(FrameNeeds(25, None, 16, 16, "drop"))}, 4.0, ft, None)
    assert pad.frames["c"].n_units == 7 and drop.frames["c"].n_units == 6
    assert drop.windows[0].slots["c"].size == 96 and drop.windows[0].slots["c"][-1] == 95
    short = build_plan({"c": DecodeNeeds(FrameNeeds(25, None, 16, 16, "drop"))}, 0.4, ft[:10], None)
    assert short.frames["c"].n_units == 1  # a video shorter than one stack still gets one (padded)
    # the default stays out of the provenance, so existing stores keep their identity
    assert "tail" not in DecodeNeeds(FrameNeeds(25, None, 16, 16)).to_dict()["frames"]
    assert DecodeNeeds(FrameNeeds(25, None, 16, 16, "drop")).to_dict()["frames"]["tail"] == "drop"


def test_tail_settings_are_validated() -> None:
    from videxperts.extractors.experts._frames import ExpertConfigError
    from videxperts.extractors.registry import build_expert

    with pytest.raises(ExpertConfigError, match="clip_tail"):
        build_expert("r2p1d", {"clip_tail": "cut"})
    with pytest.raises(ExpertConfigError, match="tail"):
        build_expert("audio", {"tail": "cut"})
    assert build_expert("r2p1d", {"clip_tail": "drop"}).needs.frames.tail == "drop"


def test_windowed_audio_features_equal_one_window(tmp_path: Path) -> None:
    """A real clip decoded in 0.96 s windows gives the same VGGish features as one window."""
    from tests.media import make_clip
    from videxperts.extractors.decode import decode_windows
    from videxperts.extractors.registry import build_expert

    clip = make_clip(tmp_path / "a.mp4", seconds=3.5)
    e = build_expert("audio", {"variant": "vggish_small"})
    e.load("cpu")
    one = [w["a"] for w in decode_windows(clip, {"a": e.needs}, window_seconds=None)]
    many = [w["a"] for w in decode_windows(clip, {"a": e.needs}, window_seconds=0.96)]
    assert len(one) == 1 and len(many) >= 3
    f1 = e.extract(one)[0].features
    fm = np.concatenate([o.features for o in e.extract(many)])
    assert f1.shape == fm.shape == (3, 128)
    np.testing.assert_allclose(fm, f1, rtol=1e-5, atol=1e-5)
