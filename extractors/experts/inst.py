"""Instance expert: ResNeXt-101 32x48d (Instagram WSL in the paper) → 2048-d per sampled frame.

Every variant is torchvision's ResNet class, whose parameter names are those of the
published WSL-Images checkpoints; 32x48d is ``ResNet(Bottleneck, [3, 4, 23, 3], groups=32,
width_per_group=48)`` (829M parameters: a GPU backbone). Features are the global-average-
pooled ``layer4`` output (the classifier input).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from videxperts.extractors.experts._frames import FrameExpert

# variant -> (block, layers, groups, width_per_group, feature dim)
RESNETS = {
    "resnext101_32x48d": (Bottleneck, [3, 4, 23, 3], 32, 48, 2048),
    "resnext101_32x8d": (Bottleneck, [3, 4, 23, 3], 32, 8, 2048),
    "resnet50": (Bottleneck, [3, 4, 6, 3], 1, 64, 2048),
    "resnet18": (BasicBlock, [2, 2, 2, 2], 1, 64, 512),
}


def build_resnet(variant: str, num_classes: int = 1000) -> ResNet:
    """A torchvision ResNet/ResNeXt for ``variant`` (names match torchvision and WSL checkpoints)."""
    block, layers, groups, width, _ = RESNETS[variant]
    return ResNet(block, layers, num_classes=num_classes, groups=groups, width_per_group=width)


class InstExpert(FrameExpert):
    """Per-frame object/instance features from a ResNet/ResNeXt; the variant fixes the dimension."""

    name = "inst"
    version = "1"
    variants = RESNETS
    default_variant = "resnext101_32x48d"

    def output_dim(self) -> int:
        return RESNETS[self.variant][4]

    def build_model(self) -> nn.Module:
        return build_resnet(self.variant, self.num_classes or 1000)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return torch.flatten(m.avgpool(x), 1)
