"""MLflow for extraction jobs: one run per job (params, throughput metrics, failure report).

Default tracking (DESIGN.md "MLflow"): ``sqlite:///<work>/mlflow.db`` with artifacts under
``<work>/mlartifacts``, where ``<work>`` is the directory holding the store (``work/`` for
``work/store.zarr``), so extraction and training runs of one work dir land together. A store
on object storage (``s3://...``) has no local parent: the default is then the current
directory; pass ``--tracking-uri`` (e.g. a shared ``http://`` server) on a cluster.
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import Any


def default_tracking(store_url: str) -> tuple[str, str]:
    """(tracking URI, artifact root) for a store path/URL."""
    work = Path.cwd() if "://" in store_url else Path(store_url).resolve().parent
    work.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{work / 'mlflow.db'}", (work / "mlartifacts").as_uri()


def _experiment_id(mlflow: Any, name: str, artifact_root: str | None) -> str:
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
    return mlflow.create_experiment(name, artifact_location=location)


class ExtractionRun:
    """A thin wrapper so the pipeline logs without knowing MLflow's API (and can run without it)."""

    def __init__(self, tracking_uri: str | None, experiment: str, store_url: str, run_name: str | None = None) -> None:
        import mlflow

        self.mlflow = mlflow
        uri, root = default_tracking(store_url)
        if tracking_uri:
            uri, root = tracking_uri, (None if not tracking_uri.startswith("sqlite:") else root)
        mlflow.set_tracking_uri(uri)
        self.tracking_uri = uri
        exp_id = _experiment_id(mlflow, experiment, root)
        self.run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags={"videxperts.job": "extract"})
        self.run_id = self.run.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        flat = {k: (",".join(map(str, v)) if isinstance(v, (list, tuple)) else v) for k, v in params.items()}
        self.mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})

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
        self.mlflow.log_metrics(metrics)
        self.mlflow.log_dict(summary, "summary.json")

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
            self.mlflow.log_artifact(path)

    def end(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)
