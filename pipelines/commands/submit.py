"""`videxperts submit`: run a videxperts command on a Ray cluster through the Jobs API.

Everything after ``--`` is the videxperts command line (``extract ...``, ``train ...``). The
local working dir is uploaded with the job so the cluster runs this checkout; the job finds
its cluster through ``RAY_ADDRESS``, set by the Jobs API.
"""

from __future__ import annotations

import json
import sys

import click

from videxperts.errors import UserError


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--env {pair!r}: expected KEY=VALUE")
        env[key] = value
    return env


@click.command("submit", context_settings={"ignore_unknown_options": True})
@click.option("--address", required=True, envvar="VIDEXPERTS_JOBS_ADDRESS",
              help="Ray dashboard / Jobs API address, e.g. http://HEAD:8265.")
@click.option("--working-dir", default=".", show_default=True,
              help="Directory uploaded as the job's working dir ('none' to upload nothing).")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE",
              help="Environment variable for the job (repeatable).")
@click.option("--pip", "pip_pkgs", multiple=True, help="Extra pip package for the job's env (repeatable).")
@click.option("--entrypoint-prefix", default="python -m videxperts.pipelines.cli", show_default=True,
              help="How the cluster runs videxperts.")
@click.option("--follow/--no-follow", default=False, help="Stream the job's logs until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def submit(address: str, working_dir: str, env_pairs: tuple[str, ...], pip_pkgs: tuple[str, ...],
           entrypoint_prefix: str, follow: bool, as_json: bool, command: tuple[str, ...]) -> None:
    """Submit `videxperts COMMAND...` (given after `--`) to the cluster at --address.

    \b
    Example:
      videxperts submit --address http://HEAD:8265 --follow -- \\
          extract s3://bucket/data --out s3://bucket/store.zarr --profile paper
    """
    from videxperts.cluster import jobs

    wd = None if working_dir.lower() == "none" else working_dir
    c, job_id, entrypoint = jobs.submit(
        address, list(command), working_dir=wd, env_vars=_parse_env(env_pairs),
        pip=list(pip_pkgs) or None, entrypoint_prefix=entrypoint_prefix,
    )
    status = "SUBMITTED"
    if follow:
        if not as_json:
            click.echo(f"submitted {job_id}; following its logs", err=True)
        status = jobs.follow(c, job_id, write=(sys.stderr.write if as_json else sys.stdout.write))
    result = jobs.JobResult(job_id, address, status, entrypoint)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    elif follow:
        click.echo(f"job {job_id}: {status}", err=True)
    else:
        click.echo(job_id)
    if follow and status != "SUCCEEDED":
        sys.exit(1)
