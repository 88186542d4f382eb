"""Caption vocabulary: spaCy's rule-based English tokenizer, lowercased, built from the training captions.

Specials come first in the order the original's torchtext (legacy) gave them: ``<unk>`` = 0,
``<blank>`` (pad) = 1, ``<s>`` = 2, ``</s>`` = 3; then words by descending frequency, ties
alphabetical, kept when seen at least ``min_freq`` times. Saved as JSON (never a pickle).
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from videxperts.errors import UserError

SPECIALS = ("<unk>", "<blank>", "<s>", "</s>")
UNK, PAD, BOS, EOS = 0, 1, 2, 3


@functools.lru_cache(maxsize=1)
def _tokenizer():  # noqa: ANN202 - spaCy's Tokenizer
    import spacy

    return spacy.blank("en").tokenizer


def tokenize(text: str) -> list[str]:
    """Lowercased spaCy tokens of one caption, whitespace tokens dropped."""
    return [t.text.lower() for t in _tokenizer()(str(text)) if not t.is_space]


class Vocabulary:
    def __init__(self, itos: list[str]) -> None:
        if tuple(itos[:4]) != SPECIALS:
            raise UserError(f"vocabulary: the first four tokens must be {list(SPECIALS)}, got {itos[:4]}")
        self.itos = list(itos)
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 1) -> Vocabulary:
        counts = Counter(w for c in captions for w in tokenize(c))
        words = sorted((w for w, n in counts.items() if n >= min_freq and w not in SPECIALS),
                       key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *words])

    def encode(self, caption: str) -> list[int]:
        """``<s>`` tokens ``</s>`` (unknown words map to ``<unk>``)."""
        return [BOS, *(self.stoi.get(w, UNK) for w in tokenize(caption)), EOS]

    def words(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def to_json(self) -> str:
        return json.dumps({"format": "videxperts-vocab-1", "itos": self.itos})

    def save(self, path: str | Path) -> Path:
        Path(path).write_text(self.to_json())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        try:
            doc = json.loads(Path(path).read_text())
            itos = doc["itos"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a videxperts vocabulary JSON ({exc})") from None
        if not isinstance(itos, list) or not all(isinstance(w, str) for w in itos):
            raise UserError(f"{path}: 'itos' must be a list of strings")
        return cls(itos)


def train_captions(dataset: str | Path) -> list[str]:
    """The caption strings of the training split of a dataset directory."""
    from videxperts.storage.manifest import read_captions

    table = read_captions(dataset).to_pydict()
    return [c for c, s in zip(table["caption"], table["split"], strict=True) if s == "train"]


def vocabulary_for(dataset: str | Path, min_freq: int = 1, where: str = "dataset") -> Vocabulary:
    """The vocabulary of a dataset's training captions (cached per file version)."""
    path = Path(dataset) / "captions.parquet"
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        raise UserError(f"{where}: {dataset}: no captions.parquet (a dataset directory from "
                        "'videxperts data ...')") from None
    vocab = _cached(str(path.parent), stamp, min_freq)
    if len(vocab) == len(SPECIALS):
        raise UserError(f"{where}: {dataset}: no training captions to build a vocabulary from")
    return vocab


@functools.lru_cache(maxsize=4)
def _cached(dataset: str, stamp: int, min_freq: int) -> Vocabulary:
    return Vocabulary.build(train_captions(dataset), min_freq)
