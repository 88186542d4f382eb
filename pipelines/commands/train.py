"""`videxperts train`: train the model of a config (any task) with Ray Train, tracked in MLflow."""

from __future__ import annotations

import contextlib
import json
import sys

import click

from videxperts.errors import UserError
from videxperts.pipelines.workdir import experiment_option, work_dir_option


def _seeds(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds: expected comma-separated integers, got {value!r}") from None


@click.command("train")
@click.option("--config", "config", required=True, help="Training config: a shipped name (demo_ce, msrvtt_ce, ...) "
              "or a YAML path.")
@click.option("--store", default=None, help="Feature store (path or fsspec URL).")
@click.option("--data", default=None, type=click.Path(), help="Dataset dir with manifest.parquet (the splits).")
@click.option("--num-workers", default=1, show_default=True, type=click.IntRange(1), help="Ray Train workers (DDP).")
@click.option("--use-gpu", is_flag=True, help="One GPU per worker, NCCL, mixed precision.")
@click.option("--seeds", default=None, help="Comma-separated seeds (default: the config's train.seed).")
@click.option("--epochs", default=None, type=click.IntRange(1), help="Override train.epochs.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value: dotted key, YAML-typed value (repeatable), e.g. --set optim.lr=0.005 "
              "--set data.text.max_captions=10. Checked like the config file; recorded in the run's params.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
              "sqlite:///<work-dir>/mlflow.db).")
@experiment_option()
@work_dir_option()
@click.option("--address", default=None, help="Ray cluster address (default: local Ray).")
@click.option("--max-failures", default=1, show_default=True, type=click.IntRange(0),
              help="Worker failures tolerated; training resumes from the last epoch checkpoint.")
@click.option("--restart", is_flag=True, help="Start new runs even if this same command was interrupted "
              "(by default a re-run resumes the unfinished runs from their last epoch checkpoint).")
@click.option("--keep-checkpoints", is_flag=True, help="Keep each finished seed's Ray Train epoch checkpoints "
              "under <work-dir>/ray (by default removed once the best model is logged to MLflow).")
@click.option("--dashboard", is_flag=True, help="Start the embedded Ray's dashboard on 127.0.0.1 and print its URL "
              "(and where its token comes from). Without --address only.")
@click.option("--describe", is_flag=True, help="Build the model without data and print its parameter counts.")
@click.option("--verbose", is_flag=True, help="Show the Ray Train workers' logs (per-epoch reports) on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def train(config: str, store: str | None, data: str | None, num_workers: int, use_gpu: bool, seeds: str | None,
          epochs: int | None, tracking_uri: str | None, experiment: str | None, work_dir: str,
          address: str | None, max_failures: int, restart: bool, describe: bool, verbose: bool, as_json: bool,
          overrides: tuple[str, ...] = (), keep_checkpoints: bool = False, dashboard: bool = False) -> None:
    """Train the model of CONFIG on the features in STORE: one MLflow parent run, one child per seed.

    The config's `task:` (retrieval, ...) decides the model, the losses and the metrics."""
    if describe:
        from videxperts.training.config import load_config
        from videxperts.training.describe import describe_model, format_description

        desc = describe_model(load_config(config, overrides=overrides))
        click.echo(json.dumps(desc, indent=1) if as_json else format_description(desc, structure=True))
        return
    from videxperts.pipelines.train_job import TrainRequest, run_train

    # --json: stdout holds exactly one document; anything else printed meanwhile (MLflow's run
    # links, library notices) goes to stderr
    quiet_stdout = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with quiet_stdout:
        summary = run_train(TrainRequest(
            config=config, store=store, data=data, num_workers=num_workers, use_gpu=use_gpu, seeds=_seeds(seeds),
            tracking_uri=tracking_uri, experiment=experiment, epochs=epochs, work_dir=work_dir, address=address,
            max_failures=max_failures, restart=restart, quiet=as_json or not verbose, progress=not as_json,
            overrides=list(overrides), keep_checkpoints=keep_checkpoints, dashboard=dashboard,
        ))
    if as_json:
        slim = {k: v for k, v in summary.items() if k != "seeds"}
        slim["seeds"] = {str(s): {k: v for k, v in r.items() if k != "history"} for s, r in summary["seeds"].items()}
        click.echo(json.dumps(slim, indent=1))
        return
    from videxperts.pipelines.train_summary import closing_lines

    click.echo(f"parent run {summary['parent_run_id']} ({summary['tracking_uri']})")
    from videxperts.training.task import get_task

    first_table = next(iter(get_task(summary["task"]).report_tables.values()))
    for seed, r in summary["seeds"].items():
        cells = "  ".join(f"{c.header} {r['test'][c.metric]:.{c.digits}f}" for c in first_table if c.metric in r["test"])
        click.echo(f"  seed {seed}: run {r['run_id']}  best epoch {r['best_epoch']}  test {cells}")
    for line in closing_lines(summary, experiment, work_dir):
        click.echo(line)
