"""Word vectors for the frozen caption embedding.

A GloVe or word2vec *text* file given by path is streamed line by line (a 2 GB GloVe never
sits in memory; only the vocabulary's rows are parsed). Offline, a seeded table: each word's
vector comes from its own seeded generator, so it does not depend on the rest of the
vocabulary. Specials and words missing from the file get zero vectors (as published).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videxperts.errors import UserError
from videxperts.training.captioning.vocab import SPECIALS

SEEDED_STD = 0.4  # about GloVe 840B's per-dimension spread


def seeded_vectors(itos: list[str], dim: int, seed: int) -> np.ndarray:
    out = np.zeros((len(itos), dim), dtype=np.float32)
    for i, word in enumerate(itos):
        if word in SPECIALS:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(word.encode("utf-8"))])
        out[i] = rng.normal(0.0, SEEDED_STD, dim)
    return out


def read_vectors(path: str | Path, itos: list[str], dim: int) -> tuple[np.ndarray, int]:
    """(V, dim) rows of ``itos`` found in a GloVe/word2vec text file, and how many were found."""
    index = {w: i for i, w in enumerate(itos) if w not in SPECIALS}
    out = np.zeros((len(itos), dim), dtype=np.float32)
    found = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                word, _, rest = line.rstrip("\n").partition(" ")
                if lineno == 1 and len(rest.split()) == 1 and word.isdigit():
                    continue  # word2vec header "N DIM"
                row = index.get(word)
                if row is None:  # not in the vocabulary, or a repeated word (first one wins)
                    continue
                values = rest.split(" ")
                if len(values) != dim:
                    raise UserError(f"{path}: line {lineno}: vector for {word!r} has {len(values)} dimensions, "
                                    f"expected {dim} (a truncated or corrupt file?)")
                try:
                    out[row] = np.asarray(values, dtype=np.float32)
                except ValueError:
                    raise UserError(f"{path}: line {lineno}: vector for {word!r} is not numeric") from None
                found += 1
                del index[word]
    except OSError as exc:
        raise UserError(f"{path}: cannot read the word-vector file ({exc.strerror or exc})") from None
    return out, found


def load_word_embeddings(weight: torch.Tensor, cfg: Any) -> None:
    """Fill the frozen embedding: from ``data.wordvec.path`` or the seeded table."""
    wv = cfg.data.wordvec
    if cfg.data.dataset is not None:
        from videxperts.training.captioning.vocab import vocabulary_for

        itos = vocabulary_for(cfg.data.dataset, cfg.data.min_freq).itos
    else:  # no data: placeholder words (describe, smoke runs)
        itos = [*SPECIALS, *(f"w{i}" for i in range(weight.shape[0] - len(SPECIALS)))]
    dim = int(weight.shape[1])
    if wv.path:
        table, _ = read_vectors(wv.path, itos, dim)
    else:
        table = seeded_vectors(itos, dim, wv.seed)
    with torch.no_grad():
        weight.copy_(torch.from_numpy(table))
