"""`videxperts report`: the results tables of an experiment, one row per model (parent run),
every metric as mean (std) over its seeds, as the papers report them.

Each task declares its own tables and columns (retrieval: R@1 ... Geom for text->video and
video->text); an experiment holding runs of several tasks prints one set of tables per task.
"""

from __future__ import annotations

import json

import click

from videxperts.errors import UserError
from videxperts.pipelines.workdir import existing_tracking_uri, experiment_option, work_dir_option


def report_tables(tracking_uri: str, experiment: str, all_tables: bool = False) -> list[dict]:
    """One table per (task, table title) with one row per FINISHED parent run (oldest first)."""
    from mlflow.tracking import MlflowClient

    from videxperts.training.task import get_task
    from videxperts.training.tracking import KIND_TAG, TASK_TAG, result_counts, result_value

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(f"no MLflow experiment {experiment!r} in {tracking_uri}")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'train'",
                              order_by=["attributes.start_time ASC"], max_results=1000)
    by_task: dict[str, list] = {}
    for run in runs:
        if run.info.status == "FINISHED":
            by_task.setdefault(run.data.tags.get(TASK_TAG, "retrieval"), []).append(run)
    tables = []
    for task_name, task_runs in by_task.items():
        task = get_task(task_name, f"run {task_runs[0].info.run_id}")
        titles = list(task.report_tables)
        for title in titles if all_tables else titles[:1]:
            columns = task.report_tables[title]
            rows = []
            for run in task_runs:
                m = run.data.metrics
                params = run.data.tags.get("model.parameters")
                rows.append({
                    "model": run.data.tags.get("model.name", run.info.run_name), "run_id": run.info.run_id,
                    "scored": result_counts(m, "test"),
                    "seeds": len([s for s in run.data.params.get("seeds", "").split(",") if s]),
                    "parameters": int(params) if params else None,
                    "metrics": {c.metric: {"mean": result_value(m, "test", f"{c.metric}_mean"),
                                           "std": result_value(m, "test", f"{c.metric}_std")}
                                for c in columns},
                })
            tables.append({"task": task_name, "title": title,
                           "columns": [{"metric": c.metric, "header": c.header, "digits": c.digits} for c in columns],
                           "rows": rows})
    return tables


def _cell(v: dict, digits: int) -> str:
    if v["mean"] is None:
        return "-"
    return f"{v['mean']:.{digits}f} ({v['std']:.{digits}f})"


def format_table(table: dict, markdown: bool) -> str:
    cols = table["columns"]
    header = ["model", *(c["header"] for c in cols), "params", "seeds"]
    body = [[r["model"], *(_cell(r["metrics"][c["metric"]], c["digits"]) for c in cols),
             f"{r['parameters'] / 1e6:.2f}M" if r["parameters"] else "-", str(r["seeds"])] for r in table["rows"]]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [header, *body])


@click.command("report")
@experiment_option(required=True)
@work_dir_option()
@click.option("--tracking-uri", default=None)
@click.option("--all-tables", "--v2t", "all_tables", is_flag=True,
              help="Every table of each task (retrieval: also video->text); default: the first.")
@click.option("--markdown", is_flag=True, help="Markdown tables.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def report(experiment: str | None, work_dir: str, tracking_uri: str | None, all_tables: bool, markdown: bool,
           as_json: bool) -> None:
    """Test results of EXPERIMENT: one row per model, mean (std) over seeds, in each task's own columns.

    Without --experiment: the experiments of the work dir's tracking store, with their run counts.

    \b
    Example:
      videxperts report --experiment videxperts --work-dir work
    """
    uri = existing_tracking_uri(work_dir, tracking_uri)  # read-only: never creates a database
    if experiment is None:
        _list_experiments(uri, as_json)
        return
    tables = report_tables(uri, experiment, all_tables)
    if as_json:
        click.echo(json.dumps({"experiment": experiment, "tracking_uri": uri, "tables": tables}, indent=1))
        return
    if not tables:
        raise UserError(f"experiment {experiment!r} in {uri} has no finished training runs "
                        f"(run `videxperts train ... --experiment {experiment}`; `videxperts report` lists the "
                        "experiments)")
    from videxperts.training.protocol import protocol_warnings

    for table in tables:
        click.echo(f"{table['title']} ({table['task']}, {experiment})")
        click.echo(format_table(table, markdown))
        for row in table["rows"]:
            if row["scored"]:
                scored = ", ".join(f"{v} {k}" for k, v in row["scored"].items())
                click.echo(f"  {row['model']}: test scored {scored}")
                for w in protocol_warnings({"test": row["scored"]}, [c["metric"] for c in table["columns"]]):
                    click.echo(f"  warning: {w}")
        click.echo("")


def _list_experiments(uri: str, as_json: bool) -> None:
    from videxperts.pipelines.workdir import list_experiments

    exps = list_experiments(uri)
    if as_json:
        click.echo(json.dumps({"tracking_uri": uri, "experiments": exps}, indent=1))
        return
    if not exps:
        raise UserError(f"no experiments in {uri}")
    click.echo(f"experiments in {uri} (pick one with --experiment NAME):")
    for e in exps:
        click.echo(f"  {e['name']}: {e['training_runs']} training runs, {e['extraction_runs']} extraction runs")
