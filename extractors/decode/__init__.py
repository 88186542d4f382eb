"""The decode-once video reader: one decode of a video serves every expert.

``decode_windows`` streams ``{expert: MediaView}`` dicts window by window (bounded memory for
any duration); ``decode_video`` is the single-window form; ``probe`` is the isolated,
time-limited first look at a file. Backends: decord (default), torchcodec, PyAV. See
docs/DECODE.md for the sampling rules and measurements.
"""

from videxperts.extractors.decode.backends import BACKENDS, AudioReader, FrameBackend
from videxperts.extractors.decode.plan import UnionPlan, build_plan, nearest_frames, sample_times, split_clips
from videxperts.extractors.decode.probe import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_TIMEOUT_S,
    MissingVideoError,
    VideoInfo,
    probe,
)
from videxperts.extractors.decode.reader import (
    DEFAULT_WINDOW_SECONDS,
    decode_video,
    decode_windows,
    resized_shape,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_WINDOW_SECONDS",
    "AudioReader",
    "FrameBackend",
    "MissingVideoError",
    "UnionPlan",
    "VideoInfo",
    "build_plan",
    "decode_video",
    "decode_windows",
    "nearest_frames",
    "probe",
    "resized_shape",
    "sample_times",
    "split_clips",
]
