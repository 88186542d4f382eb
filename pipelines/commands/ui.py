"""`videxperts ui`: the MLflow UI on 127.0.0.1 for the project's tracking store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click


def ui_command(port: int, host: str, tracking_uri: str, artifacts: str | None) -> list[str]:
    """The argument list of the `mlflow server` process (no shell)."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
           "--host", host, "--port", str(port), "--workers", "1"]
    if artifacts:
        cmd += ["--default-artifact-root", artifacts]
    return cmd


@click.command("ui")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (keep it local).")
@click.option("--work-dir", default="work", show_default=True, type=click.Path(file_okay=False))
@click.option("--tracking-uri", default=None, help="Backend store URI (default: the work dir's sqlite).")
def ui(port: int, host: str, work_dir: str, tracking_uri: str | None) -> None:
    """Serve the MLflow UI for the runs of WORK_DIR (Ctrl-C stops it)."""
    from videxperts.training.tracking import artifact_root, resolve_tracking_uri, terminate_as_interrupt

    uri = resolve_tracking_uri(work_dir, tracking_uri)
    artifacts = artifact_root(work_dir) if uri.startswith("sqlite:") and Path(work_dir).exists() else None
    cmd = ui_command(port, host, uri, artifacts)
    click.echo(f"MLflow UI for {uri} at http://{host}:{port}", err=True)
    # Own process group: stopping the UI (Ctrl-C, SIGTERM) stops the server's workers too.
    proc = subprocess.Popen(cmd, start_new_session=True)  # noqa: S603 - fixed argument list
    with terminate_as_interrupt():
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            _stop(proc)
            raise
    sys.exit(code)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
