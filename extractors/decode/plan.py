"""The union sampling plan: which source frames and audio samples each window needs, per expert.

Every expert samples at its own rate: sample k sits at ``t_k = k / fps`` seconds and takes the
source frame whose presentation time is nearest to ``t_k`` (ties go to the earlier frame).
Clip experts group samples into units of ``clip_len`` starting every ``clip_stride`` samples;
the last clip is completed by repeating the final sample so the whole video is covered, and a
video shorter than one clip still yields one clip. Windows hold whole units: a unit belongs to
the window containing its start time, so a clip may reach past its window's end (consecutive
windows then overlap in source frames) but never straddles two windows. Audio windows start on
``segment_seconds`` boundaries. Nothing here decodes; it is plain arithmetic on the probe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from videxperts.extractors.base import AudioNeeds, DecodeNeeds, FrameNeeds

_EPS = 1e-9


def sample_times(duration: float, fps: float) -> np.ndarray:
    """``k / fps`` for every k with ``k / fps < duration`` (at least one sample)."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    count = max(1, math.ceil(duration * fps - _EPS))
    return np.arange(count, dtype=np.float64) / fps


def nearest_frames(frame_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the source frame whose presentation time is nearest to each of ``times``."""
    if frame_times.size == 0:
        raise ValueError("no source frames")
    right = np.searchsorted(frame_times, times, side="left").clip(0, frame_times.size - 1)
    left = (right - 1).clip(0, None)
    take_left = np.abs(times - frame_times[left]) <= np.abs(frame_times[right] - times)
    return np.where(take_left, left, right).astype(np.int64)


def split_clips(frames: np.ndarray, clip_len: int, clip_stride: int) -> np.ndarray:
    """View a window's frame run ``[N, ...]`` as clips ``[n, clip_len, ...]`` without copying."""
    n = 0 if frames.shape[0] < clip_len else 1 + (frames.shape[0] - clip_len) // clip_stride
    shape = (n, clip_len, *frames.shape[1:])
    strides = (frames.strides[0] * clip_stride, *frames.strides)
    return np.lib.stride_tricks.as_strided(frames, shape=shape, strides=strides, writeable=False)


@dataclass
class FramePlan:
    """One expert's whole-video frame sampling: slot k -> source frame ``source[k]``."""

    needs: FrameNeeds
    times: np.ndarray  # nominal sample times t_k, [K]
    source: np.ndarray  # nearest source frame per sample, [K]
    n_units: int
    unit_starts: np.ndarray  # nominal start time of each unit, [n_units]

    def unit_slots(self, lo: int, hi: int) -> np.ndarray:
        """Sample slots covering units ``[lo, hi)`` as one contiguous run (clamped at the end)."""
        if hi <= lo:
            return np.zeros(0, np.int64)
        first = lo * self.needs.clip_stride
        last = (hi - 1) * self.needs.clip_stride + self.needs.clip_len
        return np.arange(first, last, dtype=np.int64).clip(0, self.times.size - 1)


def frame_plan(needs: FrameNeeds, duration: float, frame_times: np.ndarray) -> FramePlan:
    """Plan one frame expert over the whole video."""
    if needs.clip_len < 1 or needs.clip_stride < 1:
        raise ValueError(f"clip_len and clip_stride must be >= 1, got {needs}")
    times = sample_times(duration, needs.fps)
    k, length, stride = times.size, needs.clip_len, needs.clip_stride
    if needs.tail == "drop":  # only whole clips (one padded clip still for a video shorter than one)
        n_units = 1 + max(0, (k - length) // stride)
    else:  # enough clips to cover every sample, but no clip may start past the last sample
        n_units = min(1 + max(0, math.ceil((k - length) / stride)), math.ceil(k / stride))
    return FramePlan(needs, times, nearest_frames(frame_times, times), n_units,
                     times[np.arange(n_units) * stride])


@dataclass
class WindowPlan:
    """What window ``index`` covers: unit ranges per frame expert and sample ranges per audio expert."""

    index: int
    start: float
    end: float
    is_last: bool
    units: dict[str, tuple[int, int]] = field(default_factory=dict)  # frame expert -> [lo, hi)
    slots: dict[str, np.ndarray] = field(default_factory=dict)  # frame expert -> sample slots
    audio: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # expert -> samples [lo, hi)
    audio_start: dict[str, float] = field(default_factory=dict)
    source: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # union, sorted unique


@dataclass
class UnionPlan:
    """The whole decode: per-expert frame plans and the ordered list of windows."""

    frames: dict[str, FramePlan]
    audio: dict[str, AudioNeeds]
    windows: list[WindowPlan]
    duration: float

    @property
    def sizes(self) -> set[int | None]:
        return {p.needs.size for p in self.frames.values()}

    @property
    def audio_rates(self) -> set[int]:
        return {a.sample_rate for a in self.audio.values()}


def _audio_bounds(a: AudioNeeds, edges: np.ndarray) -> np.ndarray:
    """Window edges in samples, moved up to the next segment boundary."""
    if a.segment_seconds:
        seg = np.ceil(edges / a.segment_seconds - _EPS) * a.segment_seconds
    else:
        seg = edges
    return np.round(seg * a.sample_rate).astype(np.int64)


def build_plan(
    needs: dict[str, DecodeNeeds],
    duration: float,
    frame_times: np.ndarray | None,
    window_seconds: float | None,
    audio_duration: float | None = None,
) -> UnionPlan:
    """Union sampling plan for ``needs`` over a video of ``duration`` seconds.

    ``frame_times`` is the probe's source frame index (None when frames are not needed).
    ``window_seconds`` None (or longer than the video) gives a single window.
    """
    frames = {n: frame_plan(d.frames, duration, frame_times) for n, d in needs.items() if d.frames}
    audio = {n: d.audio for n, d in needs.items() if d.audio}
    total = max(duration, audio_duration or 0.0) if audio else duration
    if window_seconds is None or window_seconds <= 0 or not math.isfinite(window_seconds):
        n_windows = 1
        window_seconds = max(total, _EPS)
    else:
        n_windows = max(1, math.ceil(total / window_seconds - _EPS))
    edges = np.arange(n_windows + 1, dtype=np.float64) * window_seconds
    windows = [WindowPlan(i, float(edges[i]), float(edges[i + 1]) if i + 1 < n_windows else total,
                          i == n_windows - 1) for i in range(n_windows)]
    for name, fp in frames.items():
        cut = np.searchsorted(fp.unit_starts, edges[1:-1] - _EPS, side="left")
        bounds = np.concatenate([[0], cut, [fp.n_units]])
        for w in windows:
            lo, hi = int(bounds[w.index]), int(bounds[w.index + 1])
            w.units[name] = (lo, hi)
            w.slots[name] = fp.unit_slots(lo, hi)
    for name, a in audio.items():
        b = _audio_bounds(a, edges)
        tail = int(round(a.tail_seconds * a.sample_rate))
        for w in windows:
            lo = int(b[w.index])
            w.audio[name] = (lo, None if w.is_last else int(b[w.index + 1]) + tail)
            w.audio_start[name] = lo / a.sample_rate
    for w in windows:
        parts = [frames[n].source[s] for n, s in w.slots.items() if s.size]
        w.source = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return UnionPlan(frames, audio, windows, duration)
