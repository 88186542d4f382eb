"""Face expert: Haar-cascade face detection on sampled frames → one embedding per detected face.

Detection runs on CPU with OpenCV's bundled frontal-face Haar cascade (no model file to
download; ``cv2.FaceDetectorYN`` would need one that is not shipped). Each detected face is
cropped with a margin, resized to ``crop_size`` and embedded by a ResNet (VGGFace2-class
ResNet-50 in the paper, its ``fc`` replaced by a ``dim``-wide projection: 512 for MSR-VTT,
128 for LSMDC), then L2-normalised. Weights go through :func:`videxperts.extractors.weights.init_or_load`
(checkpoint path / URL / seeded random init), and the identity is recorded as provenance.
A frame with no face contributes no row; a video with none gives ``T = 0``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from videxperts.extractors.base import DecodeNeeds, ExpertOutput, FrameNeeds, MediaView
from videxperts.extractors.experts._frames import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ExpertConfigError,
    TorchExpert,
    Unit,
    normalise,
)

CASCADE = "haarcascade_frontalface_default.xml"
EMBEDDINGS = {"resnet50": "resnet50", "resnet18": "resnet18"}


def load_cascade(name: str = CASCADE) -> cv2.CascadeClassifier:
    """OpenCV's bundled cascade by file name (clear error if this OpenCV ships none)."""
    path = str(getattr(cv2, "data", None) and cv2.data.haarcascades) + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise ExpertConfigError(f"face: cannot load Haar cascade {path} (opencv-python-headless<5 ships it)")
    return cascade


class HaarDetector:
    """Frontal faces as ``(x, y, w, h)`` boxes in the coordinates of the given RGB frame."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 7, min_size: int = 24,
                 detect_max_side: int | None = 640, equalize: bool = True, cascade: str = CASCADE) -> None:
        self.cascade = load_cascade(cascade)
        self.cascade_name = cascade
        self.scale_factor, self.min_neighbors = float(scale_factor), int(min_neighbors)
        self.min_size, self.detect_max_side, self.equalize = int(min_size), detect_max_side, bool(equalize)

    def __call__(self, frame_rgb: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)
        scale = 1.0
        h, w = gray.shape
        if self.detect_max_side and max(h, w) > self.detect_max_side:
            scale = self.detect_max_side / max(h, w)
            gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        if self.equalize:
            gray = cv2.equalizeHist(gray)
        min_px = max(1, round(self.min_size * scale))
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=(min_px, min_px))
        if len(boxes) == 0:
            return np.zeros((0, 4), np.int32)
        return np.round(np.asarray(boxes, np.float64) / scale).astype(np.int32)

    def describe(self) -> dict[str, Any]:
        return {"detector": f"opencv {cv2.__version__} Haar cascade {self.cascade_name}",
                "scale_factor": self.scale_factor, "min_neighbors": self.min_neighbors,
                "min_size": self.min_size, "detect_max_side": self.detect_max_side,
                "equalize_hist": self.equalize}


def crop_face(frame: np.ndarray, box: np.ndarray, margin: float, size: int) -> np.ndarray:
    """Square crop around ``box`` grown by ``margin`` per side, clamped to the frame, → ``size``²."""
    x, y, w, h = (int(v) for v in box)
    cx, cy, side = x + w / 2, y + h / 2, max(w, h) * (1 + 2 * margin)
    H, W = frame.shape[:2]
    x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    x1, y1 = min(W, round(cx + side / 2)), min(H, round(cy + side / 2))
    crop = frame[y0:y1, x0:x1]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR)


class FaceExpert(TorchExpert):
    """Per detected face: an L2-normalised ``dim`` embedding at its frame's timestamp."""

    name = "face"
    version = "1"
    variants = EMBEDDINGS
    default_variant = "resnet50"

    def __init__(self, fps: float = 2.0, embedding: str = "resnet50", dim: int = 512,
                 weights: str | None = None, sha256: str | None = None, seed: int = 0,
                 detector: str = "haar", min_size: int = 24, crop_size: int = 224, margin: float = 0.2,
                 scale_factor: float = 1.1, min_neighbors: int = 7, detect_max_side: int | None = 640,
                 max_faces: int = 8, batch_size: int = 16, device: str | None = "auto",
                 num_cpus: float = 1.0, num_gpus: float = 0.0, threads: int | None = None,
                 amp: bool = True, cache_dir: str | None = None) -> None:
        if detector != "haar":
            raise ExpertConfigError(f"face: unknown detector {detector!r} (only 'haar' ships offline)")
        if dim < 1 or max_faces < 1 or margin < 0:
            raise ExpertConfigError("face: need dim >= 1, max_faces >= 1, margin >= 0")
        self._dim = int(dim)
        self.margin, self.max_faces = float(margin), int(max_faces)
        self.detector = HaarDetector(scale_factor, min_neighbors, min_size, detect_max_side)
        self._boxes: list[list[list[float]]] = []
        super().__init__(weights=weights, sha256=sha256, seed=seed, fps=fps, size=crop_size,
                         batch_size=batch_size, device=device, variant=embedding, threads=threads,
                         num_cpus=num_cpus, num_gpus=num_gpus, amp=amp, cache_dir=cache_dir)

    def output_dim(self) -> int:
        return self._dim

    def decode_needs(self) -> DecodeNeeds:
        return DecodeNeeds(frames=FrameNeeds(fps=self.fps, size=None))  # detection wants native pixels

    def build_model(self) -> nn.Module:
        return getattr(torchvision.models, EMBEDDINGS[self.variant])(weights=None, num_classes=self._dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model(x).float(), dim=1)

    def detect(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Boxes ``[K, 4]`` (x, y, w, h), largest first, at most ``max_faces``."""
        boxes = self.detector(frame_rgb)
        order = np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")
        return boxes[order][: self.max_faces]

    def units(self, view: MediaView) -> tuple[Any, np.ndarray]:
        crops, times, boxes = [], [], []
        if view.frames is not None and len(view.frames):
            ftimes = view.frame_times if view.frame_times is not None else np.arange(len(view.frames)) / self.fps
            for frame, t in zip(view.frames, ftimes, strict=False):
                for box in self.detect(frame):
                    crops.append(crop_face(frame, box, self.margin, self.size))
                    times.append(float(t))
                    boxes.append([float(t), *(int(v) for v in box)])
        data = torch.from_numpy(np.stack(crops)) if crops else None
        self._boxes.append(boxes)
        return data, np.asarray(times, np.float64)

    def make_batch(self, data: list[Any], units: list[Unit]) -> torch.Tensor:
        x = torch.stack([data[u.view][u.index] for u in units])
        return normalise(x, IMAGENET_MEAN, IMAGENET_STD).permute(0, 3, 1, 2)

    def extract(self, views: list[MediaView]) -> list[ExpertOutput]:
        self._boxes = []
        outs = super().extract(views)
        for out, boxes in zip(outs, self._boxes, strict=True):
            out.extra["boxes"] = boxes  # [t, x, y, w, h] per row
        return outs

    def backbone(self) -> str:
        return f"{self.variant} (fc→{self._dim}, L2-normalised) on {self.size}px face crops"

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov.update(self.detector.describe())
        prov.update({"embedding": self.variant, "crop_size": self.size, "margin": self.margin,
                     "max_faces": self.max_faces, "normalisation": "imagenet mean/std"})
        return prov
