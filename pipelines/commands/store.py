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
    groups = data.get("failures", [])
    if groups:
        click.echo(f"failures by error class and expert ({sum(g['count'] for g in groups)} in all):")
    for g in groups:
        click.echo(f"  {g['state']:<11} {g['error_class'] or '(no class)':<24} {g['expert']:<10} x{g['count']:<5} "
                   f"e.g. {', '.join(g['videos'])}: {g['messages'][0][:160]}")


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


@store.command("import-bmt")
@click.argument("url", metavar="STORE")
@click.option("--i3d", "i3d_dir", type=click.Path(), default=None,
              help="Folder of <vid>_rgb.npy and <vid>_flow.npy (BMT's i3d_25fps_stack64step64_2stream_npy).")  # fmt: skip
@click.option("--vggish", "vggish_dir", type=click.Path(), default=None, help="Folder of <vid>.npy (BMT's vggish_npy).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@_STORAGE_OPTION
def import_bmt(url: str, i3d_dir: str | None, vggish_dir: str | None, as_json: bool, storage_options: tuple[str, ...]) -> None:
    """Import the published BMT feature files as experts i3d (rgb + flow summed) and audio.

    Streams one video at a time into STORE (created when missing); a missing or malformed file
    is recorded as failed for that video and expert, never fatal. Then train without extracting:

    \b
      videxperts store import-bmt work/anet.zarr --i3d data/i3d_25fps_stack64step64_2stream_npy \\
          --vggish data/vggish_npy
    """
    from videxperts.storage.bmt_import import import_bmt_features

    out = import_bmt_features(url, i3d_dir, vggish_dir, storage_options=_options(storage_options))
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    parts = ", ".join(f"{e}: {out['done'][e]} done, {out['failed'][e]} failed" for e in out["experts"])
    click.echo(f"imported {out['videos']} videos into {url} ({parts})")
    for e, lines in out["failures"].items():
        for line in lines:
            click.echo(f"videxperts: {e}: {line}", err=True)


@store.command("import-precomp")
@click.argument("src", metavar="PRECOMP_DIR", type=click.Path(file_okay=False))
@click.argument("url", metavar="STORE")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False),
              help="Dataset dir to write manifest.parquet and captions.parquet into (merged with earlier splits).")
@click.option("--dataset", type=click.Choice(["f30k", "coco"]), required=True, help="Which precomp set (ids and provenance).")
@click.option("--splits", default=None, help="Comma-separated SCAN splits (default f30k: train,dev,test; "
              "coco: train,dev,testall).")
@click.option("--expert", default="regions", show_default=True, help="Store expert that receives the region rows.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True,
              help="Storage dtype (recorded in the expert's provenance); float16 halves the store.")
@click.option("--chunk", type=int, default=256, show_default=True, help="Images read and committed at a time.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document.")
@_STORAGE_OPTION
def import_precomp(src: str, url: str, data_dir: str, dataset: str, splits: str | None, expert: str, dtype: str,
                   chunk: int, as_json: bool, storage_options: tuple[str, ...]) -> None:
    """Import SCAN precomp features ({split}_ims.npy, N x 36 x 2048) and captions ({split}_caps.txt,
    5 lines per image) into STORE, streamed in chunks (bounded memory); vocabulary pickles are never read.

    Example: videxperts store import-precomp data/f30k_precomp work/f30k.zarr --data work/f30k --dataset f30k
    """
    from videxperts.storage.precomp import import_precomp as run

    def progress(split: str, done: int, total: int) -> None:
        if not as_json:
            click.echo(f"\r{split}: {done}/{total} images", nl=done >= total, err=True)

    out = run(src, url, data_dir, dataset=dataset, splits=splits.split(",") if splits else None, expert=expert,
              dtype=dtype, chunk=chunk, storage_options=_options(storage_options), progress=progress)
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    for s, v in out["splits"].items():
        click.echo(f"{s}: {v['images']} images, {v['captions']} captions -> split {v['dataset_split']}")
    click.echo(f"imported into {url} (expert {out['expert']}, {out['regions']} x {out['dim']}, {out['dtype']}); "
               f"captions in {out['data']}")


@store.command("export")
@click.argument("url", metavar="STORE")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "fmt", required=True, type=click.Choice(["npz", "parquet", "webdataset"]),
              help="npz: one features.npz (per expert: features, timestamps, offsets; video_ids); parquet: one "
              "<expert>.parquet (video_id, row, t, feature); webdataset: tar shards, one sample per video.")
@click.option("--experts", default=None, help="Comma-separated experts (default: all).")
@click.option("--shard-size", default=1000, show_default=True, type=click.IntRange(1),
              help="Videos per WebDataset tar shard.")
@click.option("--json", "as_json", is_flag=True, help="Print {format, files, rows, videos} as JSON.")
@_STORAGE_OPTION
def export(url: str, out: str, fmt: str, experts: str | None, shard_size: int, as_json: bool,
           storage_options: tuple[str, ...]) -> None:
    """Write the expert features of STORE under OUT for other tools (the store is only read).

    \b
    Example:
      videxperts store export work/store.zarr work/export --format webdataset --experts scene,ocr
    """
    from videxperts.storage.export import export_store

    names = [e.strip() for e in experts.split(",") if e.strip()] if experts else None
    res = export_store(url, out, fmt, names, shard_size, _options(storage_options))
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    rows = ", ".join(f"{e} {n}" for e, n in res["rows"].items())
    click.echo(f"exported {res['videos']} videos ({rows} rows) as {fmt}: {len(res['files'])} files under {out}")


@store.command("import", short_help="Import features computed elsewhere (npy, npz, HDF5, CE pickles).")
@click.argument("url", metavar="STORE")
@click.argument("source", type=click.Path(exists=True))
@click.option("--expert", required=True, help="Expert name the features are stored under (e.g. rgb, i3d).")
@click.option("--ids", "ids_file", default=None, type=click.Path(dir_okay=False),
              help="Video ids, one per line, for a stacked array without its own ids.")
@click.option("--key", default=None, help="Name of the stacked array/dataset in an .npz/.h5 (default: features).")
@click.option("--weights", default=None, help="Weights identity to record (default: imported:sha256:<file>).")
@click.option("--dtype", default="float32", show_default=True, type=click.Choice(["float32", "float16"]))
@click.option("--json", "as_json", is_flag=True, help="Print {expert, dim, videos, rows, missing} as JSON.")
@_STORAGE_OPTION
def import_(url: str, source: str, expert: str, ids_file: str | None, key: str | None, weights: str | None,
            dtype: str, as_json: bool, storage_options: tuple[str, ...]) -> None:
    """Import features computed elsewhere as expert --expert of STORE (created if absent).

    SOURCE: a folder of <video_id>.npy, an .npz or .h5 (one array per video, or stacked
    `features` with `ids` or --ids), a stacked .npy with --ids, or a collaborative-experts
    release pickle (.pkl; read with a restricted unpickler: numpy arrays, lists and dicts only).
    All-NaN rows mean "video lacks this expert".

    \b
    Example:
      videxperts store import work/ce.zarr aggregated_senet154/senet154-avg.pickle --expert rgb
    """
    from videxperts.storage.import_arrays import import_features

    res = import_features(url, expert, source, ids_file=ids_file, key=key, weights=weights, dtype=dtype,
                          storage_options=_options(storage_options))
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    click.echo(f"imported {res['videos']} videos ({res['rows']} rows, {res['missing']} without features) as "
               f"{res['dim']}-dim expert {expert!r} into {url}")
