"""A tracking server that goes away in the middle of ``videxperts train`` loses nothing.

A real ``mlflow server`` on 127.0.0.1 is SIGKILLed while seed 0 trains. Training goes on (the
workers keep the rows the server could not take), the seed's model, metrics and plots land in
``<work>/mlflow-unsent/``, and the command stops with one line. With the server back, the same
command sends them first, trains the remaining seed, and prints exactly one JSON document.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.training.synth_store import tiny_cfg, write_store
from videxperts.cluster.local import free_port
from videxperts.pipelines.commands.ui import ui_command
from videxperts.training import tracking
from videxperts.training.retrieval.config import load_config
from videxperts.training.retrieval.data import synthetic_splits

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).with_name("videxperts"))


class Server:
    """``mlflow server`` on a fixed port and sqlite file: it can be killed and started again."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = root / "mlflow.db"
        self.proc: subprocess.Popen | None = None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:  # noqa: S310 - loopback
                return r.status == 200
        except OSError:
            return False

    def start(self) -> None:
        cmd = ui_command(self.port, "127.0.0.1", f"sqlite:///{self.db}", (self.root / "artifacts").as_uri())
        with open(self.root / "log.txt", "a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
        deadline = time.monotonic() + 240
        while not self.healthy():
            assert self.proc.poll() is None and time.monotonic() < deadline, (self.root / "log.txt").read_text()
            time.sleep(0.5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path):
    s = Server(tmp_path / "server")
    s.root.mkdir()
    s.start()
    yield s
    s.kill()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_server_lost_mid_training_keeps_the_seed_and_resumes(server: Server, tmp_path: Path) -> None:
    cfg = tiny_cfg("tiny-outage", epochs=6)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    splits = synthetic_splits(load_config(cfg), {"train": 64, "val": 12, "test": 12}, seed=5)
    store = write_store(splits, tmp_path / "store.zarr", tmp_path / "data")
    work = tmp_path / "work"
    cmd = [EXE, "train", "--config", str(tmp_path / "tiny.yaml"), "--store", store, "--data", str(tmp_path / "data"),
           "--seeds", "0,1", "--work-dir", str(work), "--tracking-uri", server.url, "--experiment", "outage",
           "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())  # noqa: S603
    local = MlflowClient(f"sqlite:///{server.db}")  # the server's own database, read while it runs
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        exp = local.get_experiment_by_name("outage")
        runs = local.search_runs([exp.experiment_id]) if exp else []
        if any("train/loss" in r.data.metrics for r in runs):  # seed 0 logged its first epoch
            break
        time.sleep(0.2)
    server.kill()
    out, err = proc.communicate(timeout=600)
    lines = err.strip().splitlines()
    assert proc.returncode == 2 and lines and "went away" in lines[-1], err[-3000:]
    assert out == ""  # --json prints nothing but its document, and there is none after a failure

    (doc_path,) = (work / "mlflow-unsent").glob("*.json")
    doc = json.loads(doc_path.read_text())
    names = {m[0] for m in doc["metrics"]}
    assert {"test.t2v.R1", "best_epoch"} <= names and doc["status"] == "FINISHED"
    kept = work / "mlflow-unsent" / doc["artifacts"]
    assert (kept / "checkpoint" / "model.pt").is_file() and (kept / "result.json").is_file()
    assert any((work / "ray").glob("tiny-outage-*/checkpoint_*"))  # Ray Train's checkpoints stay too

    server.start()
    again = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900, check=False)  # noqa: S603
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)  # exactly one JSON document on stdout with an http tracking URI
    assert summary["resumed"] and set(summary["seeds"]) == {"0", "1"}
    assert not list((work / "mlflow-unsent").glob("*.json"))  # sent, then removed
    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("outage")
    runs = client.search_runs([exp.experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 3
    seed0 = next(r for r in runs if r.data.tags.get(tracking.SEED_TAG) == "0")
    assert seed0.info.run_id == doc["run_id"] and "test.t2v.R1" in seed0.data.metrics
    assert any(a.path == "checkpoint" for a in client.list_artifacts(seed0.info.run_id))
    steps = {m.step for m in client.get_metric_history(seed0.info.run_id, "train/loss")}
    assert steps == set(range(1, 7))  # every epoch, those after the outage sent late
