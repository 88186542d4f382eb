"""`videxperts evaluate`: re-evaluate a trained run (its best model) or a checkpoint on a store's split."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click

from pipelines.errors import UserError


def evaluate_checkpoint(ref: str, store: str, data: str | None, split: str, tracking_uri: str | None) -> dict:
    """Metrics of the checkpoint/run ``ref`` on ``split`` of ``store`` (in-process, CPU or one GPU)."""
    import torch

    from training.data import load_split, read_splits
    from training.loop import evaluate_split
    from training.preflight import check_config_matches_store, open_store
    from training.teachtext import load_model_checkpoint, resolve_checkpoint

    with tempfile.TemporaryDirectory(prefix="vx-eval-") as tmp:
        path = resolve_checkpoint(ref, tracking_uri, tmp)
        cfg, model, ckpt = load_model_checkpoint(path)
    # a model trained on other features (dims, experts) is one line here, not a shape error mid-forward
    check_config_matches_store(cfg, open_store(store), f"checkpoint {ref}", store)
    ids = read_splits(data, store=store).get(split) or []
    if not ids:
        raise UserError(f"split {split!r} has no videos")
    split_data = load_split(store, cfg, ids)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    metrics, _ = evaluate_split(model.to(device), split_data, device)
    return {"checkpoint": ref, "model": cfg.name, "split": split, "videos": len(split_data),
            "captions": int(split_data.caption_mask.sum()), "best_epoch": ckpt.get("best_epoch"), **metrics}


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
    """Print text->video and video->text retrieval metrics of a run or checkpoint."""
    from training.tracking import resolve_tracking_uri

    if (run_id is None) == (checkpoint is None):
        raise UserError("give exactly one of --run RUN_ID or --checkpoint PATH")
    if checkpoint is not None and not Path(checkpoint).exists():
        raise UserError(f"checkpoint not found: {checkpoint}")
    uri = resolve_tracking_uri(work_dir, tracking_uri) if run_id else None
    out = evaluate_checkpoint(run_id or checkpoint, store, data, split, uri)
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    click.echo(f"{out['model']} on {split}: {out['videos']} videos, {out['captions']} captions")
    for d in ("t2v", "v2t"):
        click.echo(f"  {d}: " + "  ".join(f"{k} {v:.2f}" for k, v in out[d].items()))
