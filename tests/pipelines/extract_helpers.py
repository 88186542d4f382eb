"""Shared pieces of the extraction and cluster tests: a real Ray head, tiny datasets, CLI runs.

The tests drive ``videxperts extract`` as a subprocess against a Ray head started with
``ray start`` (so a driver can be SIGKILLed or sent SIGINT like a user would), and clean up
only the processes of that head (never ``ray stop``, which would end everyone's Ray).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.media import make_clip
from videxperts.cluster.local import start_head, start_worker, stop_nodes

REPO = Path(__file__).resolve().parents[2]
CHEAP_EXPERTS = "audio,scene"


@contextlib.contextmanager
def ray_cluster(
    temp_dir: Path, *, head_cpus: int = 2, worker_cpus: int | None = None, dashboard: bool = False,
    head_resources: dict[str, float] | None = None, worker_resources: dict[str, float] | None = None,
) -> Iterator[dict[str, Any]]:
    """A real Ray head (plus optionally one more node on this machine); torn down by temp dir.

    Ray's unix sockets live under the temp dir and must stay under 107 bytes, so the cluster
    gets a short directory in /tmp (``temp_dir`` only names it in failures).
    """
    temp_dir = Path(tempfile.mkdtemp(prefix="vx-ray-", dir="/tmp"))
    try:
        info = start_head(temp_dir, num_cpus=head_cpus, resources=head_resources, include_dashboard=dashboard)
        if worker_cpus:
            start_worker(info["gcs_address"], num_cpus=worker_cpus, resources=worker_resources, env=info["env"])
        yield info
    finally:
        stop_nodes(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def make_dataset(root: Path, n: int, seconds: float = 1.5) -> Path:
    """A ``videxperts data``-shaped dataset: n small clips + manifest + 2 captions each."""
    from videxperts.storage.manifest import write_captions, write_manifest

    root.mkdir(parents=True, exist_ok=True)
    (root / "videos").mkdir(exist_ok=True)
    rows, caps = [], []
    for i in range(n):
        vid = f"v{i:03d}"
        make_clip(root / "videos" / f"{vid}.mp4", seconds=seconds, size=(64, 48))
        rows.append({"video_id": vid, "path": f"videos/{vid}.mp4", "duration": seconds, "fps": 25.0,
                     "width": 64, "height": 48, "has_audio": True, "split": "train"})
        caps += [{"video_id": vid, "caption_idx": j, "caption": f"a test pattern number {i} take {j}",
                  "split": "train"} for j in range(2)]
    write_manifest(root, rows)
    write_captions(root, caps)
    return root


def cli_env(cluster: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment of a driver subprocess: this checkout, offline, the cluster's auth token."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "VIDEXPERTS_PROGRESS_SECONDS": "0"}  # a line per video
    env.pop("RAY_ADDRESS", None)
    env.update((cluster or {}).get("env", {}))
    return env


def extract_cmd(inp: Path | str, store: Path | str, address: str, *extra: str) -> list[str]:
    work = [] if "://" in str(store) else ["--work-dir", str(Path(store).parent)]  # the runs beside the store
    return [sys.executable, "-m", "videxperts.pipelines.cli", "extract", str(inp), "--out", str(store),
            "--address", address, "--json", *work, *extra]


def run_extract_cli(cmd: list[str], cluster: dict[str, Any], timeout: float = 540) -> dict[str, Any]:
    """Run the CLI to the end and return its JSON summary (fails the test with stderr otherwise)."""
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env(cluster), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"extract failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def start_extract_cli(cmd: list[str], cluster: dict[str, Any], stderr_path: Path) -> subprocess.Popen:
    err = open(stderr_path, "w")  # noqa: SIM115 - closed with the process by the caller
    return subprocess.Popen(cmd, cwd=REPO, env=cli_env(cluster), stdout=subprocess.PIPE, stderr=err, text=True)


def wait_for_done(proc: subprocess.Popen, stderr_path: Path, n: int, timeout: float = 300) -> int:
    """Block until the driver's progress bar shows at least ``n`` videos done; return the count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = stderr_path.read_text(errors="replace")
        counts = [int(m) for m in re.findall(r"done=(\d+)", text)]
        if counts and max(counts) >= n:
            return max(counts)
        assert proc.poll() is None, f"driver exited early ({proc.returncode}):\n{text[-3000:]}"
        time.sleep(0.3)
    raise AssertionError(f"no progress to {n} done within {timeout} s:\n{stderr_path.read_text()[-3000:]}")


KILL_SCRIPT = """
import sys, ray
ray.init(address=sys.argv[1], namespace="videxperts", log_to_driver=False)
names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
         if a["namespace"] == "videxperts" and a["name"].endswith(sys.argv[2])]
assert names, "no actor named *" + sys.argv[2]
ray.kill(ray.get_actor(names[-1], namespace="videxperts"), no_restart=False)
print(names[-1])
"""


def kill_named_actor(cluster: dict[str, Any], suffix: str) -> str:
    """``ray.kill(actor, no_restart=False)`` from another driver, like an OOM kill would; returns its name."""
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, cluster["gcs_address"], suffix], cwd=REPO,
                          env=cli_env(cluster), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def done_records(store_url: str | Path) -> Counter[tuple[str, str]]:
    """How many committed ``done`` records exist per (video, expert) across every commit (dup check)."""
    import pyarrow.parquet as pq

    counts: Counter[tuple[str, str]] = Counter()
    for f in sorted((Path(store_url) / "commits").glob("*.parquet")):
        t = pq.read_table(f).to_pydict()
        for kind, name, vid, state in zip(t["kind"], t["name"], t["video_id"], t["state"], strict=True):
            if kind == "expert" and state == "done":
                counts[(vid, name)] += 1
    return counts
