"""`videxperts ui`: placeholder until its issue lands."""

import click

from pipelines.errors import NotAvailableYet


@click.command("ui", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def ui() -> None:
    """Not available yet in this version of videxperts."""
    raise NotAvailableYet("'videxperts ui' is not available yet in this version")
