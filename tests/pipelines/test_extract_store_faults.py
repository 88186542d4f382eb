"""An extraction whose store's filesystem fills up or turns read-only mid-job (issue 14, item 1).

Before: the writer's failed commit marked it dead forever and the job hung with no message.
Now: the job ends within seconds with one line naming the store and the OS error, the
committed videos stay readable, and a re-run after the cause is removed completes.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.pipelines.extract_helpers import (
    CHEAP_EXPERTS,
    REPO,
    cli_env,
    extract_cmd,
    make_dataset,
    ray_cluster,
    run_extract_cli,
)
from tests.storage.fault_fs import empty, fill, set_read_only, small_fs

N_CLIPS = 6
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    with ray_cluster(tmp_path_factory.mktemp("ray"), head_cpus=2) as info:
        yield info


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), N_CLIPS, seconds=3.0)


def _fault_after_first_commit(store: Path, fault, stop: threading.Event) -> threading.Thread:
    def watch() -> None:
        while not stop.is_set():
            if (store / "commits").is_dir() and any((store / "commits").glob("w*.parquet")):
                fault()
                return
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("fault", ["full", "read_only"])
def test_store_fault_mid_job_ends_with_one_line_and_rerun_completes(head: dict, data: Path, fault: str) -> None:
    with small_fs(64) as point:
        store = point / "store.zarr"
        cmd = extract_cmd(data, store, head["gcs_address"], "--experts", CHEAP_EXPERTS, "--no-tracking",
                          "--no-captions", "--commit-every", "1", "--no-progress")
        stop = threading.Event()
        do = (lambda: fill(point)) if fault == "full" else (lambda: set_read_only(point, True))
        watcher = _fault_after_first_commit(store, do, stop)
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=REPO, env=cli_env(head), capture_output=True, text=True, timeout=300)
        finally:
            stop.set()
            watcher.join(5)
        took = time.monotonic() - t0
        assert proc.returncode == 2, f"rc {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("videxperts: error:")]
        assert len(errors) == 1, proc.stderr[-3000:]
        want = "No space left" if fault == "full" else "Read-only file system"
        assert str(store) in errors[0] and want in errors[0], errors[0]
        assert "Traceback" not in proc.stderr
        assert took < 200
        # the cause removed, the same command completes what is missing
        if fault == "full":
            empty(point)
        else:
            set_read_only(point, False)
        summary = run_extract_cli(cmd, head, timeout=300)
        assert summary["done"] + summary["skipped"] == N_CLIPS and summary["failed"] == 0, summary
        from videxperts.storage.store import FeatureStore

        fs = FeatureStore.open(str(store), mode="r")
        assert fs.verify() == []
        assert fs.pending([f"v{i:03d}" for i in range(N_CLIPS)], CHEAP_EXPERTS.split(",")) == {}
