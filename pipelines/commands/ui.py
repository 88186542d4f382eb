"""`videxperts ui`: the MLflow UI on 127.0.0.1 for the project's tracking store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from videxperts.errors import UserError
from videxperts.pipelines.workdir import work_dir_option


def check_port_free(host: str, port: int) -> None:
    """One line naming a free port when ``port`` is taken (nothing is started)."""
    import socket

    def free(p: int) -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: only a listener blocks
            try:
                s.bind((host, p))
                return True
            except OSError:
                return False

    if free(port):
        return
    alt = next((p for p in range(port + 1, min(port + 50, 65536)) if free(p)), None)
    hint = f": try --port {alt}" if alt else ""
    raise UserError(f"port {port} on {host} is already in use (another MLflow UI?){hint}")


def ui_url(host: str, port: int) -> str:
    """The address to open: MLflow 3 starts in its GenAI workspace unless the URL (or the
    browser's saved choice) asks for "Model training", where training runs and models live."""
    return f"http://{host}:{port}/#/experiments?workflowType=machine_learning"


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
@work_dir_option()
@click.option("--tracking-uri", default=None, help="Backend store URI (default: the work dir's sqlite).")
def ui(port: int, host: str, work_dir: str, tracking_uri: str | None) -> None:
    """Serve the MLflow UI for the runs of WORK_DIR (Ctrl-C stops it).

    \b
    Example:
      videxperts ui --work-dir work --port 5000
    """
    from videxperts.pipelines.workdir import existing_tracking_uri
    from videxperts.training.tracking import terminate_as_interrupt

    uri = existing_tracking_uri(work_dir, tracking_uri)  # read-only: never creates a database
    check_port_free(host, port)  # before the server's 45 s of start-up logs
    root = Path(work_dir).resolve() / "mlartifacts"
    artifacts = root.as_uri() if uri.startswith("sqlite:") and root.is_dir() else None
    cmd = ui_command(port, host, uri, artifacts)
    click.echo(f"MLflow UI for {uri} at {ui_url(host, port)}", err=True)
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
