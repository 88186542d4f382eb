"""`videxperts submit` against a real Ray head with its dashboard (Jobs API), plus the deploy files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.pipelines.extract_helpers import REPO, cli_env, make_dataset, ray_cluster

DEPLOY = REPO / "cluster" / "deploy"


def test_deploy_files_parse_and_name_the_essentials() -> None:
    launcher = yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())
    assert launcher["provider"]["type"] == "aws"
    gpu_types = [n for n, t in launcher["available_node_types"].items()
                 if "GPU" in (t.get("resources") or {}) or "g" in str(t["node_config"].get("InstanceType", ""))[:1]]
    assert gpu_types and launcher["head_node_type"] in launcher["available_node_types"]
    assert any("videxperts" in c for c in launcher["setup_commands"])
    kuberay = yaml.safe_load((DEPLOY / "kuberay-raycluster.yaml").read_text())
    assert kuberay["kind"] == "RayCluster"
    groups = kuberay["spec"]["workerGroupSpecs"]
    assert any("nvidia.com/gpu" in str(g["template"]) for g in groups)
    job = yaml.safe_load((DEPLOY / "kuberay-rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and "videxperts" in job["spec"]["entrypoint"]


def _submit(head: dict, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "videxperts.pipelines.cli", "submit", "--address", head["dashboard_url"], *args]
    return subprocess.run(cmd, cwd=REPO, env=cli_env(head), capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_submit_extract_job_and_follow(tmp_path: Path) -> None:
    from videxperts.cluster import jobs
    from videxperts.storage.store import FeatureStore

    data = make_dataset(tmp_path / "data", 2, seconds=1.0)
    store = tmp_path / "store.zarr"
    with ray_cluster(tmp_path / "ray", head_cpus=2, dashboard=True) as head:
        # --follow streams the job's logs and exits with the job's status
        proc = _submit(head, "--follow", "--", "--version")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "videxperts" in proc.stdout
        # without --follow: the job id comes back at once; the job runs the uploaded checkout
        proc = _submit(head, "--json", "--", "extract", str(data), "--out", str(store), "--experts", "audio",
                       "--no-tracking", "--no-captions", "--no-progress", "--json")
        assert proc.returncode == 0, proc.stderr[-3000:]
        res = json.loads(proc.stdout)
        assert res["job_id"].startswith("raysubmit_") and res["status"] == "SUBMITTED"
        check = subprocess.run(
            [sys.executable, "-c", "import sys; from cluster import jobs; c = jobs.client(sys.argv[1]); "
             "s = jobs.wait(c, sys.argv[2], timeout_s=360); print(s); print(c.get_job_logs(sys.argv[2]))",
             head["dashboard_url"], res["job_id"]],
            cwd=REPO, env=cli_env(head), capture_output=True, text=True, timeout=400)
        assert check.returncode == 0, check.stderr[-3000:]
        status, _, logs = check.stdout.partition("\n")
        assert status == "SUCCEEDED", logs[-3000:]
    summary = json.loads([ln for ln in logs.splitlines() if ln.startswith('{"inputs"')][-1])
    assert summary["done"] == 2 and summary["cluster"]["address"]
    assert FeatureStore.open(str(store), mode="r").info()["experts"]["audio"]["done"] == 2
    assert jobs.entrypoint_for(["extract", "a b"]) == "python -m videxperts.pipelines.cli extract 'a b'"
