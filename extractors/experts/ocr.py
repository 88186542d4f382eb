"""OCR expert: scene/overlay text on keyframes → one word vector per newly appearing word.

Frames come at ``fps`` (keyframes, 1 fps by default) in native resolution, downscaled so the
longer side is at most ``max_side``. The engine returns text lines with a confidence; lines
under ``min_confidence`` are dropped, the rest split into lower-case alphanumeric words. A word
that was already on the previous keyframe is not repeated (text that stays on screen for ten
seconds counts once), so each row's timestamp is the keyframe where that word appeared. Rows
are the word encoder's vectors (MiniLM 384-d by default; the published CE used word2vec 300-d,
available as ``word_encoder: {name: wordvec, path: ...}``).

Engines: ``rapidocr`` (PP-OCRv4 ONNX models shipped in the ``rapidocr-onnxruntime`` wheel,
the default) and ``tesseract`` (Debian's ``tesseract`` CLI, one process per keyframe: slower,
weaker on video overlays, kept as a second, independent engine).
"""

from __future__ import annotations

import importlib.metadata
import io
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any, Protocol

import cv2
import numpy as np

from videxperts.errors import UserError
from videxperts.extractors.base import DecodeNeeds, Expert, ExpertOutput, FrameNeeds, MediaView, Resources
from videxperts.extractors.experts._engines import build_engine
from videxperts.extractors.text import simple_words
from videxperts.extractors.text.words import WordEmbedder


class OCRConfigError(UserError):
    """A bad OCR profile entry or an engine that is not installed."""


class OCREngine(Protocol):
    """Reads text lines from one RGB frame, in reading order, with confidences in [0, 1]."""

    name: str

    def version(self) -> str: ...

    def read(self, image_rgb: np.ndarray) -> list[tuple[str, float]]: ...


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class RapidOCREngine:
    """PP-OCRv4 detection + recognition through onnxruntime (models ship in the wheel)."""

    name = "rapidocr"

    def __init__(self, threads: int | None = None, use_cls: bool = False, det_limit_side_len: int = 960) -> None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise OCRConfigError("ocr: engine rapidocr needs rapidocr-onnxruntime (make install)") from e
        kw: dict[str, Any] = {"use_cls": use_cls, "det_limit_type": "max",
                              "det_limit_side_len": int(det_limit_side_len)}
        if threads:
            for part in ("det", "cls", "rec"):
                kw[f"{part}_intra_op_num_threads"] = int(threads)
                kw[f"{part}_inter_op_num_threads"] = 1
        self.use_cls = use_cls
        self.engine = RapidOCR(**kw)

    def version(self) -> str:
        return f"rapidocr-onnxruntime {_dist_version('rapidocr-onnxruntime')} (PP-OCRv4 det/rec), " \
               f"onnxruntime {_dist_version('onnxruntime')}"

    def read(self, image_rgb: np.ndarray) -> list[tuple[str, float]]:
        bgr = np.ascontiguousarray(image_rgb[..., ::-1])  # RapidOCR takes ndarrays as BGR
        result, _ = self.engine(bgr)
        return [(str(text), float(score)) for _box, text, score in (result or [])]


class TesseractEngine:
    """Debian's ``tesseract`` CLI (PNG on stdin, TSV on stdout); one process per frame."""

    name = "tesseract"

    def __init__(self, lang: str = "eng", psm: int = 11, timeout_s: float = 30.0) -> None:
        exe = shutil.which("tesseract")
        if exe is None:
            raise OCRConfigError("ocr: engine tesseract needs the tesseract CLI (Debian tesseract-ocr)")
        self.exe, self.lang, self.psm, self.timeout_s = exe, lang, int(psm), float(timeout_s)
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
        self._version = (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "?"

    def version(self) -> str:
        return self._version

    def read(self, image_rgb: np.ndarray) -> list[tuple[str, float]]:
        ok, png = cv2.imencode(".png", np.ascontiguousarray(image_rgb[..., ::-1]))
        if not ok:
            return []
        proc = subprocess.run(
            [self.exe, "stdin", "stdout", "-l", self.lang, "--psm", str(self.psm), "tsv"],
            input=png.tobytes(), capture_output=True, timeout=self.timeout_s, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"tesseract failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
        words: list[tuple[str, float]] = []
        for line in io.StringIO(proc.stdout.decode("utf-8", errors="replace")).read().splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) == 12 and cols[11].strip():
                try:
                    conf = float(cols[10])
                except ValueError:
                    continue
                if conf >= 0:
                    words.append((cols[11].strip(), conf / 100.0))
        return words


def build_ocr_engine(name: str, **cfg: Any) -> OCREngine:
    """An engine by name; ``cfg`` are its options (unknown options are an error, not ignored)."""
    return build_engine("ocr", {"rapidocr": RapidOCREngine, "tesseract": TesseractEngine}, name, cfg, OCRConfigError)


def downscale(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink so the longer side is at most ``max_side`` (area interpolation keeps strokes)."""
    h, w = frame.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return frame
    s = max_side / max(h, w)
    return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


class NewWords:
    """Keeps the words of the previous keyframe so persistent text is emitted once."""

    def __init__(self) -> None:
        self.previous: set[str] = set()

    def __call__(self, words: list[str]) -> list[str]:
        new, last = [], None
        for w in words:
            if w not in self.previous and w != last:
                new.append(w)
            last = w
        self.previous = set(words)
        return new


class OCRExpert(Expert):
    """Words read on keyframes → ``[T_words, D]`` word vectors at the keyframe time they appeared."""

    name = "ocr"
    version = "1"

    def __init__(self, fps: float = 1.0, min_confidence: float = 0.5,
                 word_encoder: str | Mapping[str, Any] = "minilm", engine: str = "rapidocr",
                 max_side: int | None = 640, engine_options: Mapping[str, Any] | None = None,
                 threads: int | None = 1, num_cpus: float = 1.0, device: str = "cpu",
                 min_word_len: int = 1) -> None:
        if fps <= 0 or not 0.0 <= min_confidence <= 1.0:
            raise OCRConfigError("ocr: need fps > 0 and 0 <= min_confidence <= 1")
        if engine not in ("rapidocr", "tesseract"):
            raise OCRConfigError(f"ocr: unknown engine {engine!r} (choose rapidocr or tesseract)")
        self.fps, self.min_confidence, self.engine_name = float(fps), float(min_confidence), engine
        self.max_side = int(max_side) if max_side else None
        self.min_word_len = int(min_word_len)
        self.engine_options = dict(engine_options or {})
        if engine == "rapidocr" and threads:
            self.engine_options.setdefault("threads", int(threads))
        self.words = WordEmbedder(word_encoder, device=device)
        self.dim = self.words.dim
        self.needs = DecodeNeeds(frames=FrameNeeds(fps=self.fps, size=None))
        self.resources = Resources(num_cpus=float(num_cpus), num_gpus=0.0)
        self.engine: OCREngine | None = None
        self._state: dict[str, NewWords] = {}  # per video, across the windows of one video

    def load(self, device: str = "cpu") -> None:
        if self.engine is None:
            self.engine = build_ocr_engine(self.engine_name, **self.engine_options)
        self.words.load()

    def read_words(self, frame_rgb: np.ndarray) -> list[str]:
        """Confident words on one frame, lower-case, in reading order."""
        assert self.engine is not None
        words: list[str] = []
        for text, conf in self.engine.read(downscale(frame_rgb, self.max_side)):
            if conf >= self.min_confidence:
                words += [w for w in simple_words(text) if len(w) >= self.min_word_len]
        return words

    def extract(self, views: list[MediaView]) -> list[ExpertOutput]:
        if self.engine is None:
            self.load()
        return [self._one(v) for v in views]

    def _one(self, view: MediaView) -> ExpertOutput:
        if view.window_index == 0 or view.video_id not in self._state:
            self._state[view.video_id] = NewWords()
        dedup = self._state[view.video_id]
        words: list[str] = []
        times: list[float] = []
        frames = view.frames if view.frames is not None else np.zeros((0, 1, 1, 3), np.uint8)
        ftimes = view.frame_times if view.frame_times is not None else np.arange(len(frames)) / self.fps
        for frame, t in zip(frames, ftimes, strict=False):
            for w in dedup(self.read_words(frame)):
                words.append(w)
                times.append(float(t))
        if view.is_last_window:
            self._state.pop(view.video_id, None)
        return ExpertOutput(self.words(words), np.asarray(times, np.float64), {"words": words, "times": times})

    def provenance(self) -> dict[str, Any]:
        engine = self.engine or build_ocr_engine(self.engine_name, **self.engine_options)
        self.engine = engine
        return {
            "backbone": f"{self.engine_name} + {self.words.name} word vectors",
            "engine": engine.version(),
            "weights": self.words.info["weights"],
            "word_encoder": self.words.info,
            "min_confidence": self.min_confidence,
            "max_side": self.max_side,
            "dedup": "a word on consecutive keyframes is emitted once, at its first keyframe",
            "sampling": self.needs.to_dict(),
            "extractor_version": self.version,
            "dtype": "float32",
        }
