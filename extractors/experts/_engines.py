"""Picking a pluggable engine (OCR, ASR) by name from a profile entry."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def build_engine(kind: str, engines: dict[str, type[T]], name: str, cfg: dict[str, Any],
                 error: type[Exception]) -> T:
    """``engines[name](**cfg)``; an unknown name or option is an ``error`` naming both, not ignored."""
    if name not in engines:
        raise error(f"{kind}: unknown engine {name!r} (choose {' or '.join(engines)})")
    try:
        return engines[name](**cfg)
    except TypeError as e:
        raise error(f"{kind}: bad engine_options for {name}: {e}") from e
