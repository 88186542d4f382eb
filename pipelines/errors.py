"""User-facing errors: raised anywhere, printed by the CLI as one line, never a traceback."""


class UserError(Exception):
    """A problem with what the user asked for (bad config, missing file, unknown expert)."""


class NotAvailableYet(UserError):
    """A subcommand whose implementation has not landed yet."""
