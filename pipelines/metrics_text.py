"""Flat metric names (``t2v/R1``, ``caption/METEOR``) as lines a person reads, grouped by prefix."""

from __future__ import annotations

from collections.abc import Mapping


def grouped_lines(metrics: Mapping[str, float], digits: int = 2, indent: str = "  ") -> list[str]:
    """One line per prefix: ``t2v: R1 12.50  R5 40.00 ...`` (names without a prefix share one line)."""
    groups: dict[str, list[str]] = {}
    for name, value in metrics.items():
        prefix, _, short = name.rpartition("/")
        groups.setdefault(prefix, []).append(f"{short} {value:.{digits}f}")
    return [f"{indent}{prefix + ': ' if prefix else ''}{'  '.join(items)}" for prefix, items in groups.items()]
