"""`videxperts data`: placeholder until its issue lands."""

import click

from pipelines.errors import NotAvailableYet


@click.command("data", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def data() -> None:
    """Not available yet in this version of videxperts."""
    raise NotAvailableYet("'videxperts data' is not available yet in this version")
