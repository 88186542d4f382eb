"""Does the captioner learn? BMT and BMHRL vs the most-frequent-caption baseline on synthetic segments.

    .venv/bin/python bench/bench_caption_learning.py [--seeds 0,1,2] [--epochs 25] [--videos 30]

The data is the captioning tests' generator (tests/training/captioning/fixtures.py: 2-3 timed
segments per video, each showing one colour, shape and motion in its I3D/VGGish rows, captioned
"a <colour> <shape> <motion>") written to a real dataset directory and Zarr store; training is
the harness in-process (intended behaviour, no critic checkpoint: the critic keeps its seeded
initialisation), scored on the test split with the quick `nltk` scorer (METEOR, B@3, B@4, ×100).
Prints mean (std) over seeds and sample captions next to their references.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.training.captioning.fixtures import make_dataset, tiny_cfg  # noqa: E402
from videxperts.storage.reader import StoreReader  # noqa: E402
from videxperts.training.captioning.evaluation import references, score, submission  # noqa: E402
from videxperts.training.config import load_config  # noqa: E402
from videxperts.training.runner import LoopOptions, Reporter, fit  # noqa: E402
from videxperts.training.splits import read_splits  # noqa: E402
from videxperts.training.task import get_task  # noqa: E402

KEYS = ("METEOR", "Bleu_3", "Bleu_4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--videos", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="vx-caplearn-"))
    data, url = make_dataset(tmp, videos=a.videos)
    task = get_task("captioning")
    rows: dict[str, list[dict]] = {"most frequent caption": [], "BMT": [], "BMHRL": []}
    samples: dict[str, list] = {}
    for seed in map(int, a.seeds.split(",")):
        for arch, label in (("bmt", "BMT"), ("bmhrl", "BMHRL")):
            cfg = load_config(tiny_cfg(data, model={"arch": arch, "d_model": 32, "d_caps": 16},
                                       train={"epochs": a.epochs, "seed": seed}, rl={"warmstart_epochs": 10}))
            res = task.driver_resources(cfg, None, tmp)
            splits = {k: task.load_split(StoreReader(url), cfg, v, res) for k, v in read_splits(data).items() if v}
            if label == "BMT":
                test = splits["test"]
                common = Counter(splits["train"].captions).most_common(1)[0][0]
                rows["most frequent caption"].append(score(submission(test, [common] * len(test)), references(test),
                                                           "nltk"))
            result = fit(cfg, splits, LoopOptions(), Reporter())
            rows[label].append(result["test"])
            samples.setdefault(label, list(zip(result["arrays"]["sample_caption"][:4].tolist(),
                                               result["arrays"]["sample_reference"][:4].tolist(), strict=True)))
    table = {k: {m: (float(np.mean([r[m] for r in v])), float(np.std([r[m] for r in v]))) for m in KEYS}
             for k, v in rows.items()}
    if a.json:
        print(json.dumps({"table": table, "samples": samples}, indent=1))
        return
    print(f"test split, {len(rows['BMT'])} seeds, {a.epochs} epochs, {a.videos} videos; mean (std), x100")
    print(f"{'model':<22}" + "".join(f"{m:>16}" for m in KEYS))
    for k, v in table.items():
        print(f"{k:<22}" + "".join(f"{v[m][0]:>9.1f} ({v[m][1]:4.1f})" for m in KEYS))
    for label, pairs in samples.items():
        for cap, ref in pairs:
            print(f"  {label:<6} {cap!r:<45} reference: {ref!r}")


if __name__ == "__main__":
    main()
