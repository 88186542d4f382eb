"""MLflow for extraction jobs: one run per job (params, throughput metrics, failure report).

Default tracking (DESIGN.md "MLflow"): ``sqlite:///<work>/mlflow.db`` with artifacts under
``<work>/mlartifacts``, where ``<work>`` is the directory holding the store (``work/`` for
``work/store.zarr``), so extraction and training runs of one work dir land together. A store
on object storage (``s3://...``) has no local parent: the default is then the current
directory; pass ``--tracking-uri`` (e.g. a shared ``http://`` server) on a cluster.

The tracking store is checked before the job starts (:func:`check_job_tracking`). If it goes
away during the job, the features are in the store already; the end-of-job logging then
writes what the run would have received (params, summary, failure report) to
``<work>/mlflow-unsent/<run id>.json`` instead of losing it (:meth:`ExtractionRun.finish`).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from videxperts.training.tracking import (
    base_tags,
    check_tracking,
    ensure_experiment,
    is_local_uri,
    log_metrics,
    log_params,
)

UNSENT_DIR = "mlflow-unsent"


def work_dir(store_url: str) -> Path:
    """The directory the job's local bookkeeping goes to: the store's parent (cwd for URLs)."""
    work = Path.cwd() if "://" in store_url else Path(store_url).resolve().parent
    work.mkdir(parents=True, exist_ok=True)
    return work


def default_tracking(store_url: str) -> tuple[str, str]:
    """(tracking URI, artifact root) for a store path/URL."""
    work = work_dir(store_url)
    return f"sqlite:///{work / 'mlflow.db'}", (work / "mlartifacts").as_uri()


def job_tracking(tracking_uri: str | None, store_url: str) -> tuple[str, str | None]:
    """(tracking URI, artifact root or None for a server that owns its artifacts) of one job."""
    if tracking_uri and not tracking_uri.startswith("sqlite:"):
        return tracking_uri, None
    if tracking_uri and tracking_uri.startswith("sqlite:///"):  # artifacts beside the database (the work dir)
        db = Path(tracking_uri[len("sqlite:///"):].split("?", 1)[0])
        if str(db) != ":memory:":
            return tracking_uri, (db.parent / "mlartifacts").as_uri()
    uri, root = default_tracking(store_url)
    return tracking_uri or uri, root


def check_job_tracking(tracking_uri: str | None, store_url: str) -> str:
    """Fail fast (``TrackingUnavailable``, one line naming the URI) before Ray or the store; returns the URI."""
    uri, _ = job_tracking(tracking_uri, store_url)
    check_tracking(uri)
    return uri


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


class ExtractionRun:
    """One job's MLflow run, created and ended explicitly through ``MlflowClient``.

    No global "active run" is left behind if the server dies, and the pipeline logs without
    knowing MLflow's API (and can run without it).
    """

    def __init__(self, tracking_uri: str | None, experiment: str, store_url: str, run_name: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        uri, root = job_tracking(tracking_uri, store_url)
        self.tracking_uri = uri
        self.experiment = experiment
        self.store_url = store_url
        self.params: dict[str, Any] = {}
        self.error: str | None = None  # the first logging failure; the rest of the run is kept locally
        self.client = MlflowClient(uri)
        exp_id = ensure_experiment(self.client, experiment, f"{root.rstrip('/')}/{experiment}" if root else None)
        tags = {**base_tags(), "videxperts.job": "extract"}
        self.run_id = self.client.create_run(exp_id, tags=tags, run_name=run_name).info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        self.params = {k: (",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))[:6000]
                       for k, v in params.items()}
        try:
            log_params(self.client, self.run_id, self.params)
        except Exception as exc:  # noqa: BLE001 - the job goes on; finish() keeps the run locally
            self.error = _first_line(exc)

    def log_summary(self, summary: dict[str, Any]) -> None:
        metrics = {k: float(summary[k]) for k in ("inputs", "done", "failed", "quarantined", "skipped",
                                                  "pending", "retries", "actor_crashes", "wall_s")
                   if isinstance(summary.get(k), (int, float))}
        if summary.get("videos_per_s") is not None:
            metrics["videos_per_s"] = float(summary["videos_per_s"])
        for stage, s in (summary.get("stages") or {}).items():
            key = stage.replace(":", "_")
            if s.get("items_per_s_busy") is not None:
                metrics[f"{key}_items_per_s_busy"] = float(s["items_per_s_busy"])
            if s.get("items_per_s_wall") is not None:
                metrics[f"{key}_items_per_s_wall"] = float(s["items_per_s_wall"])
        log_metrics(self.client, self.run_id, metrics)
        self.client.log_dict(self.run_id, summary, "summary.json")

    def log_failures(self, rows: list[dict[str, Any]]) -> None:
        """The failure report: one CSV row per failed/quarantined (video, expert)."""
        cols = ["video_id", "expert", "state", "error_class", "message", "attempts"]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "failures.csv")
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
                w.writeheader()
                for r in rows:
                    w.writerow(r)
            self.client.log_artifact(self.run_id, path)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def finish(self, summary: dict[str, Any], failures: list[dict[str, Any]], status: str) -> dict[str, str]:
        """Log the job's end and end the run; never raises for a tracking failure.

        Returns ``{}`` when MLflow took everything, else ``tracking_error`` (one line) and
        ``tracking_unsent`` (the local JSON file holding params, summary and failure report).
        A server is probed first so a dead one costs seconds, not the client's minutes of retries.
        """
        try:
            if self.error is None:
                if not is_local_uri(self.tracking_uri):
                    check_tracking(self.tracking_uri)
                self.log_summary(summary)
                self.log_failures(failures)
                self.end(status)
                return {}
        except Exception as exc:  # noqa: BLE001 - any tracking failure: keep the run locally instead
            self.error = _first_line(exc)
        path = self._save_unsent(summary, failures, status)
        return {"tracking_error": str(self.error), "tracking_unsent": str(path)}

    def _save_unsent(self, summary: dict[str, Any], failures: list[dict[str, Any]], status: str) -> Path:
        """``<work>/mlflow-unsent/<run id>.json``, written atomically."""
        doc = {"run_id": self.run_id, "tracking_uri": self.tracking_uri, "experiment": self.experiment,
               "status": status, "error": self.error, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "params": self.params, "summary": summary, "failures": failures}
        folder = work_dir(self.store_url) / UNSENT_DIR
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{self.run_id}.json"
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=str))
        os.replace(tmp, dest)
        return dest
