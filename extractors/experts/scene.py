"""Scene expert: DenseNet-161 (Places365 in the paper) → one 2208-d vector per sampled frame.

The network is torchvision's DenseNet, so Places365 checkpoints (CSAILVision's
``densenet161_places365``, 365 classes, old-style ``norm.1``/``conv.1`` names, ``module.``
prefix) load through :meth:`SceneExpert.key_map`. Features are the global-average-pooled
output of the last dense block (after its final ReLU), i.e. the classifier's input.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from videxperts.extractors.experts._frames import FrameExpert

# variant -> (torchvision builder name, feature dim)
DENSENETS = {
    "densenet161": ("densenet161", 2208),
    "densenet121": ("densenet121", 1024),
    "densenet169": ("densenet169", 1664),
    "densenet201": ("densenet201", 1920),
}
_OLD_DENSE_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


class SceneExpert(FrameExpert):
    """Per-frame scene features from a DenseNet; the variant fixes the dimension."""

    name = "scene"
    version = "1"
    variants = DENSENETS
    default_variant = "densenet161"

    def output_dim(self) -> int:
        return DENSENETS[self.variant][1]

    def build_model(self) -> nn.Module:
        builder = getattr(torchvision.models, DENSENETS[self.variant][0])
        return builder(weights=None, num_classes=self.num_classes or 365)

    def key_map(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Old torchvision/Places365 DenseNet names ``denselayer1.norm.1.weight`` → ``norm1.weight``."""
        out = {}
        for k, v in state.items():
            m = _OLD_DENSE_KEY.match(k)
            out[m.group(1) + m.group(2) if m else k] = v
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        f = F.relu(self.model.features(x))
        return torch.flatten(F.adaptive_avg_pool2d(f, 1), 1)
