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
@click.option("--json", "as_json", is_flag=True, help="Print {ok, problems, damage} as JSON.")
@_STORAGE_OPTION
def verify(url: str, as_json: bool, storage_options: tuple[str, ...]) -> None:
    """Check every file, array and chunk the records point at; list each damaged object with the
    videos it affects; exit code 1 when damaged (then see 'store repair')."""
    from videxperts.storage.store import Damage, StoreError

    try:
        damage = _open(url, "r", storage_options).verify_report()
    except StoreError as exc:  # the root itself is unreadable: that is the report
        damage = [Damage(str(exc).split(" of the feature store", 1)[0], str(exc))]
    problems = [d.text() for d in damage]
    if as_json:
        click.echo(json.dumps({"ok": not problems, "problems": problems,
                               "damage": [d.to_dict() for d in damage]}, indent=2))
    elif problems:
        for p in problems:
            click.echo(f"DAMAGED: {p}", err=True)
        click.echo(f"run 'videxperts store repair {url}' to move the damaged objects aside and mark "
                   "their videos for the next extract", err=True)
    else:
        click.echo(f"ok: {url} is consistent")
    if problems:
        sys.exit(1)


@store.command("repair")
@click.argument("url", metavar="STORE")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as one JSON document.")
@_STORAGE_OPTION
def repair(url: str, as_json: bool, storage_options: tuple[str, ...]) -> None:
    """Move unreadable records, registry entries and metadata aside (under damaged/) and mark the
    (video, expert) pairs whose rows are unreadable as failed, so the next extract redoes them.
    Run it when no job writes to the store."""
    from videxperts.storage.repair import repair as do_repair

    out = do_repair(url, _options(storage_options))
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for d in out["damage"]:
        click.echo(f"damaged: {d['object']}: {d['problem']}")
    for m in out["moved_aside"]:
        click.echo(f"moved aside: {m}")
    for r in out["rewritten"]:
        click.echo(f"rewritten: {r}")
    click.echo(f"repaired {url}: {len(out['moved_aside'])} objects moved aside, "
               f"{out['pairs_marked_pending']} pairs marked for the next extract")


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
