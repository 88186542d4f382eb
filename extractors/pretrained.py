"""Which experts of a profile will run with random weights although the profile expects pretrained ones.

A profile that gives an expert a ``sha256`` slot (the paper profile does, for every CNN
expert) says "put the published checkpoint here"; leaving ``weights: null`` there silently
gives seeded random features. The extract command warns about it loudly before starting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def random_despite_pretrained(profile: dict[str, Any], experts: Sequence[str] | None = None) -> list[str]:
    """Experts (of ``experts``, default all) whose profile entry has a ``sha256`` slot but no ``weights``."""
    chosen = experts or list(profile.get("experts", {}))
    out = []
    for name in chosen:
        cfg = profile.get("experts", {}).get(name) or {}
        if "sha256" in cfg and not cfg.get("weights"):
            out.append(name)
    return out


def random_weights_warning(profile: dict[str, Any], experts: Sequence[str] | None = None) -> str | None:
    """The warning text, or ``None`` when every pretrained slot is filled (or the profile has none)."""
    names = random_despite_pretrained(profile, experts)
    if not names:
        return None
    bar = "!" * 78
    return (f"{bar}\nWARNING: profile {profile.get('name', '?')!r} expects pretrained weights, but "
            f"{', '.join(names)} {'has' if len(names) == 1 else 'have'} weights: null.\n"
            "Their features will come from SEEDED RANDOM networks (recorded as random-init in the store), not "
            "from the\npublished models, so no published number can be reproduced with them. Fill in weights: and "
            "sha256: per\nexpert (docs/EXPERTS.md, 'Published weights'), or use --profile demo for a smoke test.\n"
            f"{bar}")
