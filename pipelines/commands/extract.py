"""`videxperts extract`: placeholder until its issue lands."""

import click

from pipelines.errors import NotAvailableYet


@click.command("extract", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def extract() -> None:
    """Not available yet in this version of videxperts."""
    raise NotAvailableYet("'videxperts extract' is not available yet in this version")
