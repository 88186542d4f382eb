"""What MLflow could not take, kept on disk and sent later: ``<work>/mlflow-unsent/``.

A tracking server may go away in the middle of a job. The job's real output (the store's
features, a model's checkpoints) never depends on it; what the run would have received is
written here instead, one JSON document per run (``<run id>.json``) plus, for training, a folder
of artifacts (``<run id>/``). ``videxperts replay`` (and the next ``videxperts train`` in the same
work dir) sends them once the server answers, then removes them.

Extraction writes its own documents (params, summary, failures) into the same folder;
:func:`replay_document` sends both kinds.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

UNSENT_DIR = "mlflow-unsent"


def unsent_dir(work_dir: str | Path) -> Path:
    return Path(work_dir) / UNSENT_DIR


def save_unsent_run(work_dir: str | Path, run_id: str, tracking_uri: str, *, status: str, error: str,
                    params: dict[str, Any] | None = None, metrics: list[tuple[str, float, int]] | None = None,
                    artifacts: str | Path | None = None, kind: str = "train") -> Path:
    """``<work>/mlflow-unsent/<run_id>.json`` (atomic) and a copy of ``artifacts`` beside it."""
    folder = unsent_dir(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    art = None
    if artifacts is not None:
        art = folder / run_id
        shutil.copytree(artifacts, art, dirs_exist_ok=True)
    doc = {"run_id": run_id, "tracking_uri": tracking_uri, "kind": kind, "status": status, "error": error,
           "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "params": params or {},
           "metrics": [[k, float(v), int(s)] for k, v, s in metrics or [] if math.isfinite(float(v))],
           "artifacts": art.name if art is not None else None}
    dest = folder / f"{run_id}.json"
    fd, tmp = tempfile.mkstemp(prefix=f".{run_id}.", suffix=".tmp", dir=folder)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1, default=str)
    os.replace(tmp, dest)
    return dest


def pending_documents(work_dir: str | Path, tracking_uri: str | None = None) -> list[Path]:
    """Unsent documents of ``work_dir`` (those meant for ``tracking_uri`` when given), oldest first."""
    folder = unsent_dir(work_dir)
    if not folder.is_dir():
        return []
    docs = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if tracking_uri is None:
        return docs
    return [p for p in docs if json.loads(p.read_text()).get("tracking_uri") == tracking_uri]


def replay_document(path: Path, tracking_uri: str | None = None) -> str:
    """Send one document to its tracking store (or ``tracking_uri``); removes it once sent."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from videxperts.training.tracking import log_metrics, log_params

    doc = json.loads(path.read_text())
    uri = tracking_uri or doc["tracking_uri"]
    client = MlflowClient(uri)
    run_id = doc["run_id"]
    have = client.get_run(run_id).data.params
    log_params(client, run_id, {k: v for k, v in (doc.get("params") or {}).items() if k not in have})
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(s)) for k, v, s in doc.get("metrics") or []]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    if isinstance(doc.get("summary"), dict):  # an extraction job's document
        log_metrics(client, run_id, {f"summary/{k}": v for k, v in doc["summary"].items()
                                     if isinstance(v, int | float) and not isinstance(v, bool)})
        with tempfile.TemporaryDirectory(prefix="vx-replay-") as tmp:
            for name in ("summary", "failures"):
                if doc.get(name) is not None:
                    (Path(tmp) / f"{name}.json").write_text(json.dumps(doc[name], indent=1, default=str))
                    client.log_artifact(run_id, str(Path(tmp) / f"{name}.json"))
    art = path.parent / doc["artifacts"] if doc.get("artifacts") else None
    if art is not None and art.is_dir():
        for item in sorted(art.iterdir()):
            if item.is_dir():
                client.log_artifacts(run_id, str(item), item.name)
            else:
                client.log_artifact(run_id, str(item))
    client.set_terminated(run_id, status=doc.get("status") or "FINISHED")
    path.unlink()
    if art is not None and art.is_dir():
        shutil.rmtree(art)
    return run_id
