"""Tiny matching configs and splits for the tests (dims of a few units, real modules)."""

from __future__ import annotations

import copy

import numpy as np

from videxperts.training.matching import synthetic
from videxperts.training.matching.config import MatchingConfig, parse_config
from videxperts.training.matching.data import MatchingData, build_split
from videxperts.training.matching.vocab import Vocabulary, word_vectors

TINY = {
    "task": "matching",
    "name": "tiny-dcpg",
    "model": {"kind": "dcpg", "img_dim": 12, "embed_size": 16, "word_dim": 8, "vocab_size": 40, "gcn_blocks": 2,
              "policy": {"heads": 2, "bins": 10}, "id": {"hidden": 8, "classes": 64},
              "decoder": {"nfeats": 8, "layers": 2, "kernel": 3, "dropout": 0.0, "label_len": 9},
              "captioner": {"hidden": 8, "word_dim": 6, "input_dropout": 0.0, "steps": 7}, "dead_linears": 2},
    "text": {"max_words": 10, "threshold": 1},
    "data": {"regions": 4, "captions_per_item": 5},
    "optim": {"lr": 0.003},
    "train": {"batch_size": 20, "epochs": 2, "seed": 0},
    "eval": {"batch_size": 16, "fold_size": 4},
}

def tiny_cfg(**over: dict) -> MatchingConfig:
    raw = copy.deepcopy(TINY)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return parse_config(raw, "<tiny>")


def toy_items(n: int, cfg: MatchingConfig, seed: int = 0) -> tuple[list[str], np.ndarray, dict[str, list[str]]]:
    """Class-conditioned Gaussian regions and template captions naming the class (learnable)."""
    return synthetic.toy_items(n, cfg.model.img_dim, cfg.data.regions, seed)


def tiny_splits(cfg: MatchingConfig, sizes: dict[str, int]) -> dict[str, MatchingData]:
    parts = {s: toy_items(n, cfg, seed=k) for k, (s, n) in enumerate(sizes.items())}
    vocab = Vocabulary.build((c for _, _, caps in parts.values() for cs in caps.values() for c in cs),
                             cfg.text.threshold, cfg.model.vocab_size)
    table, has = word_vectors(vocab, cfg.model.word_dim)
    return {s: build_split(cfg, ids, regions, caps, vocab, table, has) for s, (ids, regions, caps) in parts.items()}
