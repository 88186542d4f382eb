"""VSRN, DCPG and DCPG without its policy on the learnability data of SPEC-DCPG §4.2, 3 seeds.

Class-conditioned Gaussian regions (24 classes) with template captions naming the class;
embed 64, everything else from the shipped configs' structure at small widths, the intended
behaviour (no compat switch). Trains in process through the harness's runner (`fit`), tests the
best validation epoch, prints a markdown table of mean (std) over seeds and chance.

    .venv/bin/python scripts/matching_results.py --epochs 8
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videxperts.training.matching.config import parse_config  # noqa: E402
from videxperts.training.matching.data import build_split  # noqa: E402
from videxperts.training.matching.synthetic import toy_items  # noqa: E402
from videxperts.training.matching.vocab import Vocabulary, word_vectors  # noqa: E402
from videxperts.training.runner import LoopOptions, Reporter, fit  # noqa: E402

MODEL = {"img_dim": 32, "embed_size": 64, "word_dim": 32, "vocab_size": 64, "gcn_blocks": 4,
         "policy": {"heads": 2, "bins": 50}, "id": {"hidden": 32, "classes": 256},
         "decoder": {"nfeats": 32, "layers": 3, "kernel": 5, "dropout": 0.1, "label_len": 12},
         "captioner": {"hidden": 32, "word_dim": 32, "input_dropout": 0.2, "steps": 10}}
VARIANTS = {"VSRN": {"kind": "vsrn"}, "DCPG": {"kind": "dcpg"},
            "DCPG without policy": {"kind": "dcpg", "policy": {"enabled": False, "heads": 2, "bins": 50}}}
COLS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--sizes", default="200,20,20", help="train,val,test items")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n_train, n_val, n_test = map(int, args.sizes.split(","))
    rows = {}
    for name, over in VARIANTS.items():
        per_seed = []
        for seed in map(int, args.seeds.split(",")):
            raw = {"task": "matching", "name": name, "model": {**MODEL, **over}, "text": {"max_words": 14},
                   "data": {"regions": 12}, "optim": {"lr": 0.001},
                   "train": {"batch_size": 50, "epochs": args.epochs, "seed": seed}, "eval": {"batch_size": 64}}
            cfg = parse_config(raw, name)
            parts = {s: toy_items(n, 32, 12, seed=10 * seed + k)
                     for k, (s, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test)))}
            vocab = Vocabulary.build((c for s in ("train", "val") for cs in parts[s][2].values() for c in cs),
                                     cfg.text.threshold, cfg.model.vocab_size)
            table, has = word_vectors(vocab, cfg.model.word_dim, seed=seed)
            splits = {s: build_split(cfg, *p, vocab, table, has) for s, p in parts.items()}
            torch.manual_seed(seed)
            per_seed.append(fit(cfg, splits, LoopOptions(), Reporter())["test"])
            print(name, seed, {k: round(per_seed[-1][k], 1) for k in COLS}, file=sys.stderr, flush=True)
        rows[name] = {k: (float(np.mean([r[k] for r in per_seed])), float(np.std([r[k] for r in per_seed])))
                      for k in COLS}
    print("| model | " + " | ".join(COLS) + " |")
    print("|---|" + "---|" * len(COLS))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{m:.1f} ({s:.1f})" for m, s in r.values()) + " |")
    chance = [min(100.0, 100 * k / n_test) for k in (1, 5, 10)]
    print("| chance | " + " | ".join(f"{c:.1f}" for c in chance * 2) + f" | {2 * sum(chance):.1f} |")


if __name__ == "__main__":
    main()
