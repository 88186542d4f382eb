"""The ``videxperts`` command line: a thin click group; each subcommand lives in its own module.

Subcommand modules are imported lazily so ``videxperts --help`` stays fast and a broken
optional dependency of one subcommand does not take the others down.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

import click

from videxperts.errors import UserError

# name -> (module, attribute, one-line help shown in `videxperts --help`)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "data": ("videxperts.pipelines.commands.data", "data", "Make or import a video-text dataset (manifest + captions)."),
    "extract": ("videxperts.pipelines.commands.extract", "extract", "Extract expert features into a Zarr store with Ray."),
    "store": ("videxperts.pipelines.commands.store", "store", "Inspect, verify and compact a feature store."),
    "train": ("videxperts.pipelines.commands.train", "train", "Train a config's model (retrieval: CE, ablations, TeachText) with Ray Train."),
    "evaluate": ("videxperts.pipelines.commands.evaluate", "evaluate", "Re-evaluate a trained run or checkpoint on a store."),
    "caption": ("videxperts.pipelines.commands.caption", "caption", "Caption video segments with a trained captioning run (ActivityNet JSON)."),
    "report": ("videxperts.pipelines.commands.report", "report", "Print the results table of an MLflow experiment."),
    "submit": ("videxperts.pipelines.commands.submit", "submit", "Submit a videxperts command to a Ray cluster (Jobs API)."),
    "replay": ("videxperts.pipelines.commands.replay", "replay", "Send runs kept on disk during a tracking outage to MLflow."),
    "ui": ("videxperts.pipelines.commands.ui", "ui", "Start the MLflow UI on 127.0.0.1 for the project's tracking store."),
    "doctor": ("videxperts.pipelines.commands.doctor", "doctor", "Check that this machine has what the commands need."),
    "config": ("videxperts.pipelines.commands.config", "config", "List, show and copy the shipped configs (profiles, training)."),
}


def _version() -> str:
    try:
        return version("videxperts")
    except PackageNotFoundError:  # running from a source tree without install
        return "0+unknown"


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in SUBCOMMANDS:
            import difflib

            close = difflib.get_close_matches(name, list(SUBCOMMANDS), n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}{hint} (commands: {', '.join(SUBCOMMANDS)})")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="videxperts")
def cli() -> None:
    """videxperts: extract expert features from raw videos with Ray and train models on them.

    Configs and profiles are given by shipped name (demo_ce, msrvtt_ce, demo, paper) or path.

    Every command keeps its runs in one work dir (--work-dir, $VIDEXPERTS_WORK_DIR, else ./work)
    and one MLflow experiment (--experiment, $VIDEXPERTS_EXPERIMENT, else videxperts).

    \b
    Typical flow (minutes on a laptop; the demo profile's eight experts take longer):
      videxperts data synth --out work/data --videos 12 --max-seconds 2
      videxperts extract work/data --out work/store.zarr --experts audio,scene
      videxperts train --config quick_ce --store work/store.zarr
      videxperts report --experiment videxperts
    """


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    from videxperts.pipelines.progress import quiet_known_notices

    quiet_known_notices()
    try:
        cli.main(args=argv, prog_name="videxperts", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("videxperts: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        # One line, naming what was wrong; `--help` has the long form.
        path = exc.ctx.command_path if exc.ctx else "videxperts"
        click.echo(f"videxperts: error: {exc.format_message()} (see '{path} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"videxperts: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"videxperts: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("videxperts: interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
