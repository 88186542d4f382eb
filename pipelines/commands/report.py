"""`videxperts report`: placeholder until its issue lands."""

import click

from pipelines.errors import NotAvailableYet


@click.command("report", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def report() -> None:
    """Not available yet in this version of videxperts."""
    raise NotAvailableYet("'videxperts report' is not available yet in this version")
