"""Test helpers: train in-memory splits through Ray Train and read the run back (shared by the
retrieval, matching and captioning Ray tests); see what a run has checkpointed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME

from videxperts.training.runner import LoopOptions, read_result, run_ray_training


def ray_run(cfg: Any, splits: dict, tmp: Any, name: str, num_workers: int = 1, options: LoopOptions | None = None,
            max_failures: int = 0) -> tuple[dict, dict, dict]:
    """(result, state, arrays) of a Ray Train run of ``cfg`` on ``splits``; the run must succeed."""
    res = run_ray_training(cfg, {"kind": "arrays", "splits": splits}, options or LoopOptions(),
                           num_workers=num_workers, storage_path=str(tmp), name=name, max_failures=max_failures)
    assert res.error is None
    with tempfile.TemporaryDirectory() as d:
        return read_result(res.checkpoint.to_directory(d))


def registered_checkpoints(run_dir: Path) -> int:
    """How many checkpoints Ray Train's controller has registered for ``run_dir`` (what a restore
    resumes from). A ``checkpoint_*`` folder on disk is not enough: the worker writes it before the
    controller collects the report by polling, and a kill in between restarts the run from scratch."""
    try:
        snapshot = json.loads((run_dir / CHECKPOINT_MANAGER_SNAPSHOT_FILENAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or caught mid-write
        return 0
    return len(snapshot.get("checkpoint_results") or [])
