"""Face expert: face detection on sampled frames → one embedding per detected face.

Two detectors, both offline: ``mtcnn`` (default; facenet-pytorch's MTCNN with the P/R/O-Net
weights shipped in its wheel: boxes, probabilities and 5 landmarks, :mod:`._mtcnn`) and
``haar`` (OpenCV's bundled frontal-face cascade; ``cv2.FaceDetectorYN`` would need a model file
that is not shipped). An MTCNN face is aligned on its landmarks (eyes level, ArcFace template)
into a ``crop_size`` crop; a Haar face is cropped square with a margin. The crop is embedded by a ResNet (VGGFace2-class
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
from videxperts.extractors.experts._mtcnn import Detections, MTCNNDetector, align_face

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

    def __call__(self, frame_rgb: np.ndarray) -> Detections:
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
            return Detections(np.zeros((0, 4), np.int32))
        return Detections(np.round(np.asarray(boxes, np.float64) / scale).astype(np.int32))

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
                 detector: str = "mtcnn", min_size: int = 24, crop_size: int = 224, margin: float = 0.2,
                 scale_factor: float = 1.1, min_neighbors: int = 7, detect_max_side: int | None = 640,
                 min_prob: float = 0.9, align: bool = True,
                 max_faces: int = 8, batch_size: int = 16, device: str | None = "auto",
                 num_cpus: float = 1.0, num_gpus: float = 0.0, threads: int | None = None,
                 amp: bool = True, cache_dir: str | None = None) -> None:
        if detector not in ("mtcnn", "haar"):
            raise ExpertConfigError(f"face: unknown detector {detector!r} (choose mtcnn or haar)")
        if dim < 1 or max_faces < 1 or margin < 0:
            raise ExpertConfigError("face: need dim >= 1, max_faces >= 1, margin >= 0")
        self._dim = int(dim)
        self.margin, self.max_faces, self.align = float(margin), int(max_faces), bool(align)
        self.detector_name = detector
        self._mtcnn_cfg = {"min_size": min_size, "detect_max_side": detect_max_side, "min_prob": min_prob}
        self.detector: HaarDetector | MTCNNDetector | None = (
            HaarDetector(scale_factor, min_neighbors, min_size, detect_max_side) if detector == "haar" else None)
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

    def load(self, device: str | None = None) -> None:
        """The embedding net (base class), then the detector on the same device.

        Threads: torch's intra-op pool is set by the actor (and by ``threads`` here) and MTCNN
        runs in it; OpenCV's own pool (Haar, resizes, warps) is bounded to the same count.
        """
        super().load(device)
        cv2.setNumThreads(int(self.threads or max(1, round(self.resources.num_cpus))))
        if self.detector is None:
            self.detector = MTCNNDetector(device=self.device, **self._mtcnn_cfg)

    def detect(self, frame_rgb: np.ndarray) -> Detections:
        """Faces of one frame, largest first, at most ``max_faces``."""
        if self.detector is None:
            self.load()
        assert self.detector is not None
        found = self.detector(frame_rgb)
        order = np.argsort(-(found.boxes[:, 2] * found.boxes[:, 3]), kind="stable")
        return found.take(order[: self.max_faces])

    def face_crop(self, frame: np.ndarray, found: Detections, k: int) -> np.ndarray:
        """The k-th face's crop: aligned on its landmarks when there are any, else the box."""
        if self.align and found.landmarks is not None:
            return align_face(frame, found.landmarks[k], self.margin, self.size)
        return crop_face(frame, found.boxes[k], self.margin, self.size)

    def units(self, view: MediaView) -> tuple[Any, np.ndarray]:
        crops, times, boxes = [], [], []
        if view.frames is not None and len(view.frames):
            ftimes = view.frame_times if view.frame_times is not None else np.arange(len(view.frames)) / self.fps
            for frame, t in zip(view.frames, ftimes, strict=False):
                found = self.detect(frame)
                for k, box in enumerate(found.boxes):
                    crops.append(self.face_crop(frame, found, k))
                    times.append(float(t))
                    boxes.append([float(t), *(int(v) for v in box), round(float(found.probs[k]), 4)])
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
            out.extra["boxes"] = boxes  # [t, x, y, w, h, prob] per row (prob 1.0 for Haar)
        return outs

    def backbone(self) -> str:
        return f"{self.variant} (fc→{self._dim}, L2-normalised) on {self.size}px face crops"

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        if self.detector is None:
            self.detector = MTCNNDetector(device=self.device, **self._mtcnn_cfg)
        prov.update(self.detector.describe())
        prov.update({"embedding": self.variant, "crop_size": self.size, "margin": self.margin,
                     "max_faces": self.max_faces, "normalisation": "imagenet mean/std",
                     "face_crop": "landmark-aligned" if self.align and self.detector_name == "mtcnn" else "box + margin"})
        return prov
