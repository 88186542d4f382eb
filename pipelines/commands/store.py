"""`videxperts store`: placeholder until its issue lands."""

import click

from pipelines.errors import NotAvailableYet


@click.command("store", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def store() -> None:
    """Not available yet in this version of videxperts."""
    raise NotAvailableYet("'videxperts store' is not available yet in this version")
