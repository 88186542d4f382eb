"""MLflow bookkeeping: where runs go, parent/child runs, and runs that always end.

Every ``train`` command is one parent run; each seed is a child run (tag
``mlflow.parentRunId``). Runs are created and ended explicitly through ``MlflowClient`` so
their final state is under our control: FINISHED on success, FAILED on an exception, KILLED
on Ctrl-C / SIGTERM. Only a SIGKILLed command leaves its runs RUNNING.

Runs carry a resume key (a hash of everything that determines the result: config, seeds,
store, workers). Re-running a command whose runs did not finish reopens them instead of
starting new ones, so a killed ``train`` continues from its last epoch checkpoint
(the Ray Train run name is derived from the reopened child run id).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

DEFAULT_EXPERIMENT = "videxperts"
KIND_TAG = "videxperts.kind"  # "train" (parent) | "seed" (child)
PARENT_TAG = "mlflow.parentRunId"
RESUME_TAG = "videxperts.resume_key"
SEED_TAG = "seed"
TASK_TAG = "videxperts.task"  # the task of a training run (retrieval, captioning, matching, plug-ins)


class TrackingUnavailable(UserError):
    """The MLflow tracking store cannot be reached."""


def is_local_uri(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def resolve_tracking_uri(work_dir: str | Path, uri: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<work-dir>/mlflow.db``."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(work_dir).resolve() / 'mlflow.db'}"


def artifact_root(work_dir: str | Path) -> str:
    """``<work-dir>/mlartifacts`` as a file URI (never the current directory's ./mlruns)."""
    path = Path(work_dir).resolve() / "mlartifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def check_tracking(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when the tracking store is unreachable."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - http(s) only
                if resp.status >= 500:
                    raise TrackingUnavailable(f"MLflow tracking server {uri} answered HTTP {resp.status}")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingUnavailable(f"MLflow tracking server {uri} is unreachable ({reason})") from None
        return
    try:
        from mlflow.tracking import MlflowClient

        with sqlite_init_lock(uri):  # the first open creates and migrates the schema
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure here is "cannot use this store"
        raise TrackingUnavailable(f"MLflow tracking store {uri} cannot be opened ({exc})") from None


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores and in-memory sqlite)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def sqlite_init_lock(uri: str, timeout_s: float = 300.0) -> Iterator[None]:
    """Serialise the creation and migration of a sqlite tracking database between processes.

    MLflow creates the tables and runs its alembic migrations on the first open of a sqlite
    store; two jobs doing that at once on one work dir (the documented cluster pattern) fail
    with a migration error. An exclusive ``flock`` on ``<db>.lock`` beside the database makes
    the first open one at a time; later opens find the schema current and only check it.
    Other stores (a server) are not locked.
    """
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    import fcntl
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingUnavailable(f"MLflow tracking store {uri}: another job has held "
                                              f"{f.name} for {timeout_s:g} s") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def ensure_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    """The experiment's id, creating it with an explicit artifact location."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except Exception:  # another job created it between our look-up and create: use theirs
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit(path: str | Path | None = None) -> str | None:
    """The checkout's HEAD commit, or None outside a git repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path or Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def videxperts_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("videxperts")
    except PackageNotFoundError:
        return "0+unknown"


def base_tags() -> dict[str, str]:
    tags = {"videxperts.version": videxperts_version()}
    commit = git_commit()
    if commit:
        tags["git.commit"] = commit
        tags["mlflow.source.git.commit"] = commit
    return tags


def log_params(client: Any, run_id: str, params: dict[str, Any]) -> None:
    """Params in batches (MLflow caps a batch at 100 params; values are strings <= 6000 chars)."""
    from mlflow.entities import Param

    items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_metrics(client: Any, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and math.isfinite(float(v))]
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i : i + 1000])


def result_key(split: str, name: str) -> str:
    """The MLflow key of a number logged once per run (a test metric, a split's size): ``test.t2v.R1``.

    The MLflow UI groups a run's charts into sections named by the text before a key's last ``/``,
    sorted by name, and shows keys without ``/`` after them ("Model metrics"). Per-epoch curves keep
    ``train/...`` and ``val/...`` so they come first; single numbers use dots so they come last.
    """
    return f"{split}.{name.replace('/', '.')}"


def result_keys(split: str, metrics: dict[str, float]) -> dict[str, float]:
    """``{"t2v/R1": x}`` -> ``{"test.t2v.R1": x}`` for ``split="test"`` (see ``result_key``)."""
    return {result_key(split, k): float(v) for k, v in metrics.items()}


def result_value(metrics: dict[str, float], split: str, name: str) -> float | None:
    """A logged result by split and name; also reads runs logged before the dotted keys (``test/t2v/R1``)."""
    for key in (result_key(split, name), f"{split}/{name}"):
        if key in metrics:
            return metrics[key]
    return None


def result_counts(metrics: dict[str, float], split: str) -> dict[str, int]:
    """What a run scored on ``split`` (``{"videos": 30, "queries": 184}``), from either key style."""
    out = {}
    for prefix in (f"{split}/n_", f"{split}.n_"):  # legacy first: the dotted keys win
        out.update({k[len(prefix):]: int(v) for k, v in metrics.items() if k.startswith(prefix)})
    return out


def mean_std(rows: list[dict[str, float]]) -> dict[str, float]:
    """``<key>_mean`` and ``<key>_std`` (population std, ddof 0) over seeds for every shared key."""
    keys = set(rows[0]).intersection(*rows[1:]) if rows else set()
    out = {}
    for k in sorted(keys):
        vals = np.array([r[k] for r in rows], dtype=float)
        out[f"{k}_mean"] = float(vals.mean())
        out[f"{k}_std"] = float(vals.std())
    return out


class _Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception so ``finally`` blocks end the runs as KILLED."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises (main thread only); the previous handler is restored after."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def run_guard(client: Any, run_id: str) -> Iterator[str]:
    """End ``run_id`` FINISHED, FAILED (exception) or KILLED (interrupt), whatever happens inside."""
    status = "FAILED"
    try:
        yield run_id
        status = "FINISHED"
    except (KeyboardInterrupt, SystemExit):  # SystemExit: a library's SIGTERM handler (Ray's) exiting the process
        status = "KILLED"
        raise
    finally:
        try:
            client.set_terminated(run_id, status=status)
        except Exception:  # noqa: BLE001, S110 - never mask the original error while ending a run
            pass


def start_run(client: Any, experiment_id: str, name: str, tags: dict[str, str],
              parent_run_id: str | None = None) -> str:
    tags = {**tags, "mlflow.runName": name}
    if parent_run_id:
        tags[PARENT_TAG] = parent_run_id
    return client.create_run(experiment_id, tags=tags, run_name=name).info.run_id


def resume_key(identity: dict[str, Any]) -> str:
    """A short stable hash of what makes two commands the same job."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def find_unfinished_run(client: Any, experiment_id: str, key: str) -> Any | None:
    """The newest parent run with this resume key that did not finish (RUNNING/KILLED/FAILED), if any."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{RESUME_TAG}` = '{key}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if runs and runs[0].info.status != "FINISHED":
        return runs[0]
    return None


def child_runs_by_seed(client: Any, experiment_id: str, parent_run_id: str) -> dict[int, Any]:
    """Seed -> newest child run of ``parent_run_id``."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                              order_by=["attributes.start_time ASC"])
    return {int(r.data.tags[SEED_TAG]): r for r in runs if r.data.tags.get(SEED_TAG, "").lstrip("-").isdigit()}


def reopen_run(client: Any, run_id: str) -> str:
    """Mark an unfinished run RUNNING again (it is being resumed) and return its id."""
    client.update_run(run_id, status="RUNNING")
    return run_id
