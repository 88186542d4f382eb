"""Connect to a Ray cluster, or start the embedded local one; start/stop extra local nodes.

``connect(None)`` is the embedded default (a private local Ray for this process, every port
bound to 127.0.0.1 by :func:`init_loopback_ray`) unless ``RAY_ADDRESS`` is set, which is how
a job submitted through the Jobs API finds its cluster.
``connect("HOST:PORT")`` / ``connect("auto")`` joins an existing cluster.

``start_head`` / ``start_worker`` / ``stop_nodes`` drive ``ray start`` for the documented
multi-node-on-one-machine setup and the tests. ``ray stop`` would kill *every* Ray process on
the machine (other users' too), so ``stop_nodes`` ends only the processes that belong to one
cluster's temp dir, found by their command lines under ``/proc``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from videxperts.errors import UserError

ENV_ADDRESS = "RAY_ADDRESS"
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    runtime_env: dict[str, Any] | None = None,
    namespace: str = "videxperts",
    log_to_driver: bool = True,
) -> dict[str, Any]:
    """Initialise Ray once for this process and describe the cluster it joined.

    With no address and no ``RAY_ADDRESS`` a local Ray is started (``num_cpus`` defaults to
    the machine's cores); an address that cannot be reached is a :class:`UserError`.
    """
    import ray

    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "namespace": namespace,
            "log_to_driver": log_to_driver,  # False: workers' output stays in Ray's log files
            "configure_logging": True,
            "logging_level": "warning",
        }
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        target = address or os.environ.get(ENV_ADDRESS)
        if target:
            kwargs["address"] = target
            use_token_if_given()
        else:
            try:
                init_loopback_ray(num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. "node timed out during startup" on a loaded machine
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UserError(f"could not start a local Ray: {first}") from None
            return describe()
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UserError(f"cannot connect to Ray at {target!r}: {exc}") from exc
    return describe()


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
DASHBOARD_ENV = "VIDEXPERTS_RAY_DASHBOARD"  # "1": the embedded Ray starts its dashboard (on 127.0.0.1)


def dashboard_notice(url: str) -> str:
    """What to print when the embedded Ray serves a dashboard: its URL and where its token comes from."""
    if os.environ.get("RAY_AUTH_MODE") == "token":
        where = (f"the token is in {os.environ['RAY_AUTH_TOKEN_PATH']}" if os.environ.get("RAY_AUTH_TOKEN_PATH")
                 else "the token is $RAY_AUTH_TOKEN" if os.environ.get("RAY_AUTH_TOKEN")
                 else "`ray get-auth-token` prints the token (from ~/.ray/auth_token)")
        return f"Ray dashboard: {url} (token authentication: {where}; paste it when the page asks)"
    return (f"Ray dashboard: {url} (bound to 127.0.0.1, no token: this Ray runs without token authentication; "
            "from another machine use an SSH tunnel, e.g. ssh -L 8265:127.0.0.1:PORT HOST)")


def init_loopback_ray(num_cpus: int | None = None, dashboard: bool | None = None, **kwargs: Any) -> None:
    """Start a private single-machine Ray whose every port (GCS, raylet, workers) binds 127.0.0.1.

    A job without ``--address`` needs no other machine to reach it, so nothing should listen
    on the network. Ray picks its node IP from the host's route unless it runs in its
    "no cluster" mode (its default on macOS/Windows), in which the node IP is the loopback one
    and its gRPC servers then listen on loopback only. That mode is switched on here for this
    process and, through the environment, for the processes Ray starts. No dashboard unless
    ``dashboard`` (or ``$VIDEXPERTS_RAY_DASHBOARD=1``): then on 127.0.0.1, its URL printed on stderr.
    """
    import ray
    import ray._private.ray_constants as ray_constants

    saved_env, saved_flag = os.environ.get(LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ENV] = "0"  # inherited by the GCS, raylet and workers started below
    ray_constants.ENABLE_RAY_CLUSTER = False
    if dashboard is None:
        dashboard = os.environ.get(DASHBOARD_ENV) == "1"
    if dashboard:
        kwargs.update(include_dashboard=True, dashboard_host="127.0.0.1")
    kwargs.setdefault("include_dashboard", False)
    kwargs.pop("address", None)
    try:
        context = ray.init(num_cpus=num_cpus, **kwargs)
        if dashboard and getattr(context, "dashboard_url", None):
            print(dashboard_notice(f"http://{context.dashboard_url}"), file=sys.stderr, flush=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot start a local Ray: {exc}") from exc
    finally:  # the started node keeps its loopback address; a later connect to a cluster must not
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = saved_env


def use_token_if_given() -> None:
    """Token mode when a token is given through the environment.

    Ray sends its auth token to an explicit address only in token mode (it auto-enables the
    mode just for a local cluster it finds itself); a token in the environment means the user
    wants it sent.
    """
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        os.environ["RAY_AUTH_MODE"] = "token"


def describe() -> dict[str, Any]:
    """The joined cluster: live nodes and their total CPUs / GPUs."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    return {
        "address": ray.get_runtime_context().gcs_address,
        "nodes": len(nodes),
        "num_cpus": float(total.get("CPU", 0.0)),
        "num_gpus": float(total.get("GPU", 0.0)),
    }


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (for tests and local clusters)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_cli() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else "ray"


def start_head(
    temp_dir: str | Path,
    *,
    port: int | None = None,
    dashboard_port: int | None = None,
    num_cpus: int = 1,
    resources: dict[str, float] | None = None,
    include_dashboard: bool = True,
    timeout_s: float = 180,
) -> dict[str, Any]:
    """``ray start --head`` with a private auth token; dashboard and Jobs API on 127.0.0.1.

    Returns the GCS address (for ``ray start --address`` / ``ray.init``), the dashboard URL
    (for ``videxperts submit --address``) and ``env``: the variables a client needs (token
    mode + this cluster's token file, written 0600 into ``temp_dir``), so the cluster never
    depends on the machine-wide ``~/.ray/auth_token``.
    """
    import json
    import secrets

    temp_dir = Path(temp_dir).resolve()
    temp_dir.mkdir(parents=True, exist_ok=True)
    token_file = temp_dir / "auth_token"
    if not token_file.exists():
        token_file.touch(mode=0o600)
        token_file.write_text(secrets.token_hex(32))
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    port = port or free_port()
    cmd = [
        _ray_cli(), "start", "--head", f"--port={port}", f"--num-cpus={num_cpus}",
        f"--temp-dir={Path(temp_dir).resolve()}", "--disable-usage-stats",
        f"--ray-client-server-port={free_port()}",
        # fixed default ports (52365 agent, 8265 dashboard) clash with any other Ray on the host
        f"--dashboard-agent-listen-port={free_port()}",
    ]
    if resources:
        cmd.append(f"--resources={json.dumps(resources)}")
    if include_dashboard:
        dashboard_port = dashboard_port or free_port()
        cmd += ["--include-dashboard=true", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard_port}"]
    else:
        cmd.append("--include-dashboard=false")
    _run_ray_start(cmd, timeout_s, env)
    out = {"gcs_address": f"127.0.0.1:{port}", "temp_dir": str(temp_dir), "env": env}
    if include_dashboard:
        out["dashboard_url"] = f"http://127.0.0.1:{dashboard_port}"
    return out


def start_worker(
    gcs_address: str,
    *,
    num_cpus: int = 1,
    resources: dict[str, float] | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 180,
) -> None:
    """``ray start --address``: one more node on this machine (its own raylet and object store).

    ``env``: the head's client variables (``start_head(...)["env"]``) so the node can authenticate.
    """
    import json

    cmd = [_ray_cli(), "start", f"--address={gcs_address}", f"--num-cpus={num_cpus}",
           "--disable-usage-stats", "--dashboard-agent-listen-port=0"]
    if resources:
        cmd.append(f"--resources={json.dumps(resources)}")
    _run_ray_start(cmd, timeout_s, env)


def _run_ray_start(cmd: list[str], timeout_s: float, extra_env: dict[str, str] | None = None) -> None:
    # The nodes (and the jobs they run) use this Python: put its bin dir first on PATH.
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    env.pop(ENV_ADDRESS, None)
    for key in AUTH_ENV:
        env.pop(key, None)
    env.update(extra_env or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise UserError(f"'{' '.join(cmd[:3])}' failed: {' | '.join(tail)}")


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line) for every process we can read."""
    table: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry)] = (ppid, cmdline)
    return table


def cluster_pids(temp_dir: str | Path) -> list[int]:
    """Processes of the cluster whose nodes use ``temp_dir``, with all their descendants."""
    marker = str(Path(temp_dir).resolve())
    table = _proc_table()
    roots = {pid for pid, (_, cmd) in table.items() if marker in cmd and pid != os.getpid()}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid in found or pid == os.getpid():
            continue
        found.add(pid)
        stack.extend(children.get(pid, []))
    return sorted(found)


def stop_nodes(temp_dir: str | Path, timeout_s: float = 15) -> int:
    """End every process of the cluster rooted at ``temp_dir`` (SIGTERM, then SIGKILL); count them."""
    pids = cluster_pids(temp_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
        if not any(_alive(p) for p in pids):
            break
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False
