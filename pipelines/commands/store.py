"""`videxperts store`: inspect, verify and compact a feature store (path or fsspec URL)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from videxperts.errors import UserError

_STORAGE_OPTION = click.option(
    "--storage-option",
    "-o",
    "storage_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec option for remote stores, e.g. -o endpoint_url=http://127.0.0.1:9000 (repeatable).",
)


def _options(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--storage-option {pair!r} is not KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)  # numbers, booleans, nested dicts
        except ValueError:
            out[key] = value
    return out


def _open(url: str, mode: str, pairs: tuple[str, ...]):  # noqa: ANN202 - lazy import keeps --help fast
    from videxperts.storage.store import FeatureStore

    return FeatureStore.open(url, mode=mode, storage_options=_options(pairs))


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


@click.group("store")
def store() -> None:
    """Inspect, verify and compact a feature store (local path, s3://, gs://, memory://)."""


@store.command("info")
@click.argument("url", metavar="STORE")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@_STORAGE_OPTION
def info(url: str, as_json: bool, storage_options: tuple[str, ...]) -> None:
    """Experts, dims, videos done/failed/quarantined with reasons, provenance, size."""
    data = _open(url, "r", storage_options).info()
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    click.echo(f"store   {data['url']}")
    click.echo(f"videos  {data['videos']}    size {_size(data['size_bytes'])}    "
               f"uncompacted commits {data['commits_pending_compaction']}    shards {data['shards']}")
    header = f"{'expert':<12}{'dim':>6}{'dtype':>9}{'done':>8}{'empty':>7}{'failed':>8}{'quar.':>7}  weights / version"
    click.echo(header)
    click.echo("-" * len(header))
    for name, e in data["experts"].items():
        p = e["provenance"]
        click.echo(f"{name:<12}{e['dim']:>6}{e['dtype']:>9}{e['done']:>8}{e['empty']:>7}{e['failed']:>8}"
                   f"{e['quarantined']:>7}  {p.get('weights')} / v{p.get('extractor_version')}")
    for name, e in data["text_encoders"].items():
        click.echo(f"text {name}: dim {e['dim']}, {e['captions']} captions of {e['videos']} videos")
    for name, e in data["experts"].items():
        for kind in ("failure_reasons", "quarantine_reasons"):
            for r in e[kind]:
                label = "failed" if kind == "failure_reasons" else "quarantined"
                click.echo(f"  {name} {label} x{r['count']}: {r['error_class'] or ''} {r['message']} "
                           f"(e.g. {', '.join(r['videos'])})")


@store.command("verify")
@click.argument("url", metavar="STORE")
@click.option("--json", "as_json", is_flag=True, help="Print {ok, problems} as JSON.")
@_STORAGE_OPTION
def verify(url: str, as_json: bool, storage_options: tuple[str, ...]) -> None:
    """Check the index against the arrays, dims and NaN/inf; exit code 1 when damaged."""
    problems = _open(url, "r", storage_options).verify()
    if as_json:
        click.echo(json.dumps({"ok": not problems, "problems": problems}, indent=2))
    elif problems:
        for p in problems:
            click.echo(f"DAMAGED: {p}", err=True)
    else:
        click.echo(f"ok: {url} is consistent")
    if problems:
        sys.exit(1)


@store.command("compact")
@click.argument("url", metavar="STORE")
@click.option("--prune-unsealed", is_flag=True,
              help="Also delete shards of writers that never closed (only when no writer is running).")
@_STORAGE_OPTION
def compact(url: str, prune_unsealed: bool, storage_options: tuple[str, ...]) -> None:
    """Merge all shards and commit records into one base (crash-safe: new base, then switch)."""
    _open(url, "r", storage_options)  # must exist: mode "a" alone would create an empty store
    out = _open(url, "a", storage_options).compact(prune_unsealed=prune_unsealed)
    click.echo(f"compacted {url}: {out['records']} records, {out['rows']} rows into base {out['base']}; "
               f"folded {out['commits_folded']} commit records, removed {out['shards_removed']} shards")
