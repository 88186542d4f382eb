"""Shared machinery of the torch experts: config, device, crop/normalise, batching across videos.

Every CNN expert is a :class:`TorchExpert`: the subclass says how to build its network
(:meth:`TorchExpert.build_model`), how a view splits into units (frames, clips, audio
patches) with their timestamps (:meth:`TorchExpert.units`), how a list of units becomes one
input tensor (:meth:`TorchExpert.make_batch`) and how the network maps it to ``[B, D]``
(:meth:`TorchExpert.forward_features`). The base class does the rest once: units of all views
in a batch are concatenated and run in mini-batches of ``batch_size`` (so short videos share
forward passes), then split back per view.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videxperts.errors import UserError
from videxperts.extractors.arrays import writable
from videxperts.extractors.base import DecodeNeeds, Expert, ExpertOutput, FrameNeeds, MediaView, Resources
from videxperts.extractors.weights import (
    WeightsError,
    fetch_url,
    file_sha256,
    init_or_load,
    is_url,
    seeded_init,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


class ExpertConfigError(UserError):
    """A bad value in an expert's profile entry (unknown variant, impossible size, ...)."""


# ----------------------------------------------------------------------------- pixels
def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` → uint8 with the shorter side ``size`` (no-op if it already is)."""
    n, h, w, _ = frames.shape
    if min(h, w) == size or n == 0:
        return frames
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = frames.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def center_crop(frames: torch.Tensor, crop: int) -> torch.Tensor:
    """Center crop ``[N, H, W, C]`` to ``crop x crop`` (H and W must be >= crop)."""
    h, w = frames.shape[1:3]
    top, left = (h - crop) // 2, (w - crop) // 2
    return frames[:, top:top + crop, left:left + crop]


def prepare_frames(frames: np.ndarray | torch.Tensor, size: int, crop: int | None = None) -> torch.Tensor:
    """Decoder frames → uint8 ``[N, crop, crop, 3]`` (short side resized to ``size``, center crop).

    The decoder already resizes to the expert's ``size``; resizing here only happens when it
    did not (native-resolution views), so experts stay correct whatever the decoder did.
    """
    t = torch.as_tensor(writable(frames)) if isinstance(frames, np.ndarray) else frames
    if t.ndim != 4 or t.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [N, H, W, 3], got shape {tuple(t.shape)}")
    if t.dtype != torch.uint8:
        t = t.clamp(0, 255).to(torch.uint8)
    t = resize_short_side(t, size)
    return center_crop(t, crop or size)


def normalise(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``[..., 3]`` channels-last → float32 ``(x/255 - mean)/std``, still channels-last."""
    m = torch.tensor(mean, dtype=torch.float32)
    s = torch.tensor(std, dtype=torch.float32)
    return (batch.float().div_(255.0) - m) / s


def clip_starts(num_frames: int, clip_len: int, stride: int) -> list[int]:
    """Start indices of the clips in ``num_frames`` sampled frames.

    Clips start every ``stride`` frames and must fit entirely; a video (window) shorter than
    one clip still gets one clip, padded by repeating its last frame, so that a short video
    is never featureless.
    """
    if num_frames <= 0:
        return []
    if num_frames < clip_len:
        return [0]
    return list(range(0, num_frames - clip_len + 1, max(1, stride)))


def clip_indices(start: int, clip_len: int, num_frames: int) -> torch.Tensor:
    """Frame indices of one clip, the last frame repeated past the end."""
    return torch.clamp(torch.arange(start, start + clip_len), max=num_frames - 1)


def frame_times(view: MediaView, fps: float) -> np.ndarray:
    n = 0 if view.frames is None else len(view.frames)
    if view.frame_times is not None and len(view.frame_times) == n:
        return np.asarray(view.frame_times, dtype=np.float64)
    return np.arange(n, dtype=np.float64) / fps


def resolve_device(device: str | None) -> torch.device:
    """``auto``/None → CUDA when available, else CPU; errors name the device."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ExpertConfigError(f"device {device!r} requested but CUDA is not available")
    return dev


@dataclass
class Unit:
    """One network input of one view: a frame, a clip start or an audio patch index."""

    view: int
    index: int


# ----------------------------------------------------------------------------- base class
class TorchExpert(Expert):
    """A torch-backed expert built from a profile entry (``Cls(**cfg)``).

    Common profile keys: ``weights`` (path, URL or null for seeded random init), ``sha256``,
    ``seed``, ``fps``, ``size`` (short side), ``crop``, ``batch_size``, ``device``
    (auto/cpu/cuda[:n]), ``variant``, ``threads`` (torch intra-op threads; Ray already sets
    OMP_NUM_THREADS from ``num_cpus``), ``num_cpus``/``num_gpus`` (Ray resources),
    ``amp`` (autocast on CUDA), ``cache_dir``, ``num_classes`` (head size of the checkpoint),
    ``channels_last`` (null: on for CUDA and for 2D nets on CPU).
    """

    name = "torch"
    version = "1"
    backbone_family = "torch"
    variants: dict[str, Any] = {}
    default_variant = ""

    def __init__(
        self,
        *,
        weights: str | None = None,
        sha256: str | None = None,
        seed: int = 0,
        fps: float = 1.0,
        size: int = 224,
        crop: int | None = None,
        batch_size: int = 16,
        device: str | None = "auto",
        variant: str | None = None,
        threads: int | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        amp: bool = True,
        cache_dir: str | None = None,
        num_classes: int | None = None,
        channels_last: bool | None = None,
    ) -> None:
        self.variant = variant or self.default_variant
        if self.variant not in self.variants:
            raise ExpertConfigError(
                f"{self.name}: unknown variant {self.variant!r} (choose from {sorted(self.variants)})"
            )
        if batch_size < 1 or (size is not None and size < 16) or fps <= 0:
            raise ExpertConfigError(f"{self.name}: need batch_size >= 1, size >= 16, fps > 0")
        self.weights, self.sha256, self.seed = weights, sha256, int(seed)
        self.fps, self.size, self.crop = float(fps), int(size), int(crop or size)
        if self.crop > self.size:
            raise ExpertConfigError(f"{self.name}: crop {self.crop} larger than size {self.size}")
        self.batch_size, self.device_cfg, self.threads = int(batch_size), device, threads
        self.amp, self.cache_dir, self.num_classes = bool(amp), cache_dir, num_classes
        self.channels_last_cfg = channels_last
        self.resources = Resources(num_cpus=float(num_cpus), num_gpus=float(num_gpus))
        self.model: nn.Module | None = None
        self.device = torch.device("cpu")
        self.weights_id: str | None = None
        self.dim = self.output_dim()
        self.needs = self.decode_needs()

    # -- what subclasses provide
    @abstractmethod
    def output_dim(self) -> int:
        """Feature size for the configured variant."""

    def decode_needs(self) -> DecodeNeeds:
        return DecodeNeeds(frames=FrameNeeds(fps=self.fps, size=self.size))

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The network with the published parameter names (checkpoints load into it as is)."""

    def key_map(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename keys of converted published checkpoints; identity by default."""
        return state

    @abstractmethod
    def units(self, view: MediaView) -> tuple[Any, np.ndarray]:
        """Per-view prepared data (e.g. cropped uint8 frames) and unit timestamps ``[T]``."""

    @abstractmethod
    def make_batch(self, data: list[Any], units: list[Unit]) -> torch.Tensor:
        """Input tensor for a list of units (data[u.view] is what :meth:`units` prepared)."""

    @abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Network input batch → ``[B, D]`` features."""

    def backbone(self) -> str:
        return self.variant

    # -- Expert interface
    def load(self, device: str | None = None) -> None:
        """Build the network, load/initialise weights and move it to the device, once."""
        if self.model is not None:
            return
        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.device = resolve_device(device if device not in (None, "", "auto") else self.device_cfg)
        # Build without the architecture's own random init (it is replaced anyway): on the meta
        # device, then materialise; seeded_init gives every tensor a defined value before a
        # checkpoint (which may be loaded non-strictly) overwrites it.
        with torch.device("meta"):
            model = self.build_model()
        model = model.to_empty(device=self.device)  # parameters are allocated once, on the target
        if self.weights is not None:
            seeded_init(model, self.seed)
        self.weights_id = init_or_load(
            model, self.weights, seed=self.seed, sha256=self.sha256, cache_dir=self.cache_dir,
            key_map=self.key_map,
        )
        model.eval().requires_grad_(False)
        model.to(self.device)
        if self.use_channels_last:
            model.to(memory_format=self._channels_last())
        self.model = model

    @property
    def use_channels_last(self) -> bool:
        """Channels-last activations: always on CUDA; on CPU for 2D nets (measured faster there)."""
        if self.channels_last_cfg is not None:
            return bool(self.channels_last_cfg)
        return self.device.type == "cuda" or self._channels_last() == torch.channels_last

    def _channels_last(self) -> torch.memory_format:
        return torch.channels_last

    def extract(self, views: list[MediaView]) -> list[ExpertOutput]:
        """Run all units of all views in shared mini-batches, then split back per view."""
        if self.model is None:
            self.load()
        prepared = [self.units(v) for v in views]
        data = [p[0] for p in prepared]
        units = [Unit(i, j) for i, (_, ts) in enumerate(prepared) for j in range(len(ts))]
        feats = self._run(data, units)
        outs, pos = [], 0
        for _, ts in prepared:
            n = len(ts)
            outs.append(ExpertOutput(feats[pos:pos + n], np.asarray(ts, dtype=np.float64)))
            pos += n
        return outs

    @torch.inference_mode()
    def _run(self, data: list[Any], units: list[Unit]) -> np.ndarray:
        out = np.zeros((len(units), self.dim), dtype=np.float32)
        cuda = self.device.type == "cuda"
        autocast = torch.autocast("cuda", dtype=torch.float16) if cuda and self.amp else nullcontext()
        for b in range(math.ceil(len(units) / self.batch_size)):
            chunk = units[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.make_batch(data, chunk).to(self.device, non_blocking=True)
            if self.use_channels_last and x.ndim in (4, 5):
                x = x.contiguous(memory_format=self._input_format(x))
            with autocast:
                y = self.forward_features(x)
            out[b * self.batch_size:b * self.batch_size + len(chunk)] = y.float().cpu().numpy()
        return out

    @staticmethod
    def _input_format(x: torch.Tensor) -> torch.memory_format:
        return torch.channels_last if x.ndim == 4 else torch.channels_last_3d

    def provenance(self) -> dict[str, Any]:
        return {
            "backbone": self.backbone(),
            "weights": self.weights_id or self._planned_weights_id(),
            "sampling": self.needs.to_dict(),
            "extractor_version": self.version,
            "dtype": "float32",
            "variant": self.variant,
            "dim": self.dim,
            "crop": self.crop,
            "compute_dtype": "float16" if (self.device.type == "cuda" and self.amp) else "float32",
        }

    def _planned_weights_id(self) -> str:
        """Identity before load(): what load() will return whenever it can be known up front.

        Random init → its seed; a profile ``sha256`` → that (load verifies it); a local file →
        its hash; a URL without checksum → downloaded into the cache now (so planning and
        workers agree on the identity, and a bad URL fails before any video is decoded).
        """
        if self.weights is None:
            return f"random-init:seed={self.seed}"
        if self.sha256:
            return f"sha256:{self.sha256.lower()}"
        w = str(self.weights)
        path = fetch_url(w, cache_dir=self.cache_dir) if is_url(w) else Path(w).expanduser()
        if not path.is_file():
            raise WeightsError(f"{w}: weights file not found")
        self.weights_id = f"sha256:{file_sha256(path)}"
        return self.weights_id


class FrameExpert(TorchExpert):
    """Per-frame 2D CNN: one feature per sampled frame, ImageNet normalisation."""

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def units(self, view: MediaView) -> tuple[Any, np.ndarray]:
        if view.frames is None or len(view.frames) == 0:
            return None, np.zeros((0,), np.float64)
        return prepare_frames(view.frames, self.size, self.crop), frame_times(view, self.fps)

    def make_batch(self, data: list[Any], units: list[Unit]) -> torch.Tensor:
        x = torch.stack([data[u.view][u.index] for u in units])  # [B, S, S, 3] uint8
        return normalise(x, self.mean, self.std).permute(0, 3, 1, 2)


class ClipExpert(TorchExpert):
    """3D CNN over clips of ``clip_len`` sampled frames starting every ``clip_stride`` frames."""

    def __init__(self, *, clip_len: int = 16, clip_stride: int | None = None, clip_tail: str = "pad",
                 **kw: Any) -> None:
        if clip_len < 1 or (clip_stride is not None and clip_stride < 1):
            raise ExpertConfigError(f"{self.name}: clip_len and clip_stride must be >= 1")
        if clip_tail not in ("pad", "drop"):
            raise ExpertConfigError(f"{self.name}: clip_tail must be 'pad' or 'drop', got {clip_tail!r}")
        self.clip_tail = clip_tail
        self.clip_len = int(clip_len)
        self.clip_stride = int(clip_stride or clip_len)
        super().__init__(**kw)

    def decode_needs(self) -> DecodeNeeds:
        return DecodeNeeds(frames=FrameNeeds(self.fps, self.size, self.clip_len, self.clip_stride, self.clip_tail))

    def _channels_last(self) -> torch.memory_format:
        return torch.channels_last_3d

    def units(self, view: MediaView) -> tuple[Any, np.ndarray]:
        if view.frames is None or len(view.frames) == 0:
            return None, np.zeros((0,), np.float64)
        frames = prepare_frames(view.frames, self.size, self.crop)
        times = frame_times(view, self.fps)
        starts = clip_starts(len(frames), self.clip_len, self.clip_stride)
        return (frames, starts), times[starts]

    def make_batch(self, data: list[Any], units: list[Unit]) -> torch.Tensor:
        clips = []
        for u in units:
            frames, starts = data[u.view]
            clips.append(frames[clip_indices(starts[u.index], self.clip_len, len(frames))])
        x = self.pixels(torch.stack(clips))  # [B, T, S, S, 3] float
        return x.permute(0, 4, 1, 2, 3)  # [B, 3, T, S, S]

    @abstractmethod
    def pixels(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 clips ``[B, T, S, S, 3]`` → float input values (model-specific scaling)."""
