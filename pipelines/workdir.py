"""One work-dir rule and one experiment rule for every command.

Work dir: ``--work-dir``, else ``$VIDEXPERTS_WORK_DIR``, else ``./work``. It holds the MLflow
tracking database (``mlflow.db``), its artifacts (``mlartifacts/``) and Ray Train checkpoints,
so the runs of one project (extraction, training, evaluation) land in one database.
Experiment: ``--experiment``, else ``$VIDEXPERTS_EXPERIMENT``, else ``videxperts``, for
``extract``, ``train`` and ``report`` alike. Read-only commands (``report``, ``ui``) never
create a database: a missing one is a one-line error naming the work dir.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from videxperts.errors import UserError

WORK_DIR_ENV = "VIDEXPERTS_WORK_DIR"
EXPERIMENT_ENV = "VIDEXPERTS_EXPERIMENT"
DEFAULT_WORK_DIR = "work"
DEFAULT_EXPERIMENT = "videxperts"


def work_dir_option(what: str = "the MLflow tracking database, its artifacts and Ray checkpoints") -> Callable:
    return click.option("--work-dir", envvar=WORK_DIR_ENV, default=DEFAULT_WORK_DIR, show_default=True,
                        show_envvar=True, type=click.Path(file_okay=False),
                        help=f"Project directory: {what} (mlflow.db, mlartifacts/).")


def experiment_option(required: bool = False) -> Callable:
    if required:
        return click.option("--experiment", envvar=EXPERIMENT_ENV, default=None, show_envvar=True,
                            help="MLflow experiment name (without it: list the experiments).")
    return click.option("--experiment", envvar=EXPERIMENT_ENV, default=DEFAULT_EXPERIMENT, show_default=True,
                        show_envvar=True, help="MLflow experiment name (one for extraction and training runs).")


def sqlite_uri(work_dir: str | Path) -> str:
    return f"sqlite:///{Path(work_dir).resolve() / 'mlflow.db'}"


def writable_tracking_uri(work_dir: str | Path, tracking_uri: str | None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else the work dir's sqlite (created on first use,
    after the command's own checks)."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(work_dir)


def existing_tracking_uri(work_dir: str | Path, tracking_uri: str | None) -> str:
    """Like :func:`writable_tracking_uri`, but a local sqlite database must exist already (read-only commands)."""
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(work_dir)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        if str(db) != ":memory:" and not db.is_file():
            raise UserError(f"no MLflow tracking database at {db}: run `videxperts extract` or `videxperts train` "
                            f"with this work dir first, or pass --work-dir DIR (or set {WORK_DIR_ENV})")
    return uri


def list_experiments(uri: str) -> list[dict[str, Any]]:
    """Experiments of a tracking store with their numbers of training and extraction runs."""
    from mlflow.tracking import MlflowClient

    from videxperts.training.tracking import KIND_TAG

    client = MlflowClient(uri)
    out = []
    for exp in client.search_experiments():
        runs = client.search_runs([exp.experiment_id], max_results=5000)
        train = sum(r.data.tags.get(KIND_TAG) == "train" for r in runs)
        extract = sum(r.data.tags.get("videxperts.job") == "extract" for r in runs)
        if train or extract or exp.name != "Default":
            out.append({"name": exp.name, "training_runs": train, "extraction_runs": extract})
    return out
