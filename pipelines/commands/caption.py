"""`videxperts caption`: a captioning run writes captions for segments of videos in a store."""

from __future__ import annotations

import json
from pathlib import Path

import click

from videxperts.errors import UserError


@click.command("caption")
@click.option("--run", "run_id", default=None, help="MLflow run id of a captioning seed run (its best model).")
@click.option("--checkpoint", default=None, type=click.Path(), help="model.pt instead of --run.")
@click.option("--store", required=True, help="Feature store holding the videos' I3D and VGGish features.")
@click.option("--videos", multiple=True, help="Video ids to caption (repeatable; default: every video).")
@click.option("--segments", default=None, type=click.Path(), help="JSON of segments per video (ActivityNet "
              "layout or a submission); default: uniform windows.")
@click.option("--window", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds per uniform window when no segments are given.")
@click.option("--data", default=None, type=click.Path(), help="Dataset dir whose manifest gives the durations.")
@click.option("--beam", default=None, type=click.IntRange(min=1), help="Beam size (default: the run's config).")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write the submission JSON here.")
@click.option("--work-dir", default="work", show_default=True, type=click.Path(file_okay=False))
@click.option("--tracking-uri", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the ActivityNet submission JSON.")
def caption(run_id: str | None, checkpoint: str | None, store: str, videos: tuple[str, ...], segments: str | None,
            window: float, data: str | None, beam: int | None, out: str | None, work_dir: str,
            tracking_uri: str | None, as_json: bool) -> None:
    """Caption segments of videos in STORE with a trained BMT or BMHRL run, as ActivityNet submission JSON.

    \b
    Example:
      videxperts caption --run RUN_ID --store work/store.zarr --videos v000 --window 8 --json
    """
    from videxperts.training.tracking import resolve_tracking_uri

    if (run_id is None) == (checkpoint is None):
        raise UserError("give exactly one of --run RUN_ID or --checkpoint PATH")
    if checkpoint is not None and not Path(checkpoint).exists():
        raise UserError(f"checkpoint not found: {checkpoint}")
    uri = resolve_tracking_uri(work_dir, tracking_uri) if run_id else None
    from videxperts.pipelines.caption_job import caption_videos

    sub = caption_videos(run_id or checkpoint, store, list(videos) or None, segments, window, data, beam, uri)
    if out:
        Path(out).write_text(json.dumps(sub, indent=1))
    if as_json:
        click.echo(json.dumps(sub, indent=1))
        return
    for vid, items in sub["results"].items():
        for item in items:
            s, e = item["timestamp"]
            click.echo(f"{vid}  {s:7.2f}-{e:7.2f}  {item['sentence']}")
