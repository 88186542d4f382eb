"""I3D expert: inflated Inception-v1 (Carreira & Zisserman 2017) → 1024-d per clip.

Written here in PyTorch with the parameter names of the widely used converted Kinetics
checkpoints (``rgb_imagenet.pt`` / ``flow_imagenet.pt`` of the pytorch-i3d conversion):
top-level end points ``Conv3d_1a_7x7``, ``Mixed_3b`` ... ``Mixed_5c``, each unit a ``conv3d``
(no bias) + ``bn`` (eps 1e-3), inception branches ``b0 b1a b1b b2a b2b b3b`` and the
classifier ``logits.conv3d`` (with bias). Convolutions and pools use TensorFlow "SAME"
padding computed from the input size, as the original graph does, so converted weights give
the original activations. The feature is the global average of ``Mixed_5c`` over time and
space (the ``avg_pool`` input of the classifier), which also accepts small inputs (112 px,
8 frames) where the original fixed 2x7x7 pool would not fit.

``modality: flow`` builds the 2-channel flow stream; flow is computed from the sampled
frames with OpenCV's Farneback method (the paper used TV-L1), clipped to ±20 px and scaled
to [-1, 1]. RGB input is scaled to [-1, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videxperts.extractors.base import MediaView
from videxperts.extractors.experts._frames import (
    ClipExpert,
    ExpertConfigError,
    Unit,
    clip_indices,
    resolve_device,
)


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow SAME padding (front, back) for one dimension."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int],
              value: float = 0.0) -> torch.Tensor:
    t, h, w = x.shape[2:]
    pt, ph, pw = (_same_pad(s, k, st) for s, k, st in zip((t, h, w), kernel, stride, strict=True))
    return F.pad(x, (*pw, *ph, *pt), value=value)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) → optional BatchNorm3d → optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), *, bn: bool = True, relu: bool = True,
                 bias: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.relu else x


class MaxPool3dSame(nn.Module):
    """Max pool with TensorFlow SAME padding (zero padding, like the converted graph)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Four branches: 1x1 | 1x1→3x3 | 1x1→3x3 | pool→1x1, concatenated on channels."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a = Unit3D(cin, c[1])
        self.b1b = Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a = Unit3D(cin, c[3])
        self.b2b = Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


# (end point name, kind, args): the Inception-v1 graph inflated to 3D.
_GRAPH: list[tuple[str, str, Any]] = [
    ("Conv3d_1a_7x7", "conv", (64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", "conv", (64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", "conv", (192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", "mixed", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", "pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", "mixed", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", "mixed", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", "mixed", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", "mixed", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", "pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", "mixed", (384, 192, 384, 48, 128, 128)),
]


class InceptionI3d(nn.Module):
    """I3D with the converted-checkpoint parameter names; ``features`` → ``[B, 1024]``."""

    def __init__(self, in_channels: int = 3, num_classes: int = 400) -> None:
        super().__init__()
        self.end_point_names: list[str] = []
        c = in_channels
        for name, kind, args in _GRAPH:
            if kind == "conv":
                mod: nn.Module = Unit3D(c, args[0], args[1], args[2])
                c = args[0]
            elif kind == "pool":
                mod = MaxPool3dSame(*args)
            else:
                mod = InceptionBlock(c, args)
                c = mod.out_channels
            self.add_module(name, mod)
            self.end_point_names.append(name)
        self.feature_dim = c  # 1024
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(c, num_classes, bn=False, relu=False, bias=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.end_point_names:
            x = self._modules[name](x)
        return x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics logits averaged over time (classification, not used for features)."""
        for name in self.end_point_names:
            x = self._modules[name](x)
        x = F.avg_pool3d(x, (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4])), stride=1)
        return self.logits(self.dropout(x)).mean(dim=(3, 4)).mean(dim=2)


def farneback_flow(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` → float ``[N, H, W, 2]`` flow from each frame to the next, in [-1, 1].

    The last frame reuses the previous flow; a single frame gets zero flow.
    """
    import cv2  # only the flow stream needs OpenCV

    arr = frames.numpy()
    n, h, w = arr.shape[:3]
    out = np.zeros((n, h, w, 2), np.float32)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in arr]
    for i in range(n - 1):
        out[i] = cv2.calcOpticalFlowFarneback(gray[i], gray[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
    if n > 1:
        out[-1] = out[-2]
    return torch.from_numpy(np.clip(out, -20, 20) / 20.0)


class TwoStreamI3D(nn.Module):
    """The RGB and flow I3D streams side by side; the feature is their **sum** (1024-d), as BMT
    and BMHRL combine the two published streams (``V = rgb + flow``). Input: 5 channels, RGB
    first (3), flow after (2)."""

    def __init__(self, num_classes: int = 400) -> None:
        super().__init__()
        self.rgb = InceptionI3d(in_channels=3, num_classes=num_classes)
        self.flow = InceptionI3d(in_channels=2, num_classes=num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.rgb.features(x[:, :3]) + self.flow.features(x[:, 3:])


MODALITIES = ("rgb", "flow", "rgb+flow")


class I3DExpert(ClipExpert):
    """Clip features from I3D; ``modality`` rgb (default), flow, or rgb+flow (the two streams
    summed, as the captioning models use them; ``weights`` is then the RGB checkpoint and
    ``flow_weights``/``flow_sha256`` the flow one, each null for seeded random init, the flow
    stream seeded with ``seed + 1``)."""

    name = "i3d"
    version = "1"
    variants = {"inception_i3d": 1024}
    default_variant = "inception_i3d"

    def __init__(self, *, modality: str = "rgb", flow_weights: str | None = None, flow_sha256: str | None = None,
                 **kw: Any) -> None:  # fmt: skip
        if modality not in MODALITIES:
            raise ExpertConfigError(f"i3d: modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
        if flow_weights is not None and modality != "rgb+flow":
            raise ExpertConfigError("i3d: flow_weights only applies to modality rgb+flow (use weights for one stream)")
        self.modality = modality
        self.flow_weights, self.flow_sha256 = flow_weights, flow_sha256
        self.flow_weights_id: str | None = None
        kw.setdefault("fps", 25.0)
        kw.setdefault("clip_len", 64)
        kw.setdefault("clip_stride", 25)
        super().__init__(**kw)

    def output_dim(self) -> int:
        return 1024

    def build_model(self) -> nn.Module:
        if self.modality == "rgb+flow":
            return TwoStreamI3D(num_classes=self.num_classes or 400)
        return InceptionI3d(in_channels=3 if self.modality == "rgb" else 2, num_classes=self.num_classes or 400)

    def load(self, device: str | None = None) -> None:
        """One stream: the base load. Two streams: each stream from its own checkpoint."""
        if self.modality != "rgb+flow" or self.model is not None:
            super().load(device)
            return
        from videxperts.extractors.weights import init_or_load

        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.device = resolve_device(device if device not in (None, "", "auto") else self.device_cfg)
        model = TwoStreamI3D(num_classes=self.num_classes or 400)
        rgb_id = init_or_load(model.rgb, self.weights, seed=self.seed, sha256=self.sha256, cache_dir=self.cache_dir)
        flow_id = init_or_load(model.flow, self.flow_weights, seed=self.seed + 1, sha256=self.flow_sha256,
                               cache_dir=self.cache_dir)  # fmt: skip
        self.weights_id = f"rgb={rgb_id};flow={flow_id}"
        model.eval().requires_grad_(False)
        model.to(self.device)
        if self.use_channels_last:
            model.to(memory_format=self._channels_last())
        self.model = model

    def _planned_weights_id(self) -> str:
        if self.modality != "rgb+flow":
            return super()._planned_weights_id()
        rgb = super()._planned_weights_id()
        self.weights_id = None
        flow = I3DExpert(modality="flow", weights=self.flow_weights, sha256=self.flow_sha256, seed=self.seed + 1,
                         cache_dir=self.cache_dir, device="cpu")._planned_weights_id()  # fmt: skip
        self.weights_id = f"rgb={rgb};flow={flow}"
        return self.weights_id

    def backbone(self) -> str:
        return f"inception_i3d_{self.modality}"

    def units(self, view: MediaView) -> tuple[Any, np.ndarray]:
        data, times = super().units(view)
        if data is not None and self.modality == "flow":
            data = (farneback_flow(data[0]), data[1])
        elif data is not None and self.modality == "rgb+flow":
            data = (data[0], data[1], farneback_flow(data[0]))
        return data, times

    def make_batch(self, data: list[Any], units: list[Unit]) -> torch.Tensor:
        if self.modality == "rgb":
            return super().make_batch(data, units)
        if self.modality == "rgb+flow":
            rgb, flow = [], []
            for u in units:
                frames, starts, fl = data[u.view]
                idx = clip_indices(starts[u.index], self.clip_len, len(frames))
                rgb.append(frames[idx])
                flow.append(fl[idx])
            x = torch.cat([self.pixels(torch.stack(rgb)), torch.stack(flow)], dim=-1)  # [B, T, S, S, 5]
            return x.permute(0, 4, 1, 2, 3)
        clips = [data[u.view][0][clip_indices(data[u.view][1][u.index], self.clip_len, len(data[u.view][0]))]
                 for u in units]
        return torch.stack(clips).permute(0, 4, 1, 2, 3)

    def pixels(self, clips: torch.Tensor) -> torch.Tensor:
        return clips.float().mul_(2.0 / 255.0).sub_(1.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)

    def provenance(self) -> dict[str, Any]:
        combine = {"streams": "sum"} if self.modality == "rgb+flow" else {}
        return {**super().provenance(), "modality": self.modality, **combine,
                "clip_len": self.clip_len, "clip_stride": self.clip_stride}
