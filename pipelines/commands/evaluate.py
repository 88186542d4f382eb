"""`videxperts evaluate`: re-evaluate a trained run (its best model) or a checkpoint on a store's split."""

from __future__ import annotations

import json
from pathlib import Path

import click

from videxperts.errors import UserError


@click.command("evaluate")
@click.option("--run", "run_id", default=None, help="MLflow run id of a seed run (its best checkpoint).")
@click.option("--checkpoint", default=None, type=click.Path(), help="model.pt or a training checkpoint directory.")
@click.option("--store", required=True, help="Feature store (path or fsspec URL).")
@click.option("--data", default=None, type=click.Path(), help="Dataset dir with manifest.parquet (the splits).")
@click.option("--split", default="test", show_default=True)
@click.option("--work-dir", default="work", show_default=True, type=click.Path(file_okay=False))
@click.option("--tracking-uri", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def evaluate(run_id: str | None, checkpoint: str | None, store: str, data: str | None, split: str, work_dir: str,
             tracking_uri: str | None, as_json: bool) -> None:
    """Print the metrics of a run or checkpoint on one split of STORE (each task its own: R@k for
    retrieval, ...)."""
    from videxperts.training.tracking import resolve_tracking_uri

    if (run_id is None) == (checkpoint is None):
        raise UserError("give exactly one of --run RUN_ID or --checkpoint PATH")
    if checkpoint is not None and not Path(checkpoint).exists():
        raise UserError(f"checkpoint not found: {checkpoint}")
    uri = resolve_tracking_uri(work_dir, tracking_uri) if run_id else None
    from videxperts.pipelines.evaluate_job import evaluate_checkpoint

    out = evaluate_checkpoint(run_id or checkpoint, store, data, split, uri)
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    from videxperts.pipelines.metrics_text import grouped_lines

    counts = ", ".join(f"{v} {k}" for k, v in out.items() if k in ("videos", "queries", "images", "segments"))
    click.echo(f"{out['model']} ({out['task']}) on {split}: {counts}")
    for line in grouped_lines(out["metrics"]):
        click.echo(line)
