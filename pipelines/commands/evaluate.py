"""`videxperts evaluate`: re-evaluate a trained run (its best model) or a checkpoint on a store's split."""

from __future__ import annotations

import json
from pathlib import Path

import click

from videxperts.errors import UserError
from videxperts.pipelines.workdir import existing_tracking_uri, work_dir_option


@click.command("evaluate")
@click.option("--run", "run_id", default=None, help="MLflow run id: a training (parent) run, whose every seed is "
              "evaluated and summarised as mean (std), or one seed run (its best checkpoint).")
@click.option("--checkpoint", default=None, type=click.Path(), help="model.pt or a training checkpoint directory.")
@click.option("--store", default=None, help="Feature store (path or fsspec URL); not needed with --predictions.")
@click.option("--data", default=None, type=click.Path(), help="Dataset dir with manifest.parquet (default: the "
              "splits `extract` recorded in the store).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@work_dir_option()
@click.option("--tracking-uri", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--predictions", default=None, type=click.Path(),
              help="Dense captions in the ActivityNet submission JSON: score them instead of a run.")  # fmt: skip
@click.option("--references", multiple=True, type=click.Path(),
              help="ActivityNet reference JSON (repeatable, e.g. val_1_no_missings.json); with --predictions.")  # fmt: skip
@click.option("--tious", default="0.3,0.5,0.7,0.9", show_default=True, help="tIoU thresholds (with --predictions).")
@click.option("--max-proposals", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Predictions kept per video (with --predictions; the published protocol uses 100).")  # fmt: skip
@click.option("--ensemble", default=None, help="Matching: RUN_A,RUN_B (run ids or checkpoints) scored by their "
              "averaged similarities, as the published VSRN/DCPG tables.")
@click.option("--protocol", default=None, type=click.Choice(["f30k_1k", "coco_1k", "coco_5k"]),
              help="Matching: the VSE++ protocol (default: the config's eval.protocol).")
def evaluate(run_id: str | None, checkpoint: str | None, store: str | None, data: str | None, split: str, work_dir: str,
             tracking_uri: str | None, as_json: bool, predictions: str | None = None, references: tuple[str, ...] = (),
             tious: str = "0.3,0.5,0.7,0.9", max_proposals: int = 1000, ensemble: str | None = None,
             protocol: str | None = None) -> None:  # fmt: skip
    """Print the metrics of a run or checkpoint on one split of STORE (each task its own: R@k for
    retrieval, ...), with the numbers of videos and queries scored; or score a dense-captioning
    submission with the ActivityNet protocol.

    \b
    Examples:
      videxperts evaluate --run PARENT_RUN_ID --store work/store.zarr
      videxperts evaluate --predictions captions.json --references work/anet/references/val_1_no_missings.json \\
          --tious 0.5 --max-proposals 100
    """
    from videxperts.pipelines.evaluate_job import evaluate_checkpoint
    from videxperts.pipelines.evaluate_runs import aggregate, seed_runs

    if predictions is not None:
        _score_dense(predictions, references, tious, max_proposals, as_json)
        return
    if store is None:
        raise UserError("give --store STORE (or --predictions FILE --references FILE to score dense captions)")
    if ensemble is not None or protocol is not None:
        _evaluate_matching(run_id, checkpoint, ensemble, store, data, split, work_dir, tracking_uri, as_json, protocol)
        return
    if (run_id is None) == (checkpoint is None):
        raise UserError("give exactly one of --run RUN_ID or --checkpoint PATH")
    if checkpoint is not None and not Path(checkpoint).exists():
        raise UserError(f"checkpoint not found: {checkpoint}")
    uri = existing_tracking_uri(work_dir, tracking_uri) if run_id else None
    targets = seed_runs(run_id, uri) if run_id else [(None, checkpoint)]  # checked before any download
    outs = [{**evaluate_checkpoint(ref, store, data, split, uri), **({"seed": s} if s is not None else {})}
            for s, ref in targets]
    parent = run_id is not None and (len(targets) > 1 or targets[0][1] != run_id)  # a training run's seeds
    out = outs[0] if not parent else {**{k: v for k, v in outs[0].items() if k not in ("metrics", "seed",
                                                                                            "checkpoint")},
                                          "run": run_id, "seeds": outs, "metrics": aggregate(outs)}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    from videxperts.pipelines.metrics_text import grouped_lines
    from videxperts.training.protocol import protocol_warnings

    counts = {k: v for k, v in outs[0].items() if k in ("videos", "queries", "images", "segments")}
    click.echo(f"{out['model']} ({out['task']}) on {split}: {', '.join(f'{v} {k}' for k, v in counts.items())}")
    if not parent:
        for line in grouped_lines(out["metrics"]):
            click.echo(line)
    else:
        for o in outs:
            click.echo(f"  seed {o['seed']} (run {o['checkpoint']}):")
            for line in grouped_lines(o["metrics"], indent="    "):
                click.echo(line)
        click.echo(f"mean (std) over {len(outs)} seeds:")
        groups: dict[str, list[str]] = {}
        for k, v in out["metrics"].items():
            prefix, _, short = k.rpartition("/")
            groups.setdefault(prefix, []).append(f"{short} {v['mean']:.2f} ({v['std']:.2f})")
        for prefix, items in groups.items():
            click.echo(f"  {prefix + ': ' if prefix else ''}{'  '.join(items)}")
    for w in protocol_warnings({split: counts}, list(outs[0]["metrics"])):
        click.echo(f"warning: {w}", err=True)


def _score_dense(predictions: str, references: tuple[str, ...], tious: str, max_proposals: int, as_json: bool) -> None:
    """ActivityNet dense-captioning scores of a submission file (SPEC-BMHRL.md §3.2)."""
    from videxperts.training.captioning.dense_eval import METRICS, evaluate_dense_captions

    if not references:
        raise UserError("--predictions needs at least one --references FILE (ActivityNet ground truth JSON)")
    try:
        thresholds = tuple(float(t) for t in tious.split(",") if t.strip())
    except ValueError:
        raise UserError(f"--tious must be comma-separated numbers, got {tious!r}") from None
    out = evaluate_dense_captions(predictions, list(references), tious=thresholds, max_proposals=max_proposals)
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    click.echo(f"dense captions: {out['videos']} videos, {out['predictions']} predictions, {out['references']} "
               f"reference segments; tIoU {', '.join(f'{t:g}' for t in out['tious'])}")  # fmt: skip
    for m in (*METRICS, "Precision", "Recall"):
        v = out[m]
        click.echo(f"  {m:<9} {'unavailable' if v is None else f'{100 * v:.2f}' if m != 'CIDEr' else f'{v:.4f}'}")
    for note in out["notes"]:
        click.echo(f"videxperts: {note}", err=True)


def _evaluate_matching(run_id: str | None, checkpoint: str | None, ensemble: str | None, store: str, data: str | None,
                       split: str, work_dir: str, tracking_uri: str | None, as_json: bool,
                       protocol: str | None) -> None:
    """Matching runs: one (--run/--checkpoint with --protocol) or an ensemble (--ensemble A,B)."""
    from videxperts.pipelines.evaluate_job import evaluate_matching

    refs = [r for r in (ensemble or "").split(",") if r] + [r for r in (run_id, checkpoint) if r]
    if not refs:
        raise UserError("give --run, --checkpoint or --ensemble RUN_A,RUN_B")
    uri = existing_tracking_uri(work_dir, tracking_uri)
    out = evaluate_matching(refs, store, data, split, uri, protocol)
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    from videxperts.pipelines.metrics_text import grouped_lines

    click.echo(f"{out['model']} (matching, {out['protocol']}) on {split}: {out['images']} images, "
               f"{out['captions']} captions")
    for line in grouped_lines(out["metrics"]):
        click.echo(line)
