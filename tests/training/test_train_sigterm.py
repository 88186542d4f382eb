"""`kill PID` (SIGTERM) of a running `videxperts train --dashboard`: the runs end KILLED, not FAILED.

The same command shows the opt-in dashboard of the embedded Ray: its URL is printed, it
answers on 127.0.0.1, and Ray lists this driver's job under the MLflow parent run's name.
"""

from __future__ import annotations

import json
import os
import re
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
from videxperts.training import tracking
from videxperts.training.retrieval.config import load_config
from videxperts.training.retrieval.data import synthetic_splits

pytestmark = pytest.mark.slow


def _wait(predicate, timeout_s: float, what: str, proc: subprocess.Popen, log: Path):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, f"train exited early ({proc.returncode}): {log.read_text()[-3000:]}"
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text()[-3000:]}")


def test_sigterm_ends_runs_killed_and_dashboard_names_the_job(tmp_path: Path) -> None:
    cfg = tiny_cfg("tiny-sigterm", epochs=500)  # never finishes on its own
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    splits = synthetic_splits(load_config(cfg), {"train": 64, "val": 8, "test": 8}, seed=5)
    store = write_store(splits, tmp_path / "store.zarr", tmp_path / "data")
    work, log = tmp_path / "work", tmp_path / "stderr.txt"
    env = {**{k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI", "RAY_ADDRESS"}},
           "OMP_NUM_THREADS": "1"}
    exe = str(Path(sys.executable).with_name("videxperts"))
    cmd = [exe, "train", "--config", str(tmp_path / "tiny.yaml"), "--store", store, "--data", str(tmp_path / "data"),
           "--work-dir", str(work), "--experiment", "sigterm", "--dashboard"]
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)  # noqa: S603
    try:
        url = _wait(lambda: (m := re.search(r"Ray dashboard: (http://127\.0\.0\.1:\d+)", log.read_text())) and m[1],
                    300, "the dashboard URL", proc, log)
        headers = {}
        if "`ray get-auth-token` prints the token" in log.read_text():  # token auth (a ~/.ray/auth_token exists)
            token = subprocess.run([sys.executable, "-c", "from ray.scripts.scripts import main; main()",  # noqa: S603
                                    "get-auth-token"], capture_output=True, text=True, timeout=120, env=env)
            headers = {"Authorization": f"Bearer {token.stdout.strip()}"}
        else:
            assert "no token" in log.read_text()
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as resp:  # noqa: S310
            assert resp.status == 200
        client = MlflowClient(f"sqlite:///{work.resolve() / 'mlflow.db'}")

        def child_training():  # noqa: ANN202
            exp = client.get_experiment_by_name("sigterm")
            runs = client.search_runs([exp.experiment_id]) if exp else []
            kids = [r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "seed"]
            return kids and client.get_metric_history(kids[0].info.run_id, "train/loss") and runs

        runs = _wait(child_training, 600, "the first logged epoch", proc, log)
        parent = next(r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "train")
        with urllib.request.urlopen(urllib.request.Request(f"{url}/api/jobs/", headers=headers),  # noqa: S310
                                    timeout=30) as resp:
            jobs = json.loads(resp.read())
        names = [(j.get("metadata") or {}).get("job_name") for j in jobs]
        assert parent.info.run_name in names, jobs
        proc.send_signal(signal.SIGTERM)  # what `kill PID` and most schedulers send
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == 130, log.read_text()[-3000:]
    assert log.read_text().strip().splitlines()[-1] == "videxperts: aborted"  # click turns the interrupt into Abort
    statuses = {r.data.tags.get(tracking.KIND_TAG): client.get_run(r.info.run_id).info.status for r in runs}
    assert statuses == {"train": "KILLED", "seed": "KILLED"}, statuses
