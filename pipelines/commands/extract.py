"""`videxperts extract`: expert features for every input video, into a Zarr feature store, with Ray.

The job itself lives in :mod:`videxperts.pipelines.extract`; this module only parses options and prints
the summary (one JSON document with ``--json``). Exit status: 0 when the job ran to the end
(failed videos are recorded in the store, not an error), 130 after SIGINT/SIGTERM (the store is
consistent and re-running the same command resumes).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from videxperts.pipelines.workdir import experiment_option, work_dir_option, writable_tracking_uri

MAX_LISTED_FAILURES = 100


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _human(summary: dict[str, Any]) -> str:
    lines = [
        f"store: {summary['store']}",
        f"inputs {summary['inputs']}: done {summary['done']}, failed {summary['failed']}, "
        f"quarantined {summary['quarantined']}, skipped (already done) {summary['skipped']}"
        + (f", pending {summary['pending']}" if summary.get("pending") else ""),
        f"wall {summary['wall_s']:.1f} s, {summary.get('videos_per_s') or 0:.2f} videos/s, "
        f"retries {summary['retries']}, worker crashes {summary['actor_crashes']}",
    ]
    for stage, s in summary.get("stages", {}).items():
        rate = s.get("items_per_s_busy")
        lines.append(f"  {stage:<12} {s['items']:>6} items, busy {s['busy_s']:.1f} s"
                     + (f", {rate:.2f}/s per worker" if rate else ""))
    for f in summary.get("failures", [])[:10]:
        lines.append(f"  {f['state']:<11} {f['video_id']} [{f['expert']}] {f['error_class']}: {f['message'][:120]}")
    if summary.get("failures_total", 0) > 10:
        lines.append(f"  ... {summary['failures_total'] - 10} more (see the MLflow run's failures.csv)")
    rejected = summary.get("rejected") or []
    if rejected:
        lines.append(f"rejected {len(rejected)} entries named like videos (not extracted):")
        lines += [f"  {r['path']!r}: {r['reason']}" for r in rejected[:10]]
        if len(rejected) > 10:
            lines.append(f"  ... {len(rejected) - 10} more (see --json)")
    for note in summary.get("notes", []):
        lines.append(f"note: {note}")
    if summary.get("tracking_unsent"):
        lines.append(f"mlflow run {summary['mlflow_run_id']} at {summary.get('tracking_uri')}: not logged "
                     f"({summary.get('tracking_error')}); kept in {summary['tracking_unsent']}")
    elif summary.get("mlflow_run_id"):
        lines.append(f"mlflow run {summary['mlflow_run_id']} at {summary.get('tracking_uri')}")
    if summary.get("interrupted"):
        lines.append("interrupted: re-run the same command to resume")
    return "\n".join(lines)


def _warn_random_weights(profile: str, experts: str | None) -> None:
    """Loud stderr warning when a profile with pretrained-weight slots runs them empty (paper profile)."""
    from videxperts.extractors.pretrained import random_weights_warning
    from videxperts.extractors.registry import load_profile

    text = random_weights_warning(load_profile(profile), _csv(experts))
    if text:
        click.echo(text, err=True)


@click.command("extract")
@click.argument("input_spec", metavar="INPUT")
@click.option("--out", required=True, help="Feature store path or fsspec URL (created if missing).")
@click.option("--experts", default=None, help="Comma-separated experts (default: every expert in the profile).")
@click.option("--profile", default="demo", show_default=True, help="Profile name (configs/extract/NAME.yaml) or path.")
@click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray).")
@click.option("--decoder", type=click.Choice(["decord", "torchcodec", "pyav"]), default=None,
              help="Decoding backend (default: the profile's).")
@click.option("--max-retries", default=2, show_default=True, type=click.IntRange(0, 20),
              help="Retries of a failing video (typed input errors are never retried).")
@click.option("--batch-size", default=None, type=click.IntRange(1), help="Windows per expert call (default: profile).")
@click.option("--workers", default=None, type=click.IntRange(1), help="Actors per stage (default: fit the cluster).")
@click.option("--writers", default=1, show_default=True, type=click.IntRange(1), help="Store writer actors.")
@click.option("--max-inflight", default=None, type=click.IntRange(1), help="Videos in flight at once (memory bound).")
@click.option("--commit-every", default=16, show_default=True, type=click.IntRange(1), help="Commit every N items...")
@click.option("--commit-seconds", default=10.0, show_default=True, type=float, help="...or every T seconds.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
              "sqlite:///<work-dir>/mlflow.db).")
@experiment_option()
@work_dir_option("the MLflow tracking database and its artifacts")
@click.option("--tracking/--no-tracking", default=True, help="Log the job as an MLflow run.")
@click.option("--captions/--no-captions", default=True, help="Encode the dataset's captions too.")
@click.option("--text-encoders", default=None, help="Comma-separated caption encoders (default: minilm).")
@click.option("--num-cpus", default=None, type=click.IntRange(1), help="CPUs of the local Ray (no --address).")
@click.option("--overwrite-expert", "overwrite", multiple=True, metavar="NAME",
              help="Discard NAME's features in the store and extract them again with this profile "
                   "(for an expert whose settings changed; repeatable or comma-separated).")
@click.option("--progress/--no-progress", default=True, help="Show the progress bar on stderr (a terminal: a bar; "
              "a log file: one line every $VIDEXPERTS_PROGRESS_SECONDS, default 30).")
@click.option("--verbose", is_flag=True, help="Stream the Ray workers' output (model loading, library notices) "
              "to stderr; by default it stays in Ray's log files.")
@click.option("--balance/--no-balance", default=True,
              help="Size each stage's threads, replicas and batch size from measured costs (calibrated once "
                   "per machine, cached); --no-balance: the profile's values and one chain per CPU.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document on stdout.")
@click.option("--dashboard", is_flag=True, help="Start the embedded Ray's dashboard on 127.0.0.1 and print its URL "
              "(and where its token comes from). Without --address only.")
def extract(input_spec: str, out: str, experts: str | None, profile: str, address: str | None,
            decoder: str | None, max_retries: int, batch_size: int | None, workers: int | None,
            writers: int, max_inflight: int | None, commit_every: int, commit_seconds: float,
            tracking_uri: str | None, experiment: str, work_dir: str, tracking: bool, captions: bool,
            text_encoders: str | None, num_cpus: int | None, overwrite: tuple[str, ...], progress: bool,
            verbose: bool, as_json: bool, dashboard: bool = False, balance: bool = True) -> None:
    """Extract expert features from INPUT (manifest, dataset dir, folder or glob) into --out.

    Re-running the same command resumes: videos already done are skipped, failed ones are
    retried, quarantined ones are left alone.
    """
    from videxperts.pipelines.extract import ExtractConfig, run_extract

    _warn_random_weights(profile, experts)
    if dashboard:  # read by the embedded Ray's start (cluster/local.py)
        import os

        from videxperts.cluster.local import DASHBOARD_ENV

        os.environ[DASHBOARD_ENV] = "1"
    cfg = ExtractConfig(
        input=input_spec, out=out, experts=_csv(experts), profile=profile, address=address,
        decoder=decoder, max_retries=max_retries, batch_size=batch_size, workers=workers,
        writers=writers, max_inflight=max_inflight, commit_every=commit_every,
        commit_seconds=commit_seconds, tracking=tracking,
        tracking_uri=writable_tracking_uri(work_dir, tracking_uri) if tracking else tracking_uri,
        experiment=experiment, captions=captions, text_encoders=_csv(text_encoders),
        num_cpus=num_cpus, progress=progress, verbose=verbose, balance=balance,
        overwrite_experts=[n for item in overwrite for n in (_csv(item) or [])],
    )
    summary = run_extract(cfg)
    summary["failures_total"] = len(summary.get("failures", []))
    summary["failures"] = summary.get("failures", [])[:MAX_LISTED_FAILURES]
    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        click.echo(_human(summary))
    if summary.get("interrupted"):
        sys.exit(130)
