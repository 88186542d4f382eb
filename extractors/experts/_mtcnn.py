"""MTCNN face detection (facenet-pytorch's P/R/O-Nets and shipped weights) and 5-point alignment.

``facenet-pytorch`` declares old pins (torch<2.3, numpy<2) but its MTCNN runs with the project's
torch; it is installed with ``--no-deps`` (Makefile). Its weights (``data/pnet.pt``, ``rnet.pt``,
``onet.pt``) ship in the wheel and load with ``torch.load``'s default ``weights_only=True``;
nothing is downloaded. Torch's intra-op threads are those of the actor (set from ``num_cpus``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from videxperts.errors import UserError

# ArcFace's 5-point template for a 112 px crop: left eye, right eye, nose, mouth left, mouth right.
TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                         [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)
TEMPLATE_MARGIN = 0.2  # the template's own margin around the face, in the units of ``margin``
WEIGHT_FILES = ("pnet.pt", "rnet.pt", "onet.pt")


class FaceDetectorError(UserError):
    """The MTCNN detector cannot run (package missing or a weight file unreadable)."""


class Detections:
    """Faces of one frame: boxes ``[K, 4]`` (x, y, w, h), probabilities ``[K]``, landmarks ``[K, 5, 2]``."""

    def __init__(self, boxes: np.ndarray, probs: np.ndarray | None = None, landmarks: np.ndarray | None = None) -> None:
        self.boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
        k = len(self.boxes)
        self.probs = np.ones(k, np.float32) if probs is None else np.asarray(probs, np.float32).reshape(k)
        self.landmarks = None if landmarks is None else np.asarray(landmarks, np.float32).reshape(k, 5, 2)

    def __len__(self) -> int:
        return len(self.boxes)

    def take(self, idx: np.ndarray) -> Detections:
        return Detections(self.boxes[idx], self.probs[idx], None if self.landmarks is None else self.landmarks[idx])


class MTCNNDetector:
    """Faces with probability and 5 landmarks, in the coordinates of the given RGB frame.

    Frames larger than ``detect_max_side`` are downscaled first (the pyramid's cost grows with
    the pixel count); ``min_size`` is in original pixels. ``min_prob`` filters the O-Net score.
    """

    def __init__(self, min_size: int = 24, detect_max_side: int | None = 640, min_prob: float = 0.9,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), device: str | torch.device = "cpu") -> None:
        try:
            from facenet_pytorch.models.mtcnn import MTCNN
        except ImportError as e:
            raise FaceDetectorError("face: detector mtcnn needs facenet-pytorch "
                                    "(pip install --no-deps facenet-pytorch==2.6.0)") from e
        self.min_size, self.detect_max_side, self.min_prob = int(min_size), detect_max_side, float(min_prob)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.device = torch.device(device)
        try:
            self.mtcnn = MTCNN(keep_all=True, min_face_size=max(12, self.min_size // 2), thresholds=list(self.thresholds),
                               select_largest=False, post_process=False, device=self.device)
        except Exception as e:  # noqa: BLE001 - a corrupt/missing weight file surfaces as many types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise FaceDetectorError(f"face: cannot load the MTCNN weights of facenet-pytorch ({first})") from e

    def __call__(self, frame_rgb: np.ndarray) -> Detections:
        img = np.ascontiguousarray(frame_rgb)
        h, w = img.shape[:2]
        scale = 1.0
        if self.detect_max_side and max(h, w) > self.detect_max_side:
            scale = self.detect_max_side / max(h, w)
            img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        self.mtcnn.min_face_size = max(12, round(self.min_size * scale))
        with torch.inference_mode():
            boxes, probs, points = self.mtcnn.detect(torch.from_numpy(img), landmarks=True)
        if boxes is None or len(boxes) == 0:
            return Detections(np.zeros((0, 4)))
        boxes = np.asarray(boxes.tolist(), np.float64).reshape(-1, 4) / scale  # facenet returns object arrays
        probs = np.asarray(probs.tolist(), np.float64).reshape(-1)
        points = np.asarray(points.tolist(), np.float64).reshape(-1, 5, 2) / scale
        x0, y0 = np.clip(boxes[:, 0], 0, w), np.clip(boxes[:, 1], 0, h)
        x1, y1 = np.clip(boxes[:, 2], 0, w), np.clip(boxes[:, 3], 0, h)
        xywh = np.stack([x0, y0, x1 - x0, y1 - y0], 1)
        keep = (probs >= self.min_prob) & (xywh[:, 2] >= self.min_size) & (xywh[:, 3] >= self.min_size)
        return Detections(np.round(xywh[keep]), probs[keep], points[keep])

    def describe(self) -> dict[str, Any]:
        return {"detector": f"MTCNN (facenet-pytorch {_version('facenet-pytorch')}, shipped P/R/O-Net weights)",
                "detector_weights_sha256": weights_checksum(), "min_size": self.min_size,
                "detect_max_side": self.detect_max_side, "min_prob": self.min_prob,
                "thresholds": list(self.thresholds), "alignment": "5-point similarity to the ArcFace template"}


def weights_checksum() -> str:
    """SHA-256 over the three shipped weight files (the detector's identity in provenance)."""
    import facenet_pytorch

    d = Path(facenet_pytorch.__file__).parent / "data"
    h = hashlib.sha256()
    for name in WEIGHT_FILES:
        h.update(name.encode())
        h.update((d / name).read_bytes())
    return h.hexdigest()


def align_face(frame: np.ndarray, landmarks: np.ndarray, margin: float, size: int) -> np.ndarray:
    """``size``² crop with the eyes level and the 5 landmarks on the ArcFace template.

    ``margin`` widens (or narrows) the crop around the template's face like the box crop's
    margin does: 0.2 is the template as published.
    """
    shrink = (1 + 2 * TEMPLATE_MARGIN) / (1 + 2 * margin)
    centre = np.float32(56.0)
    dst = (centre + (TEMPLATE_112 - centre) * shrink) * (size / 112.0)
    m, _ = cv2.estimateAffinePartial2D(np.asarray(landmarks, np.float32), dst.astype(np.float32), method=cv2.LMEDS)
    if m is None:  # degenerate landmarks (all on one point): fall back to scaling the frame centre
        m = np.array([[size / frame.shape[1], 0, 0], [0, size / frame.shape[0], 0]], np.float64)
    return cv2.warpAffine(np.ascontiguousarray(frame), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
