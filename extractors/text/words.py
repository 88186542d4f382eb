"""Recognised words → vectors, shared by the word-level experts (OCR, speech).

The encoder is configured by a profile entry (``"minilm"`` or ``{name: wordvec, path: ...}``),
described cheaply at construction (dim and provenance without loading weights) and loaded
only in the worker that embeds words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from videxperts.extractors.text import build_text_encoder, describe_text_encoder, split_encoder_spec
from videxperts.extractors.text.base import TextEncoder


class WordEmbedder:
    """Lazy word encoder: ``dim``/``provenance`` are known up front, the model loads on first use."""

    def __init__(self, spec: str | Mapping[str, Any], device: str = "cpu") -> None:
        self.name, self.cfg = split_encoder_spec(spec)
        self.device = device
        self.info = describe_text_encoder(self.name, **self.cfg)
        self.dim = int(self.info["dim"])
        self.encoder: TextEncoder | None = None

    def load(self) -> TextEncoder:
        if self.encoder is None:
            cfg = dict(self.cfg)
            if self.name != "wordvec":
                cfg.setdefault("device", self.device)
            self.encoder = build_text_encoder(self.name, **cfg)
        return self.encoder

    def __call__(self, words: list[str]) -> np.ndarray:
        """float32 ``[len(words), dim]``."""
        if not words:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.load().encode_words(words), dtype=np.float32)
