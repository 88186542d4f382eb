"""The harness is not CE in disguise: a task defined only in tests (tests/training/toy_task.py)
trains through ``videxperts train`` with 2 Ray workers, is SIGKILLed mid-run and resumes,
lands in MLflow as a parent with one child per seed, and ``report`` prints its own columns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.training.ray_helpers import registered_checkpoints
from tests.training.synth_store import tiny_cfg, write_store
from tests.training.toy_task import TASK, LinearProbeTask
from videxperts.storage.reader import StoreReader
from videxperts.training import tracking
from videxperts.training.config import load_config
from videxperts.training.retrieval.config import load_config as load_retrieval_config
from videxperts.training.retrieval.data import synthetic_splits
from videxperts.training.runner import LoopOptions, Reporter, fit
from videxperts.training.splits import read_splits

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PROBE = {"task": TASK, "name": "probe-a", "expert": "a", "dim": 12, "classes": 3,
         "train": {"batch_size": 8, "epochs": 6, "seed": 0}, "optim": {"name": "adam", "lr": 0.05}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("plugin")
    splits = synthetic_splits(load_retrieval_config(tiny_cfg("store", 1)), {"train": 64, "val": 24, "test": 24},
                              seed=7)
    store = write_store(splits, root / "store.zarr", root / "data")
    (root / "probe.yaml").write_text(yaml.safe_dump(PROBE))
    return {"root": root, "store": store, "data": str(root / "data"), "config": str(root / "probe.yaml")}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cmd(setup: dict, work: Path) -> list[str]:
    exe = Path(sys.executable).with_name("videxperts")
    return [str(exe), "train", "--config", setup["config"], "--store", setup["store"], "--data", setup["data"],
            "--seeds", "0,1", "--num-workers", "2", "--work-dir", str(work), "--experiment", "probe", "--json"]


def _in_process(setup: dict, seed: int) -> dict:
    """The same seed trained in this process with one worker: the reference trajectory."""
    cfg = load_config({**PROBE, "train": {**PROBE["train"], "seed": seed}})
    reader = StoreReader(setup["store"])
    ids = read_splits(setup["data"])
    splits = {s: LinearProbeTask().load_split(reader, cfg, ids[s], {}) for s in ("train", "val", "test")}
    return fit(cfg, splits, LoopOptions(), Reporter())


def _kill_mid_second_seed(cmd: list[str], work: Path) -> None:
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,  # noqa: S603
                            stderr=subprocess.DEVNULL, env=_env())
    deadline = time.monotonic() + 600
    seen: set[str] = set()  # a finished seed's Ray folder is removed once logged: remember every one seen
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:  # a folder can vanish between glob and stat (a finished seed's, being removed)
                runs = sorted((work / "ray").glob("probe-a-*"), key=lambda p: p.stat().st_mtime)
            except FileNotFoundError:
                continue
            seen |= {p.name for p in runs}
            if len(seen) >= 2 and runs and registered_checkpoints(runs[-1]) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the command finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_plugin_task_trains_resumes_and_reports(setup: dict) -> None:
    work = setup["root"] / "work"
    cmd = _cmd(setup, work)
    _kill_mid_second_seed(cmd, work)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=_env(), check=False)  # noqa: S603
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["resumed"] and summary["task"] == TASK

    for seed in (0, 1):
        got, want = summary["seeds"][str(seed)], _in_process(setup, seed)
        assert set(got["test"]) == {"accuracy", "nll"}
        assert got["best_epoch"] == want["best_epoch"]
        for k, v in want["test"].items():  # 2 workers after a kill = 1 worker uninterrupted
            assert got["test"][k] == pytest.approx(v, rel=1e-5, abs=1e-6), (seed, k)
        assert got["counts"] == want["counts"] and 15 < got["counts"]["test"]["videos"] <= 24
    assert summary["seeds"]["1"]["resumed_at"], "seed 1 continued from an epoch checkpoint"
    accuracies = [summary["seeds"][s]["test"]["accuracy"] for s in ("0", "1")]
    assert min(accuracies) > 2 * 100 / 3, accuracies  # far above chance (1/3)

    client = MlflowClient(f"sqlite:///{(work / 'mlflow.db').resolve()}")  # the command's own store, whatever this process's env says
    exp = client.get_experiment_by_name("probe")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "train"]
    children = [r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "seed"]
    assert len(parents) == 1 and len(children) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert parents[0].data.tags[tracking.TASK_TAG] == TASK
    assert all("val/accuracy" in c.data.metrics and "test.nll" in c.data.metrics for c in children)

    env = _env()
    rep = subprocess.run([str(Path(sys.executable).with_name("videxperts")), "report", "--experiment", "probe",  # noqa: S603
                          "--work-dir", str(work), "--json"], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert rep.returncode == 0, rep.stderr[-2000:]
    (table,) = json.loads(rep.stdout)["tables"]
    assert table["title"] == "attribute probe" and [c["header"] for c in table["columns"]] == ["Acc", "NLL"]
    (row,) = table["rows"]
    assert row["metrics"]["accuracy"]["mean"] == pytest.approx(float(np.mean(accuracies)))
