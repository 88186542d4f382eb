"""`videxperts submit`: placeholder until its issue lands."""

import click

from pipelines.errors import NotAvailableYet


@click.command("submit", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def submit() -> None:
    """Not available yet in this version of videxperts."""
    raise NotAvailableYet("'videxperts submit' is not available yet in this version")
