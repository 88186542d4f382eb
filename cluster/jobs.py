"""Ray Jobs API client behind ``videxperts submit``.

A job is a shell entrypoint (``python -m videxperts.pipelines.cli extract ...``) that the cluster's head
runs as a driver, inside a runtime environment: the local ``working_dir`` is zipped and
uploaded (so the cluster runs *this* checkout), plus environment variables. The driver finds
its cluster through ``RAY_ADDRESS``, which the Jobs API sets, so the submitted command needs no
``--address`` of its own.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videxperts.errors import UserError

# Never upload these with the working dir: environments, VCS data, local outputs.
DEFAULT_EXCLUDES = [".git", ".venv", "venv", "work", "*.zarr", "mlruns", "mlartifacts",
                    "mlflow.db", "__pycache__", ".pytest_cache", ".ruff_cache", "bench/results"]
ENTRYPOINT_PREFIX = "python -m videxperts.pipelines.cli"


@dataclass
class JobResult:
    """What ``submit`` reports: the id, and the final status when it waited for one."""

    job_id: str
    address: str
    status: str
    entrypoint: str

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "address": self.address, "status": self.status,
                "entrypoint": self.entrypoint}


def client(address: str) -> Any:
    """A JobSubmissionClient for the dashboard at ``address`` (``http://HEAD:8265``)."""
    from ray.job_submission import JobSubmissionClient

    from videxperts.cluster.local import use_token_if_given

    use_token_if_given()
    if "://" not in address:
        address = f"http://{address}"
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"cannot reach the Ray Jobs API at {address}: {exc}") from exc


def runtime_env(
    working_dir: str | Path | None,
    env_vars: dict[str, str] | None = None,
    pip: list[str] | None = None,
    excludes: list[str] | None = None,
) -> dict[str, Any]:
    """The job's runtime environment: uploaded working dir, env vars, optional pip packages."""
    env: dict[str, Any] = {}
    if working_dir is not None:
        wd = Path(working_dir).resolve()
        if not wd.is_dir():
            raise UserError(f"--working-dir {working_dir}: not a directory")
        env["working_dir"] = str(wd)
        env["excludes"] = list(excludes if excludes is not None else DEFAULT_EXCLUDES)
    if env_vars:
        env["env_vars"] = dict(env_vars)
    if pip:
        env["pip"] = list(pip)
    return env


def entrypoint_for(args: list[str], prefix: str = ENTRYPOINT_PREFIX) -> str:
    """Shell entrypoint running ``videxperts ARGS`` on the cluster (arguments quoted)."""
    if not args:
        raise UserError("nothing to submit: give the videxperts command after '--'")
    return f"{prefix} {shlex.join(args)}"


def submit(
    address: str,
    args: list[str],
    *,
    working_dir: str | Path | None = ".",
    env_vars: dict[str, str] | None = None,
    pip: list[str] | None = None,
    entrypoint_prefix: str = ENTRYPOINT_PREFIX,
    entrypoint_num_cpus: float | None = None,
    submission_id: str | None = None,
    retry_s: float = 60.0,
) -> tuple[Any, str, str]:
    """Submit ``videxperts ARGS``; return (client, job id, entrypoint)."""
    c = client(address)
    entrypoint = entrypoint_for(args, entrypoint_prefix)
    env = runtime_env(working_dir, env_vars, pip) or None
    deadline = time.monotonic() + retry_s
    while True:
        try:
            job_id = c.submit_job(
                entrypoint=entrypoint,
                runtime_env=env,
                entrypoint_num_cpus=entrypoint_num_cpus,
                submission_id=submission_id,
                metadata={"submitted_by": "videxperts"},
            )
            return c, job_id, entrypoint
        except RuntimeError as exc:  # the SDK raises RuntimeError for HTTP errors
            # A freshly started head answers "No available agent" until its job agent is up.
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(2.0)
                continue
            raise UserError(f"job submission to {address} failed: {exc}") from exc


def follow(c: Any, job_id: str, write: Callable[[str], Any] = sys.stdout.write) -> str:
    """Stream the job's logs until it ends; return its final status (e.g. ``SUCCEEDED``)."""

    async def _tail() -> None:
        async for chunk in c.tail_job_logs(job_id):
            write(chunk)

    asyncio.run(_tail())
    return wait(c, job_id)


def wait(c: Any, job_id: str, timeout_s: float | None = None, poll_s: float = 1.0) -> str:
    """Poll until the job reaches a terminal status (or the timeout); return the status name."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = c.get_job_status(job_id)
        if status.is_terminal() or (deadline is not None and time.monotonic() > deadline):
            return str(status.value if hasattr(status, "value") else status)
        time.sleep(poll_s)
