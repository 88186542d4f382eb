"""R(2+1)D expert: R(2+1)D-34 (IG65M in the paper) or torchvision's R(2+1)D-18 → 512-d per clip.

Both are torchvision ``VideoResNet``s, so their parameter names are torchvision's, which is
also the naming of the converted IG65M checkpoints. R(2+1)D-34 follows the Caffe2 (VMZ)
architecture those checkpoints come from: layers [3, 4, 6, 3], and the first block of layers
2-4 uses the Caffe2 mid-plane counts (288, 576, 1152) in its second (2+1)D convolution;
BatchNorm eps 1e-3. Features are the global-average-pooled ``layer4`` output (the ``fc``
input). Input: Kinetics mean/std normalisation, ``[B, 3, T, H, W]``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.models.video import r2plus1d_18
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, R2Plus1dStem, VideoResNet

from videxperts.extractors.experts._frames import KINETICS_MEAN, KINETICS_STD, ClipExpert, normalise


def r2plus1d_34(num_classes: int = 400) -> VideoResNet:
    """R(2+1)D-34 as in the IG65M/VMZ Caffe2 models, with torchvision parameter names."""
    model = VideoResNet(block=BasicBlock, conv_makers=[Conv2Plus1D] * 4, layers=[3, 4, 6, 3],
                        stem=R2Plus1dStem, num_classes=num_classes)
    # Caffe2 computes the mid-planes of a block's second conv from its own (not the input's)
    # channel count; only the first block of layers 2-4 differs from torchvision's formula.
    model.layer2[0].conv2[0] = Conv2Plus1D(128, 128, 288)
    model.layer3[0].conv2[0] = Conv2Plus1D(256, 256, 576)
    model.layer4[0].conv2[0] = Conv2Plus1D(512, 512, 1152)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.eps = 1e-3
    return model


VARIANTS = {"r2plus1d_34": 512, "r2plus1d_18": 512}


class R2P1DExpert(ClipExpert):
    """Clip features from R(2+1)D; default 32-frame clips at 30 fps with stride 32."""

    name = "r2p1d"
    version = "1"
    variants = VARIANTS
    default_variant = "r2plus1d_34"

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("fps", 30.0)
        kw.setdefault("clip_len", 32)
        kw.setdefault("clip_stride", 32)
        kw.setdefault("size", 128)
        kw.setdefault("crop", 112)
        super().__init__(**kw)

    def output_dim(self) -> int:
        return VARIANTS[self.variant]

    def build_model(self) -> nn.Module:
        n = self.num_classes or 400
        return r2plus1d_34(n) if self.variant == "r2plus1d_34" else r2plus1d_18(weights=None, num_classes=n)

    def pixels(self, clips: torch.Tensor) -> torch.Tensor:
        return normalise(clips, KINETICS_MEAN, KINETICS_STD)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.layer4(m.layer3(m.layer2(m.layer1(m.stem(x)))))
        return torch.flatten(m.avgpool(x), 1)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "clip_len": self.clip_len, "clip_stride": self.clip_stride}
