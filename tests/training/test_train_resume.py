"""SIGKILL of a whole ``videxperts train`` command mid-epoch, then the same command again.

The re-run finds the killed command's MLflow runs by their resume key, reopens them, and Ray
Train restores the seed's run directory: training continues from the last epoch checkpoint
and ends with the same metrics as an uninterrupted command. A finished seed is not retrained.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.training.ray_helpers import registered_checkpoints
from tests.training.synth_store import tiny_cfg, write_store
from videxperts.training import tracking
from videxperts.training.retrieval.config import load_config
from videxperts.training.retrieval.data import synthetic_splits

pytestmark = pytest.mark.slow
EPOCHS = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("resume")
    cfg = tiny_cfg("tiny-resume", epochs=EPOCHS)
    (root / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    splits = synthetic_splits(load_config(cfg), {"train": 96, "val": 12, "test": 12}, seed=5)
    store = write_store(splits, root / "store.zarr", root / "data")
    return {"root": root, "config": str(root / "tiny.yaml"), "store": store, "data": str(root / "data")}


def _cmd(setup: dict, work: Path, seeds: str) -> list[str]:
    exe = Path(sys.executable).with_name("videxperts")
    return [str(exe), "train", "--config", setup["config"], "--store", setup["store"], "--data", setup["data"],
            "--seeds", seeds, "--work-dir", str(work), "--experiment", "resume", "--json"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=_env(), check=False)  # noqa: S603
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _kill_after_checkpoints(cmd: list[str], work: Path, seed_dirs: int, checkpoints: int) -> None:
    """Start the command in its own session; SIGKILL the whole session once the newest Ray run of
    seed number ``seed_dirs`` has reported ``checkpoints`` epoch checkpoints (so mid-training)."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,  # noqa: S603
                            stderr=subprocess.DEVNULL, env=_env())
    seen: set[str] = set()  # a finished seed's Ray folder is removed once logged: count every one seen
    try:
        while proc.poll() is None:
            try:  # a folder can vanish between glob and stat (a finished seed's, being removed)
                runs = sorted((work / "ray").glob("tiny-resume-*"), key=lambda p: p.stat().st_mtime)
            except FileNotFoundError:
                continue
            seen |= {p.name for p in runs}
            if len(seen) >= seed_dirs and runs and registered_checkpoints(runs[-1]) >= checkpoints:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the command finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.wait(timeout=60)
        else:
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _same(a: dict, b: dict) -> None:
    assert a["best_epoch"] == b["best_epoch"]
    assert set(a["test"]) == set(b["test"])
    for k, v in a["test"].items():
        assert b["test"][k] == pytest.approx(v, rel=1e-6, abs=1e-6), k


def test_sigkilled_train_command_resumes_to_the_same_metrics(setup: dict) -> None:
    reference = _run(_cmd(setup, setup["root"] / "ref", "0,1"))
    assert not reference["resumed"]

    work = setup["root"] / "killed"
    cmd = _cmd(setup, work, "0,1")
    # seed 0 finishes; seed 1 is killed after its second epoch checkpoint, in the middle of training
    _kill_after_checkpoints(cmd, work, seed_dirs=2, checkpoints=2)
    client = MlflowClient(f"sqlite:///{(work / 'mlflow.db').resolve()}")  # the command's own store, whatever this process's env says
    exp = client.get_experiment_by_name("resume")
    (killed_parent,) = [r for r in client.search_runs([exp.experiment_id])
                        if r.data.tags.get(tracking.KIND_TAG) == "train"]
    assert killed_parent.info.status == "RUNNING"  # nobody could end it

    again = _run(cmd)
    assert again["resumed"] and again["parent_run_id"] == killed_parent.info.run_id
    for seed in ("0", "1"):
        _same(reference["seeds"][seed], again["seeds"][seed])
    assert again["seeds"]["0"]["resumed_at"] == []  # finished before the kill: read back, not retrained
    (resumed_at,) = again["seeds"]["1"]["resumed_at"]
    assert 2 <= resumed_at <= EPOCHS  # continued from an epoch checkpoint, not from epoch 1
    for k, v in reference["aggregate"].items():
        assert again["aggregate"][k] == pytest.approx(v, rel=1e-6, abs=1e-6), k

    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "train"]
    children = [r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "seed"]
    assert len(parents) == 1 and len(children) == 2  # reopened, not duplicated
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.tags["seed"] for r in children) == ["0", "1"]

    # a finished command is not resumed: running it again would start new runs
    key = parents[0].data.tags[tracking.RESUME_TAG]
    assert tracking.find_unfinished_run(client, exp.experiment_id, key) is None
