"""The Expert interface: what every feature extractor declares and implements.

An expert never opens a file. It states what it needs from the decoder
(:class:`DecodeNeeds`), the Ray resources it asks for (:class:`Resources`), loads its
model once (:meth:`Expert.load`) and maps batches of decoded views
(:class:`MediaView`) to features ``[T, D]`` with timestamps (:class:`ExpertOutput`).
Keeping decoding out of experts is what lets one decode serve every expert.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FrameNeeds:
    """Frames an expert wants: sampled at ``fps`` of source time, shorter side resized to ``size``.

    ``size=None`` keeps the native resolution (OCR, face detection). Clip experts set
    ``clip_len`` > 1: a unit is ``clip_len`` consecutive sampled frames, units start every
    ``clip_stride`` sampled frames. Single-frame experts keep ``clip_len=clip_stride=1``.
    """

    fps: float
    size: int | None = None
    clip_len: int = 1
    clip_stride: int = 1
    # the video's last clip when fewer than clip_len samples remain: "pad" (repeat the last
    # frame, the default) or "drop" (as per-extractor tools that only take full stacks)
    tail: str = "pad"


@dataclass(frozen=True)
class AudioNeeds:
    """Mono float32 waveform at ``sample_rate``; units are ``segment_seconds`` long (None: any)."""

    sample_rate: int = 16_000
    segment_seconds: float | None = None
    # audio read past each window's end, so that a segment's last analysis frame (VGGish: 15 ms
    # past the segment) sees the real samples that follow instead of zeros
    tail_seconds: float = 0.0


@dataclass(frozen=True)
class DecodeNeeds:
    """What one expert needs from the decoder; either part may be absent."""

    frames: FrameNeeds | None = None
    audio: AudioNeeds | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # settings at their defaults are left out, so older provenance stays equal
        if d["frames"] is not None and d["frames"]["tail"] == "pad":
            del d["frames"]["tail"]
        if d["audio"] is not None and not d["audio"]["tail_seconds"]:
            del d["audio"]["tail_seconds"]
        return d


@dataclass(frozen=True)
class Resources:
    """What one expert actor asks Ray for (fractional GPUs let experts share a device)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory_mb: int | None = None
    # actors in this expert's pool per decode worker: an expert several times slower than the
    # others (e.g. single-threaded ASR) asks for more so it does not pace the whole job
    replicas: int = 1


@dataclass
class MediaView:
    """One expert's view of (a window of) one decoded video.

    ``frames``: uint8 ``[N, H, W, 3]`` RGB at the expert's fps/size, with ``frame_times``
    (seconds, ``[N]``). ``audio``: float32 mono ``[S]`` at ``sample_rate`` starting at
    ``audio_start`` seconds. A window always holds whole units (clips, audio segments), so
    the outputs of consecutive windows concatenate to the whole-video result.
    """

    video_id: str
    duration: float
    frames: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    audio: np.ndarray | None = None
    sample_rate: int | None = None
    audio_start: float = 0.0
    window_index: int = 0
    is_last_window: bool = True


@dataclass
class ExpertOutput:
    """Features ``[T, D]`` (float32) and the start time in seconds of each row ``[T]``.

    ``T == 0`` is legal and means "nothing found" (no face, no words, silent audio): the store
    records the video as done with zero rows, which training treats as a missing expert.
    """

    features: np.ndarray
    timestamps: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. recognised words, for reports

    def __post_init__(self) -> None:
        if self.features.ndim != 2:
            raise ValueError(f"features must be [T, D], got shape {self.features.shape}")
        if self.timestamps.shape != (self.features.shape[0],):
            raise ValueError(
                f"timestamps must be [T]={self.features.shape[0]}, got {self.timestamps.shape}"
            )

    @staticmethod
    def concat(parts: list[ExpertOutput], dim: int) -> ExpertOutput:
        """Join per-window outputs in order."""
        if not parts:
            return ExpertOutput(np.zeros((0, dim), np.float32), np.zeros((0,), np.float64))
        extra: dict[str, Any] = {}
        for p in parts:
            for k, v in p.extra.items():
                extra.setdefault(k, []).extend(v if isinstance(v, list) else [v])
        return ExpertOutput(
            np.concatenate([p.features for p in parts]).astype(np.float32, copy=False),
            np.concatenate([p.timestamps for p in parts]).astype(np.float64, copy=False),
            extra,
        )


class Expert(ABC):
    """One expert family member. Subclasses set the class attributes and implement the two methods.

    Setup (``load``) is kept apart from per-item work (``extract``) so that a Ray actor pays
    for model loading once.
    """

    name: str
    dim: int
    version: str = "1"
    needs: DecodeNeeds
    resources: Resources = Resources()

    @abstractmethod
    def load(self, device: str = "cpu") -> None:
        """Build the model and load weights once per worker."""

    @abstractmethod
    def extract(self, views: list[MediaView]) -> list[ExpertOutput]:
        """Map a batch of views (possibly from different videos) to one output per view."""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """What the store records: backbone, weights identity, sampling, extractor version, dtype."""


class VideoInputError(Exception):
    """A video that cannot be decoded; the message always names the input."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class EmptyFileError(VideoInputError):
    """Zero-byte file."""


class CorruptVideoError(VideoInputError):
    """Not a container the decoder understands, or truncated beyond use."""


class NoVideoStreamError(VideoInputError):
    """A container with no video stream (e.g. audio-only) where frames were needed."""


class DecodeTimeoutError(VideoInputError):
    """Decoding did not finish in its time budget (hung demuxer, pathological file)."""


class UnsupportedVideoError(VideoInputError):
    """Readable, but outside what the pipeline accepts (e.g. frames larger than the limit)."""
