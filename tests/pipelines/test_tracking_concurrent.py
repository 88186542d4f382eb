"""Several jobs starting at once on one fresh work dir share its sqlite MLflow store (issue 14, item 4).

Before: two ``extract`` jobs started 2 s apart raced on creating and migrating ``mlflow.db``
and one died with a schema-migration error. Each process here does what a job does first
(check the store, get-or-create the experiment, create a run), all released at one instant.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JOBS = 4

SCRIPT = """
import sys, time
from mlflow.tracking import MlflowClient
from videxperts.pipelines.extract_tracking import check_job_tracking, default_tracking
from videxperts.training.tracking import ensure_experiment
store, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
uri = check_job_tracking(None, store)
client = MlflowClient(uri)
exp = ensure_experiment(client, "extract", default_tracking(store)[1] + "/extract")
print(client.create_run(exp).info.run_id)
"""


def test_concurrent_first_starts_share_one_tracking_db(tmp_path: Path) -> None:
    store = tmp_path / "work" / "store.zarr"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.time() + 8  # every process imports mlflow first, then all go at once
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(store), str(start)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(JOBS)]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    failed = [err[-1500:] for rc, _, err in results if rc != 0]
    assert not failed, failed[0]
    runs = {out.strip().splitlines()[-1] for _, out, _ in results}
    assert len(runs) == JOBS
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("extract")
    assert len(client.search_runs([exp.experiment_id])) == JOBS
