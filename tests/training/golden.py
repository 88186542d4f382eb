"""Golden results of tiny CE and TeachText runs: a refactor of the harness must not move them.

``VIDEXPERTS_RECORD_GOLDEN=1 pytest tests/training/test_golden.py`` rewrites the file (do that
only for a change that is meant to alter the numbers, and say why in the commit).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

GOLDEN_FILE = Path(__file__).with_name("golden_results.json")
RECORD_ENV = "VIDEXPERTS_RECORD_GOLDEN"
# Timings and memory vary by machine; everything else in a history row is a result.
_VOLATILE = ("train/epoch_time_s", "train/samples_per_s_worker", "train/peak_rss_mb", "train/peak_gpu_mb")


def golden_view(result: dict, parameters: int) -> dict:
    """The parts of a fit result that must stay bit-identical: losses, metrics, best epoch, size."""
    history = [{k: v for k, v in row.items() if k not in _VOLATILE} for row in result["history"]]
    return {"parameters": parameters, "best_epoch": result["best_epoch"], "history": history,
            "test": dict(result.get("test", {}))}


def check_golden(name: str, view: dict) -> None:
    """Compare ``view`` to the recorded entry ``name`` (exact float equality), or record it."""
    view = json.loads(json.dumps(view))  # the same float round trip as the file
    recorded = json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.exists() else {}
    if os.environ.get(RECORD_ENV) == "1":
        recorded[name] = view
        GOLDEN_FILE.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    assert name in recorded, f"no golden entry {name!r}: record it with {RECORD_ENV}=1"
    assert view == recorded[name], f"{name}: results moved from {GOLDEN_FILE.name}"
