"""`videxperts extract` and an MLflow server that is down: a clear error at start, no lost run at the end.

A server that cannot be reached when the job starts is one error line before Ray or the store
exist. A server that dies while the job runs costs nothing: the features are in the store and
the run's summary and failure report land in ``<work>/mlflow-unsent/<run id>.json`` (with a
warning naming it), because the end-of-job logging is failure-safe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media import make_clip
from tests.pipelines.extract_helpers import make_dataset
from videxperts.cluster.local import free_port
from videxperts.pipelines.commands.ui import ui_command
from videxperts.pipelines.extract import ExtractConfig, Pipeline

EXE = str(Path(sys.executable).with_name("videxperts"))


def test_unreachable_server_fails_before_ray_and_the_store(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    res = subprocess.run([EXE, "extract", str(clip), "--out", str(tmp_path / "work" / "store.zarr"),
                          "--experts", "audio", "--tracking-uri", uri], capture_output=True, text=True, timeout=300)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr[-3000:]
    assert lines[0].startswith(f"videxperts: error: MLflow tracking server {uri} is unreachable"), lines[0]
    assert not (tmp_path / "work").exists()  # no store, no local tracking db; Ray never printed a thing
    assert time.monotonic() - started < 240  # not the client's minutes of retries (generous: shared cores)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:  # noqa: S310 - http on loopback
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[dict]:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite backend) in its own process group."""
    port = free_port()
    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    cmd = ui_command(port, "127.0.0.1", f"sqlite:///{db}", (tmp_path / "server" / "artifacts").as_uri())
    log = open(tmp_path / "server" / "log.txt", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
    url = f"http://127.0.0.1:{port}"

    def kill() -> None:
        """SIGKILL the server and its workers, as a crash would."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    try:
        deadline = time.monotonic() + 240
        while not _healthy(url):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server" / "log.txt").read_text()
            time.sleep(0.5)
        yield {"url": url, "db": db, "kill": kill}
    finally:
        kill()
        log.close()


class ServerDiesAfterStart(Pipeline):
    """The job's run is created and its params logged; then the tracking server dies, before any video."""

    def __init__(self, cfg: ExtractConfig, kill) -> None:
        super().__init__(cfg)
        self.kill_server = kill

    def _loop(self) -> None:
        self.kill_server()
        super()._loop()


@pytest.fixture
def local_ray() -> Iterator[None]:
    import ray

    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.slow
def test_server_lost_mid_job_keeps_the_run_beside_the_store(mlflow_server: dict, local_ray: None, tmp_path: Path,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    from mlflow.tracking import MlflowClient

    from videxperts.storage.store import FeatureStore

    data = make_dataset(tmp_path / "data", 2, seconds=1.0)
    store = tmp_path / "work" / "store.zarr"
    cfg = ExtractConfig(input=str(data), out=str(store), experts=["audio"], tracking_uri=mlflow_server["url"],
                        experiment="lost", captions=False, progress=False, num_cpus=2)
    summary = ServerDiesAfterStart(cfg, mlflow_server["kill"]).run()
    assert not _healthy(mlflow_server["url"])

    # the job finished and its features are in the store
    assert (summary["inputs"], summary["done"], summary["failed"]) == (2, 2, 0)
    assert FeatureStore.open(str(store), mode="r").info()["experts"]["audio"]["done"] == 2
    # the run's end is kept locally, and the summary and one stderr warning say where
    unsent = Path(summary["tracking_unsent"])
    assert unsent == tmp_path / "work" / "mlflow-unsent" / f"{summary['mlflow_run_id']}.json"
    assert mlflow_server["url"] in summary["tracking_error"] and "unreachable" in summary["tracking_error"]
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("videxperts: warning")]
    assert len(warnings) == 1 and str(unsent) in warnings[0] and mlflow_server["url"] in warnings[0], warnings
    doc = json.loads(unsent.read_text())
    assert doc["run_id"] == summary["mlflow_run_id"] and doc["tracking_uri"] == mlflow_server["url"]
    assert doc["status"] == "FINISHED" and doc["experiment"] == "lost"
    assert doc["params"]["experts"] == "audio" and doc["params"]["store"] == str(store)
    assert (doc["summary"]["done"], doc["summary"]["inputs"]) == (2, 2) and doc["failures"] == []
    # what the server got before it died: the run and its params, none of the end-of-job record
    run = MlflowClient(f"sqlite:///{mlflow_server['db']}").get_run(summary["mlflow_run_id"])
    assert run.data.params["experts"] == "audio" and "done" not in run.data.metrics
    assert run.info.status == "RUNNING"
