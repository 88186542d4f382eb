"""`videxperts doctor`: is this machine ready? Programs, libraries, GPU, Ray, shared memory, tracking, configs."""

from __future__ import annotations

import json
import sys

import click


@click.command("doctor")
@click.option("--work-dir", default=None, type=click.Path(file_okay=False),
              help="Project work dir whose tracking store is checked (default: $VIDEXPERTS_WORK_DIR or work).")
@click.option("--tracking-uri", default=None, help="Check this MLflow tracking URI instead.")
@click.option("--json", "as_json", is_flag=True, help="Print {ok, checks: [{name, status, required, detail, fix}]}.")
def doctor(work_dir: str | None, tracking_uri: str | None, as_json: bool) -> None:
    """Check what the commands need: ffmpeg, espeak-ng, tesseract, Java, torch/CUDA, decoders, Ray,
    shared memory, the tracking store (read-only: nothing is created) and the shipped configs.

    Exit code 1 when something required is missing; warnings (no GPU, small /dev/shm) do not fail.

    \b
    Example:
      videxperts doctor --json
    """
    from videxperts.pipelines.doctor import run_checks

    checks = run_checks(work_dir, tracking_uri)
    ok = not any(c.required and c.status == "missing" for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": ok, "checks": [c.to_dict() for c in checks]}, indent=1))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            mark = {"ok": "ok", "warn": "WARN", "missing": "MISSING"}[c.status]
            click.echo(f"{mark:<8}{c.name:<{width}}  {c.detail}")
            if c.status != "ok" and c.fix:
                click.echo(f"{'':<8}{'':<{width}}  fix: {c.fix}")
        click.echo("ready" if ok else "not ready: fix the MISSING lines above")
    if not ok:
        sys.exit(1)
