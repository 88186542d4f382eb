"""`videxperts evaluate`: placeholder until its issue lands."""

import click

from pipelines.errors import NotAvailableYet


@click.command("evaluate", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def evaluate() -> None:
    """Not available yet in this version of videxperts."""
    raise NotAvailableYet("'videxperts evaluate' is not available yet in this version")
