"""The vocabulary, rebuilt from training captions with the VSE++ rule, and the fixed word vectors.

Rule (SPEC-DCPG §1.0): lowercase, tokenise, keep words seen at least ``threshold`` times;
specials ``<pad>``=0, ``<start>``=1, ``<end>``=2, ``<unk>``=3; words in first-seen order as the
original's ``Counter`` iteration gives them. NLTK's ``word_tokenize`` needs the *punkt* download,
which is not available offline, so words are ``\\w+`` runs and single punctuation marks (a
documented difference: contractions such as "don't" stay one word less split). The original
vocabulary pickles are never read. When the built vocabulary is larger than the model's table
(``model.vocab_size``) the most frequent words are kept.

Word vectors replace DCPG's GloVe bcolz folder: ``seeded`` gives every word its own N(0, std^2)
vector from a hash of (seed, word), so a word's vector does not depend on the vocabulary; a path
reads ``X.npy`` (rows) and ``X.txt`` (one word per row) beside it, memory-mapped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from videxperts.errors import UserError

SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
PAD, START, END, UNK = range(4)
_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(caption: str) -> list[str]:
    """Lowercased words and punctuation marks of a caption."""
    return _TOKEN.findall(caption.lower())


class Vocabulary:
    def __init__(self, words: list[str]) -> None:
        if tuple(words[:4]) != SPECIALS:
            raise UserError(f"vocabulary: the first four words must be {', '.join(SPECIALS)}")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, captions: Iterable[str], threshold: int = 4, max_size: int | None = None) -> Vocabulary:
        counts: Counter[str] = Counter()
        for c in captions:
            counts.update(tokenize(c))
        kept = [w for w, n in counts.items() if n >= threshold and w not in SPECIALS]
        if max_size is not None and len(kept) > max_size - len(SPECIALS):
            rank = sorted(range(len(kept)), key=lambda i: (-counts[kept[i]], i))[: max_size - len(SPECIALS)]
            kept = [kept[i] for i in sorted(rank)]
        return cls([*SPECIALS, *kept])

    def encode(self, caption: str) -> list[int]:
        """``<start>`` + word ids (unknown words -> ``<unk>``) + ``<end>``."""
        return [START, *(self.index.get(w, UNK) for w in tokenize(caption)), END]

    def to_json(self) -> str:
        return json.dumps({"specials": list(SPECIALS), "words": self.words}, indent=0)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        return cls(list(json.loads(text)["words"]))

    @property
    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.words).encode()).hexdigest()[:16]


def _seeded_vector(word: str, seed: int, dim: int, std: float) -> np.ndarray:
    h = int.from_bytes(hashlib.sha256(f"{seed}\0{word}".encode()).digest()[:8], "little")
    return (np.random.default_rng(h).standard_normal(dim) * std).astype(np.float32)


def word_vectors(vocab: Vocabulary, dim: int, source: str = "seeded", seed: int = 0,
                 std: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(table [V, dim] aligned with vocabulary ids, has_vector [V]); ``<pad>`` is the zero vector."""
    table = np.zeros((len(vocab), dim), np.float32)
    has = np.zeros(len(vocab), bool)
    if source == "seeded":
        for i, w in enumerate(vocab.words[1:], start=1):
            table[i] = _seeded_vector(w, seed, dim, std)
        has[1:] = True
        return table, has
    path = Path(source)
    words_file = path.with_suffix(".txt")
    if not path.is_file() or not words_file.is_file():
        raise UserError(f"text.vectors: {source}: need the vectors file and {words_file.name} beside it")
    rows = np.load(path, mmap_mode="r", allow_pickle=False)
    if rows.ndim != 2 or rows.shape[1] != dim:
        raise UserError(f"text.vectors: {source}: expected [N, {dim}] vectors, got shape {tuple(rows.shape)}")
    where = {w: i for i, w in enumerate(words_file.read_text().split("\n")) if w}
    for i, w in enumerate(vocab.words[1:], start=1):
        j = where.get(w)
        if j is not None and j < len(rows):
            table[i], has[i] = rows[j], True
    if not has[UNK]:  # the unknown word needs a vector for the aligned (fixed) mode
        table[UNK], has[UNK] = _seeded_vector("<unk>", seed, dim, std), True
    return table, has
