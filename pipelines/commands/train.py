"""`videxperts train`: placeholder until its issue lands."""

import click

from pipelines.errors import NotAvailableYet


@click.command("train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def train() -> None:
    """Not available yet in this version of videxperts."""
    raise NotAvailableYet("'videxperts train' is not available yet in this version")
