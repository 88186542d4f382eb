"""A static word-vector table (word2vec text/binary or GloVe text), the published CE word space.

Tokenisation is lower-case alphanumeric runs (``videxperts.extractors.text.base.simple_words``); table
keys are lower-cased on load (the first occurrence of a key wins, which for word2vec's
frequency-sorted files keeps the most frequent casing). Out-of-vocabulary handling:

* ``encode_tokens`` drops OOV tokens, so a caption's rows are its in-vocabulary words (a
  caption with none gives ``[0, dim]``);
* ``encode_words`` keeps one row per input word: the mean of the vectors of the word's
  in-vocabulary pieces ("e-mail" → "e", "mail"), or a zero row when none is known. Use
  :meth:`WordVecEncoder.known` to tell OOV rows apart.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.extractors.text.base import TextEncoder, TextEncoderError, sha256_of, simple_words


def _is_int(s: str) -> bool:
    return s.isdigit()


def read_word_vectors(path: str | Path, *, binary: bool | None = None, limit: int | None = None
                      ) -> tuple[list[str], np.ndarray]:
    """Read a word2vec (text or binary, with ``count dim`` header) or GloVe (no header) table.

    ``binary=None`` guesses from the extension (``.bin`` → binary). ``limit`` keeps the first
    N rows (word2vec files are sorted by frequency), as gensim's ``limit`` does.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise TextEncoderError(f"{path}: word-vector file not found")
    if binary is None:
        binary = path.suffix == ".bin"
    with open(path, "rb") as f:
        if binary:
            return _read_binary(f, path, limit)
        return _read_text(f, path, limit)


def _read_text(f, path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    for lineno, raw in enumerate(f, 1):
        parts = raw.decode("utf-8", errors="replace").rstrip().split(" ")
        if lineno == 1 and len(parts) == 2 and _is_int(parts[0]) and _is_int(parts[1]):
            dim = int(parts[1])  # word2vec text header
            continue
        if len(parts) < 2:
            continue
        if dim is None:
            dim = len(parts) - 1
        if len(parts) - 1 != dim:
            raise TextEncoderError(f"{path}:{lineno}: expected {dim} values, got {len(parts) - 1}")
        words.append(parts[0])
        try:
            rows.append(np.asarray(parts[1:], dtype=np.float32))
        except ValueError as e:
            raise TextEncoderError(f"{path}:{lineno}: not a number ({e})") from e
        if limit and len(words) >= limit:
            break
    if not words:
        raise TextEncoderError(f"{path}: no word vectors found")
    return words, np.stack(rows)


def _read_binary(f, path: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    header = f.readline().split()
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise TextEncoderError(f"{path}: not a word2vec binary file (bad header)")
    count, dim = int(header[0]), int(header[1])
    if limit:
        count = min(count, limit)
    words: list[str] = []
    vecs = np.empty((count, dim), np.float32)
    for i in range(count):
        chars = bytearray()
        while True:
            c = f.read(1)
            if not c:
                raise TextEncoderError(f"{path}: truncated at row {i}")
            if c == b" ":
                break
            if c != b"\n":
                chars.extend(c)
        data = f.read(4 * dim)
        if len(data) != 4 * dim:
            raise TextEncoderError(f"{path}: truncated at row {i}")
        vecs[i] = np.frombuffer(data, dtype="<f4")
        words.append(chars.decode("utf-8", errors="replace"))
    return words, vecs


def _table_path(path: str | None) -> Path:
    path = path or os.environ.get("VIDEXPERTS_WORDVEC")
    if not path:
        raise TextEncoderError(
            "wordvec: no word-vector file configured; set path: (word2vec .bin/.txt or GloVe .txt) "
            "in the profile or VIDEXPERTS_WORDVEC"
        )
    table = Path(path).expanduser()
    if not table.is_file():
        raise TextEncoderError(f"{path}: word-vector file not found")
    return table


@lru_cache(maxsize=8)
def _identity_cached(path: str, size: int, mtime_ns: int) -> str:
    return "sha256:" + sha256_of(path)


def _identity(path: Path) -> str:
    st = path.stat()
    return _identity_cached(str(path), st.st_size, st.st_mtime_ns)


def table_dim(path: Path, binary: bool | None = None) -> int:
    """Vector size from the header (word2vec) or the first row (GloVe)."""
    with open(path, "rb") as f:
        first = f.readline().decode("utf-8", errors="replace").rstrip().split(" ")
    if len(first) == 2 and _is_int(first[0]) and _is_int(first[1]):
        return int(first[1])
    if binary or (binary is None and path.suffix == ".bin") or len(first) < 2:
        raise TextEncoderError(f"{path}: cannot tell the vector size (bad header)")
    return len(first) - 1


class WordVecEncoder(TextEncoder):
    """Lookups in a word-vector table given by ``path``; no path configured is a clear error."""

    name = "wordvec"

    def __init__(self, path: str | None = None, binary: bool | None = None, limit: int | None = None,
                 **_: Any) -> None:
        self.path = _table_path(path)
        words, vecs = read_word_vectors(self.path, binary=binary, limit=limit)
        self.index: dict[str, int] = {}
        for i, w in enumerate(words):
            self.index.setdefault(w.lower(), i)
        self.vectors = vecs
        self.dim = int(vecs.shape[1])
        self._cfg = {"path": str(self.path), "binary": binary, "limit": limit}

    def known(self, word: str) -> bool:
        """Whether any piece of ``word`` is in the table (its ``encode_words`` row is non-zero)."""
        return any(p in self.index for p in simple_words(word))

    def encode_tokens(self, texts: list[str]) -> list[np.ndarray]:
        out = []
        for text in texts:
            ids = [self.index[w] for w in simple_words(text) if w in self.index]
            out.append(self.vectors[ids].astype(np.float32) if ids else self._empty())
        return out

    def encode_words(self, words: list[str]) -> np.ndarray:
        out = self._empty(len(words))
        for row, word in enumerate(words):
            ids = [self.index[p] for p in simple_words(word) if p in self.index]
            if ids:
                out[row] = self.vectors[ids].mean(axis=0)
        return out

    def provenance(self) -> dict[str, Any]:
        return self.describe(**self._cfg)

    @classmethod
    def describe(cls, path: str | None = None, binary: bool | None = None, limit: int | None = None,
                 **_: Any) -> dict[str, Any]:
        """Provenance without reading the whole table (same dict as a loaded encoder's)."""
        table = _table_path(path)
        return {
            "encoder": cls.name,
            "backbone": f"word-vectors:{table.name}",
            "weights": _identity(table),
            "dim": table_dim(table, binary),
            "limit": limit,
            "tokens": "lower-case alphanumeric words; OOV tokens dropped",
            "word_vector": "mean of in-vocabulary pieces; zero row when OOV",
            "dtype": "float32",
        }
