"""docs/CLUSTER.md's local multi-node recipe: its ports are valid for Ray, and its `ray start` lines work as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from videxperts.cluster.local import stop_nodes

DOC = Path(__file__).resolve().parents[2] / "docs" / "CLUSTER.md"
RAY_SCRIPT = Path(sys.executable).with_name("ray")
RAY = [str(RAY_SCRIPT)] if RAY_SCRIPT.exists() else [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


def _recipe() -> list[list[str]]:
    """The `ray start` commands of the "Local multi-node cluster" section, continuation lines joined."""
    section = DOC.read_text().split("## Local multi-node cluster", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line.split("#", 1)[0]) for line in joined.splitlines() if line.startswith("ray start")]


def _ports(cmd: list[str]) -> dict[str, int]:
    out = {}
    for i, arg in enumerate(cmd):
        flag, _, value = arg.partition("=")
        if flag.startswith("--") and flag.endswith("port"):
            value = value or cmd[i + 1]
            if int(value):
                out[flag] = int(value)
    return out


def test_recipe_ports_are_distinct_and_outside_the_worker_port_range() -> None:
    from ray.scripts.scripts import start

    defaults = {p.name: p.default for p in start.params}
    lo, hi = defaults["min_worker_port"], defaults["max_worker_port"]
    head, worker = _recipe()
    assert "--head" in head and "--address" in worker
    ports = _ports(head)
    assert {"--port", "--dashboard-port", "--ray-client-server-port", "--dashboard-agent-listen-port"} <= set(ports)
    assert len(set(ports.values())) == len(ports), ports
    inside = {f: p for f, p in ports.items() if lo <= p <= hi}
    assert not inside, f"ports inside Ray's worker port range {lo}-{hi}: {inside}"


@pytest.mark.slow
def test_recipe_ray_start_lines_run_as_written(tmp_path: Path) -> None:
    temp = Path("/tmp") / f"vxdoc{os.getpid()}"  # short: Ray's socket paths must stay under 107 bytes
    token = tmp_path / "ray-token"
    token.write_text("0123456789abcdef" * 4)
    env = {**{k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "RAY_AUTH_TOKEN"}},
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    head, worker = (
        [*RAY, *[f"--temp-dir={temp}" if a == "--temp-dir" else a for a in cmd[1:]]] for cmd in _recipe()
    )
    head = [a for i, a in enumerate(head) if not (i > 0 and head[i - 1].startswith("--temp-dir="))]
    try:
        for cmd in (head, worker):
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, check=False)  # noqa: S603
            assert res.returncode == 0, (cmd, res.stderr[-2000:])
        address = next(a.split("=", 1)[1] if "=" in a else worker[i + 1] for i, a in enumerate(worker)
                       if a.startswith("--address"))
        deadline = time.monotonic() + 90  # the status report lags a joining node by seconds under load
        while True:
            status = subprocess.run([*RAY, "status", f"--address={address}"], capture_output=True,  # noqa: S603
                                    text=True, timeout=120, env=env, check=False)
            assert status.returncode == 0, status.stderr[-2000:]
            if ("node_a" in status.stdout and "node_b" in status.stdout) or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert "node_a" in status.stdout and "node_b" in status.stdout, status.stdout
    finally:
        stop_nodes(temp)
