"""`videxperts report`: the results table of an experiment, one row per model (parent run),
every metric as mean (std) over its seeds, as the papers report them."""

from __future__ import annotations

import json

import click

from pipelines.errors import UserError

COLUMNS = ("R1", "R5", "R10", "R50", "MdR", "MnR", "Geom")
HEADERS = ("R@1", "R@5", "R@10", "R@50", "MdR", "MnR", "Geom")


def report_rows(tracking_uri: str, experiment: str, direction: str = "t2v") -> list[dict]:
    """One dict per FINISHED parent run of ``experiment`` (oldest first)."""
    from mlflow.tracking import MlflowClient

    from training.tracking import KIND_TAG

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(f"no MLflow experiment {experiment!r} in {tracking_uri}")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'train'",
                              order_by=["attributes.start_time ASC"], max_results=1000)
    rows = []
    for run in runs:
        if run.info.status != "FINISHED":
            continue
        m = run.data.metrics
        metrics = {c: {"mean": m.get(f"test/{direction}/{c}_mean"), "std": m.get(f"test/{direction}/{c}_std")}
                   for c in COLUMNS}
        params = run.data.tags.get("model.parameters")
        rows.append({"model": run.data.tags.get("model.name", run.info.run_name), "run_id": run.info.run_id,
                     "seeds": len([s for s in run.data.params.get("seeds", "").split(",") if s]),
                     "parameters": int(params) if params else None, "metrics": metrics})
    return rows


def _cell(v: dict) -> str:
    if v["mean"] is None:
        return "-"
    return f"{v['mean']:.1f} ({v['std']:.1f})"


def format_table(rows: list[dict], markdown: bool) -> str:
    header = ["model", *HEADERS, "params", "seeds"]
    body = [[r["model"], *(_cell(r["metrics"][c]) for c in COLUMNS),
             f"{r['parameters'] / 1e6:.2f}M" if r["parameters"] else "-", str(r["seeds"])] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line) for line in [header, *body])


@click.command("report")
@click.option("--experiment", required=True, help="MLflow experiment name.")
@click.option("--work-dir", default="work", show_default=True, type=click.Path(file_okay=False))
@click.option("--tracking-uri", default=None)
@click.option("--v2t", is_flag=True, help="Also print the video->text table.")
@click.option("--markdown", is_flag=True, help="Markdown tables.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def report(experiment: str, work_dir: str, tracking_uri: str | None, v2t: bool, markdown: bool,
           as_json: bool) -> None:
    """Text->video (and video->text) results: one row per model, mean (std) over seeds."""
    from training.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(work_dir, tracking_uri)
    directions = ["t2v", "v2t"] if v2t else ["t2v"]
    tables = {d: report_rows(uri, experiment, d) for d in directions}
    if as_json:
        click.echo(json.dumps({"experiment": experiment, "tracking_uri": uri, **tables}, indent=1))
        return
    for d in directions:
        click.echo(f"{'text->video' if d == 't2v' else 'video->text'} ({experiment})")
        click.echo(format_table(tables[d], markdown))
        click.echo("")
