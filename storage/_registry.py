"""The expert and text-encoder registry: one Zarr group's attributes per name.

``experts/<name>/zarr.json`` (and ``text/<name>/zarr.json``) hold ``dim``, ``dtype``,
``provenance`` and an ``epoch``. Every worker calls ``ensure_expert`` with the same
provenance, so the epoch is a pure function of the identity fields and the number of
times the name was dropped: racing workers write byte-identical metadata and never need a
lock. Dropping writes a tombstone; records of an old epoch are ignored from then on.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from videxperts.errors import UserError

# Provenance keys that say where or how fast features were made, never what they are: every
# other key (backbone, weights, sampling, extractor_version, dtype, crop, PCA, thresholds,
# engine versions, the resolved ``settings`` ...) is part of the identity, whatever the expert
# reports, so a new setting is covered without a change here.
NON_IDENTITY_KEYS = frozenset({"device", "batch_size", "replicas", "num_threads", "threads", "node", "node_id",
                               "host", "hostname", "pid", "workers"})
# Keys a store registered before the full identity may lack; a missing one is not a difference.
LEGACY_OPTIONAL_KEYS = frozenset({"settings"})
REQUIRED_KEYS = ("weights", "extractor_version")
DTYPES = ("float16", "float32")
DEFAULT_DTYPE = "float16"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
KIND_DIR = {"expert": "experts", "text": "text"}


class StoreError(UserError):
    """The store is missing, damaged, or asked for something it cannot do."""


class StoreDamaged(StoreError):
    """A file of the store cannot be read (truncated, deleted): one line naming it and the way out."""


class StoreIOError(StoreError):
    """Writing to the store failed (no space, read-only or vanished filesystem, permission,
    a refused PUT): one line naming the store and the OS error. What was committed before
    stays readable; a re-run after the cause is removed completes the job."""


def io_error(url: str, what: str, exc: BaseException) -> StoreIOError:
    """The one-line error for an I/O failure while ``what`` (e.g. "committing") in ``url``."""
    from videxperts.errors import first_line

    cause = exc
    while cause.__cause__ is not None and not isinstance(cause, OSError):  # zarr/fsspec wrap OSErrors
        cause = cause.__cause__
    return StoreIOError(f"cannot write to the feature store {url} while {what}: "
                        f"{type(cause).__name__}: {first_line(cause, 300)}")


class ProvenanceMismatchError(StoreError):
    """An expert is already in the store with a different model, weights, sampling or version."""


def canonical(obj: Any) -> Any:
    """JSON round trip with sorted keys: what is stored and compared."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise StoreError(f"invalid {what} name {name!r}: use letters, digits, '_', '.', '-'")


def group_json(attributes: dict[str, Any]) -> bytes:
    """A Zarr v3 group document carrying ``attributes``."""
    doc = {"zarr_format": 3, "node_type": "group", "attributes": attributes}
    return json.dumps(doc, sort_keys=True, indent=1).encode()


def make_entry(name: str, dim: int, provenance: dict[str, Any], drops: int) -> dict[str, Any]:
    """The registry attributes for a (re)registered expert or encoder."""
    prov = canonical(dict(provenance))
    missing = [k for k in REQUIRED_KEYS if k not in prov]
    if missing:
        raise StoreError(f"provenance of {name!r} lacks {', '.join(missing)}")
    prov.setdefault("dtype", DEFAULT_DTYPE)
    if prov["dtype"] not in DTYPES:
        raise StoreError(f"provenance dtype of {name!r} is {prov['dtype']!r}; the store keeps float16 or float32")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise StoreError(f"dim of {name!r} must be a positive int, got {dim!r}")
    ident = identity(prov) | {"dim": dim}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return {"dim": dim, "dtype": prov["dtype"], "provenance": prov, "epoch": f"{digest}-{drops}",
            "drops": drops, "identity": digest}


def identity(provenance: dict[str, Any]) -> dict[str, Any]:
    """The part of a (canonical) provenance that determines the features' values."""
    return {k: v for k, v in provenance.items() if k not in NON_IDENTITY_KEYS}


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys, so a difference names the setting (``settings.final_relu``)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def differences(old: dict[str, Any], dim: int, provenance: dict[str, Any]) -> list[str]:
    """Human-readable list of identity fields that differ between stored and asked-for."""
    prov = canonical(dict(provenance))
    prov.setdefault("dtype", DEFAULT_DTYPE)
    diffs = []
    if old["dim"] != dim:
        diffs.append(f"dim: store has {old['dim']}, asked {dim}")
    stored = identity(old["provenance"])
    asked = identity(prov)
    for k in LEGACY_OPTIONAL_KEYS:
        if k not in stored:
            asked.pop(k, None)
    a_flat, b_flat = _flat(stored), _flat(asked)
    for k in sorted(set(a_flat) | set(b_flat)):
        a, b = a_flat.get(k), b_flat.get(k)
        if a != b:
            diffs.append(f"{k}: store has {json.dumps(a)}, asked {json.dumps(b)}")
    return diffs
