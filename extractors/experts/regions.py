"""Regions expert: bottom-up-attention-style region features, 36 x 2048 per image or keyframe.

A torchvision Faster R-CNN (ResNet-50/101 + FPN, frozen BatchNorm, so torchvision's and
converted checkpoints load strictly) proposes boxes; the box head scores every proposal for
every class. As in bottom-up attention's fixed-36 extraction, each proposal's confidence is its
best class score among the (proposal, class) pairs that survive per-class NMS (threshold
``nms``), and the ``boxes`` most confident proposals are kept (ties: the earlier proposal).
Their features are RoIAlign-pooled (``pool`` x ``pool``, then averaged) from the backbone's
last stage (ResNet C5, 2048 channels, stride 32), so the output is ``[boxes, 2048]`` per frame
for every variant.

Rows: ``boxes`` rows per sampled frame (one frame for a still image; keyframes at ``fps`` for a
video), all stamped with the frame's time. Side data (``ExpertOutput.extra``): ``boxes``
``[rows, 4]`` as (x1, y1, x2, y2) fractions of the frame's width/height, ``scores`` ``[rows]``
and ``n_boxes`` (real boxes per frame). **Padding**: a detector that proposes fewer than
``boxes`` regions (random initialisation, tiny images) gets zero feature rows with box
(0, 0, 0, 0) and score 0 after its real ones, so every frame has exactly ``boxes`` rows and
``n_boxes`` says how many are real.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet50, resnet101
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import batched_nms, roi_align
from torchvision.ops.misc import FrozenBatchNorm2d

from videxperts.extractors.base import ExpertOutput, MediaView
from videxperts.extractors.experts._frames import ExpertConfigError, TorchExpert, Unit, frame_times

# variant -> ResNet builder; every one gives a 2048-channel C5
DETECTORS = {"fasterrcnn_resnet50_fpn": resnet50, "fasterrcnn_resnet101_fpn": resnet101}
C5_STRIDE = 32


def select_regions(boxes: torch.Tensor, scores: torch.Tensor, k: int, nms: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and confidences of the ``k`` most confident proposals (fewer if fewer exist).

    ``boxes`` ``[P, 4]``, ``scores`` ``[P, C]`` (foreground classes). A proposal's confidence is
    its highest score over the classes in which it survives NMS at ``nms`` (0 if none).
    """
    p, c = scores.shape
    if p == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device), scores.new_zeros(0)
    pair_boxes = boxes[:, None, :].expand(p, c, 4).reshape(-1, 4).float()
    pair_scores = scores.reshape(-1).float()
    pair_cls = torch.arange(c, device=boxes.device).repeat(p)
    keep = batched_nms(pair_boxes, pair_scores, pair_cls, nms)
    conf = torch.zeros(p, dtype=torch.float32, device=boxes.device)
    conf = conf.scatter_reduce(0, keep // c, pair_scores[keep], reduce="amax")
    order = torch.sort(conf, descending=True, stable=True).indices[:k]
    return order, conf[order]


@torch.no_grad()
def random_init_fixups(model: FasterRCNN, seed: int) -> None:
    """Make a seeded random detector usable: what torchvision itself does at init.

    Frozen BatchNorm holds buffers only (seeded_init leaves them unset): identity, except the
    last one of each bottleneck, which is zeroed (torchvision's ``zero_init_residual``) so
    activations do not explode through 16-33 residual blocks. The RPN head and the box
    predictor get torchvision's N(0, 0.01) / N(0, 0.001) weights and zero biases, so proposals
    are not thrown off the image by huge random box deltas.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
    for name, m in model.named_modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.weight.fill_(0.0 if name.endswith(".bn3") else 1.0)
            m.bias.zero_(), m.running_mean.zero_(), m.running_var.fill_(1.0)
    layers = [(c, 0.01) for c in model.rpn.head.modules() if isinstance(c, nn.Conv2d)]
    layers += [(model.roi_heads.box_predictor.cls_score, 0.01), (model.roi_heads.box_predictor.bbox_pred, 0.001)]
    for layer, std in layers:
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * std)
        layer.bias.zero_()


class RegionsExpert(TorchExpert):
    """Faster R-CNN region features (bottom-up attention style): ``boxes`` x 2048 per frame."""

    name = "regions"
    version = "1"
    variants = DETECTORS
    default_variant = "fasterrcnn_resnet101_fpn"

    def __init__(self, *, boxes: int = 36, nms: float = 0.3, proposals: int = 300, max_size: int = 1000,
                 pool: int = 7, size: int = 600, fps: float = 1.0, batch_size: int = 4,
                 num_classes: int | None = 1601, **kw: Any) -> None:
        if boxes < 1 or proposals < 1 or pool < 1 or not 0.0 < nms <= 1.0:
            raise ExpertConfigError("regions: need boxes >= 1, proposals >= 1, pool >= 1 and 0 < nms <= 1")
        if max_size < size:
            raise ExpertConfigError(f"regions: max_size {max_size} is smaller than size {size}")
        if num_classes is not None and num_classes < 2:
            raise ExpertConfigError("regions: num_classes counts the background class too, so it must be >= 2")
        self.boxes, self.nms, self.proposals = int(boxes), float(nms), int(proposals)
        self.max_size, self.pool = int(max_size), int(pool)
        super().__init__(size=size, fps=fps, batch_size=batch_size, num_classes=num_classes, **kw)

    def output_dim(self) -> int:
        return 2048

    def build_model(self) -> nn.Module:
        trunk = DETECTORS[self.variant](weights=None, norm_layer=FrozenBatchNorm2d)
        backbone = _resnet_fpn_extractor(trunk, trainable_layers=0)
        return FasterRCNN(backbone, num_classes=self.num_classes or 1601, min_size=self.size, max_size=self.max_size,
                          rpn_pre_nms_top_n_test=max(1000, self.proposals), rpn_post_nms_top_n_test=self.proposals)

    def load(self, device: str | None = None) -> None:
        fresh = self.model is None
        super().load(device)
        if fresh and self.weights is None:
            random_init_fixups(self.model, self.seed)

    def _channels_last(self) -> torch.memory_format:
        return torch.contiguous_format  # detection ops (RoIAlign, NMS) want contiguous tensors

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "boxes": self.boxes, "nms": self.nms, "proposals": self.proposals,
                "max_size": self.max_size, "pool": self.pool, "num_classes": self.num_classes,
                "pooled_from": "C5 (last backbone stage), RoIAlign then mean", "padding": "zero rows, score 0"}

    # units are frames; the base class's one-row-per-unit batching does not apply (boxes rows each)
    def units(self, view: MediaView) -> tuple[Any, np.ndarray]:
        if view.frames is None or len(view.frames) == 0:
            return None, np.zeros((0,), np.float64)
        return view.frames, frame_times(view, self.fps)

    def make_batch(self, data: list[Any], units: list[Unit]) -> torch.Tensor:  # pragma: no cover - unused
        raise NotImplementedError("regions runs whole frames through detect()")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - unused
        raise NotImplementedError("regions runs whole frames through detect()")

    @torch.inference_mode()
    def detect(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """uint8 ``[H, W, 3]`` frames → features ``[B, boxes, 2048]``, boxes ``[B, boxes, 4]``
        (fractions), scores ``[B, boxes]`` and real box counts ``[B]`` (the rest is padding)."""
        m, k = self.model, self.boxes
        images = [torch.as_tensor(np.ascontiguousarray(f)).to(self.device).permute(2, 0, 1).float().div_(255.0)
                  for f in frames]
        cuda = self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.float16) if cuda and self.amp else nullcontext():
            batch, _ = m.transform(images)
            body = m.backbone.body(batch.tensors)
            fpn = m.backbone.fpn(body)
            proposals, _ = m.rpn(batch, fpn)
            heads = m.roi_heads
            logits, _ = heads.box_predictor(heads.box_head(heads.box_roi_pool(fpn, proposals, batch.image_sizes)))
            scores = torch.softmax(logits.float(), -1)[:, 1:].split([len(p) for p in proposals])
            c5 = body[list(body)[-1]]
            picked = [select_regions(p, s, k, self.nms) for p, s in zip(proposals, scores, strict=True)]
            rois = [p[i] for p, (i, _) in zip(proposals, picked, strict=True)]
            pooled = roi_align(c5, [r.to(c5.dtype) for r in rois], self.pool, 1.0 / C5_STRIDE, sampling_ratio=2,
                               aligned=True).float().mean((2, 3))
        n = len(frames)
        feats = torch.zeros(n, k, self.dim)
        boxes = torch.zeros(n, k, 4)
        confs = torch.zeros(n, k)
        counts = torch.zeros(n, dtype=torch.long)
        pos = 0
        for b, (roi, (_, conf)) in enumerate(zip(rois, picked, strict=True)):
            h, w = batch.image_sizes[b]
            r = len(roi)
            feats[b, :r] = pooled[pos:pos + r].cpu()
            boxes[b, :r] = (roi.float() / torch.tensor([w, h, w, h], device=roi.device)).clamp_(0, 1).cpu()
            confs[b, :r] = conf.cpu()
            counts[b] = r
            pos += r
        return feats, boxes, confs, counts

    def extract(self, views: list[MediaView]) -> list[ExpertOutput]:
        """All frames of all views in shared batches of ``batch_size`` frames, then split per view."""
        if self.model is None:
            self.load()
        prepared = [self.units(v) for v in views]
        frames = [f for data, ts in prepared for f in (data[:len(ts)] if len(ts) else [])]
        parts = [self.detect(frames[i:i + self.batch_size]) for i in range(0, len(frames), self.batch_size)]
        k = self.boxes
        if parts:
            feats, boxes, confs, counts = (torch.cat(x) for x in zip(*parts, strict=True))
        outs, pos = [], 0
        for _, ts in prepared:
            t = len(ts)
            if t == 0:
                outs.append(ExpertOutput(np.zeros((0, self.dim), np.float32), np.zeros(0),
                                         {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
                                          "n_boxes": []}))
                continue
            sl = slice(pos, pos + t)
            outs.append(ExpertOutput(
                feats[sl].reshape(t * k, self.dim).numpy(), np.repeat(np.asarray(ts, np.float64), k),
                {"boxes": boxes[sl].reshape(t * k, 4).numpy(), "scores": confs[sl].reshape(t * k).numpy(),
                 "n_boxes": [int(c) for c in counts[sl]]}))
            pos += t
        return outs

