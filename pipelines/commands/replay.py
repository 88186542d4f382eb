"""`videxperts replay`: send to MLflow what a job kept on disk while its tracking server was away."""

from __future__ import annotations

import json

import click


@click.command("replay")
@click.option("--work-dir", default="work", show_default=True, type=click.Path(file_okay=False),
              help="The work dir whose mlflow-unsent/ folder holds the documents.")
@click.option("--tracking-uri", default=None, help="Send to this tracking URI instead of the one each document names.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def replay(work_dir: str, tracking_uri: str | None, as_json: bool) -> None:
    """Send the params, metrics and artifacts of runs whose tracking server went away (extraction
    and training alike) from WORK_DIR/mlflow-unsent/, oldest first; each is removed once sent."""
    from videxperts.errors import UserError
    from videxperts.training.outbox import pending_documents, replay_document
    from videxperts.training.tracking import TrackingUnavailable, check_tracking

    docs = pending_documents(work_dir)
    sent: list[str] = []
    for path in docs:
        uri = tracking_uri or json.loads(path.read_text())["tracking_uri"]
        try:
            check_tracking(uri, timeout_s=5.0)
        except TrackingUnavailable as exc:
            raise UserError(f"{path}: {exc}; nothing more sent ({len(sent)} of {len(docs)} sent)") from None
        sent.append(replay_document(path, tracking_uri))
    if as_json:
        click.echo(json.dumps({"sent": sent, "left": len(docs) - len(sent)}, indent=1))
    elif sent:
        click.echo(f"sent {len(sent)} run(s): {', '.join(sent)}")
    else:
        click.echo(f"nothing to send in {work_dir}/mlflow-unsent")
