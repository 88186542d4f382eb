"""The text-encoder interface shared by caption encoding and the word-level experts (OCR, speech).

Two views of the same model: :meth:`TextEncoder.encode_tokens` gives per-token features of
each caption (what the text NetVLAD aggregates) and :meth:`TextEncoder.encode_words` gives one
vector per word (what OCR and speech store per recognised word). Keeping both behind one
object means a word recognised on screen and the same word in a caption live in one space.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

_WORD_RE = re.compile(r"[a-z0-9]+")
_CHUNK = 1 << 20


class TextEncoderError(UserError):
    """A text encoder that cannot be built: unknown name, weights not present, bad word table."""


def simple_words(text: str) -> list[str]:
    """Lower-case alphanumeric runs: the tokenisation shared by word tables and word experts."""
    return _WORD_RE.findall(text.lower())


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file (weights identity for provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class TextEncoder(ABC):
    """Per-token caption features and per-word vectors from one model.

    ``encode_tokens`` returns one float32 ``[L_i, dim]`` array per text with no padding rows
    (``L_i`` may be 0 for an empty text); ``encode_words`` returns float32 ``[N, dim]``, one row
    per input word, in order. Both are deterministic for a given model.
    """

    name: str
    dim: int

    @abstractmethod
    def encode_tokens(self, texts: list[str]) -> list[np.ndarray]:
        """Per-token features of each text, padding-free."""

    @abstractmethod
    def encode_words(self, words: list[str]) -> np.ndarray:
        """One vector per word, ``[N, dim]``."""

    @abstractmethod
    def provenance(self) -> dict[str, Any]:
        """Encoder name, backbone, weights identity, dim, tokenisation: what the store records."""

    @classmethod
    def describe(cls, **cfg: Any) -> dict[str, Any]:
        """Provenance computed from ``cfg`` without loading weights (equal to ``provenance()``)."""
        raise NotImplementedError(f"{cls.__name__}.describe")

    def _empty(self, n: int = 0) -> np.ndarray:
        return np.zeros((n, self.dim), np.float32)
