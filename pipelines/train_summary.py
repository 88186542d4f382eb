"""The last lines of ``videxperts train``: what was scored, protocol warnings, and where to look next."""

from __future__ import annotations

import shlex
from typing import Any

from videxperts.training.protocol import protocol_warnings


def closing_lines(summary: dict[str, Any], experiment: str | None, work_dir: str) -> list[str]:
    """Counts of the scored splits, warnings on trivial metrics, then the experiment and the exact report command."""
    lines = []
    first = next(iter(summary.get("seeds", {}).values()), {})
    counts = first.get("counts") or {}
    for split in ("val", "test"):
        if counts.get(split):
            lines.append(f"{split}: " + ", ".join(f"{v} {k}" for k, v in counts[split].items()))
    metrics = list(first.get("test", {}))
    lines += [f"warning: {w}" for w in protocol_warnings(counts, metrics)]
    name = experiment or summary.get("experiment") or "videxperts"
    lines.append(f"experiment {name!r}; the table: videxperts report --experiment {shlex.quote(name)} "
                 f"--work-dir {shlex.quote(str(work_dir))}")
    return lines
