"""User-facing errors: raised anywhere, printed by the CLI as one line, never a traceback."""


class UserError(Exception):
    """A problem with what the user asked for (bad config, missing file, unknown expert)."""


class NotAvailableYet(UserError):
    """A subcommand whose implementation has not landed yet."""


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error as one line ("line 3, column 7: expected ',' or ']'"): PyYAML's own spans lines."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's first message line (its class name if it has no message), for one-line reports."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text[:limit] if limit else text
