"""`videxperts data`: make a synthetic dataset, import real videos, summarise a dataset."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click

from videxperts.errors import UserError


class _DataGroup(click.Group):
    """Unknown subcommands become a one-line user error instead of click's usage block."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # definition order: synth, import, import-anet, import-karpathy, info

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            raise UserError(f"data: no such command {name!r} (choose from {', '.join(self.list_commands(ctx))})")
        return super().resolve_command(ctx, args)


@click.group("data", cls=_DataGroup, context_settings={"help_option_names": ["-h", "--help"]})
def data() -> None:
    """Make or import a video-text dataset: DIR/manifest.parquet + DIR/captions.parquet.

    \b
    Examples:
      videxperts data synth --out work/data --videos 200 --seed 0
      videxperts data import ~/msrvtt/videos --captions ~/msrvtt/train_val_videodatainfo.json \\
          --out work/msrvtt --split-from-captions
      videxperts data info work/data --json
    """


@data.command("synth")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Dataset directory to write.")
@click.option("--videos", type=click.IntRange(min=1), default=None, help="Number of clips.")
@click.option("--images", type=click.IntRange(min=3), default=None,
              help="Make image-caption pairs instead: this many PNG keyframes, 5 captions each (matching).")
@click.option("--test-images", type=click.IntRange(min=1), default=None,
              help="With --images: test (and val) images each [default: images/10]; 5*k gives COCO-like 5 folds of k.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same dataset (byte for byte).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes [default: CPU count].")
@click.option("--min-seconds", type=float, default=None, help="Shortest clip [default: 2, or 10 with --timed].")
@click.option("--max-seconds", type=float, default=None, help="Longest clip [default: 6, or 40 with --timed].")
@click.option("--timed", is_flag=True, help="Dense-captioning clips: 2-5 timed events, one caption each + a paragraph.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def synth_cmd(out: str, videos: int | None, images: int | None, test_images: int | None, seed: int,
              workers: int | None, min_seconds: float | None, max_seconds: float | None, timed: bool,
              as_json: bool) -> None:
    """Generate a deterministic synthetic video-text dataset of real H.264/AAC clips.

    Each clip shows a scene, moving coloured shapes, a printed word and sometimes an astronaut's
    face, with a spoken word over a tone or noise (10% of clips have no audio track); 5-7
    captions per clip describe exactly that. Re-running reuses complete clips.

    With --timed (dense captioning), each clip holds 2-5 events, each only in its own interval
    (a shape enters and crosses, a word appears, a voice speaks, a sound plays); every event has
    a caption with start/end seconds and clause boundaries, every video a paragraph caption:

    \b
      videxperts data synth --timed --out work/dense --videos 3 --max-seconds 12

    With --images N: N still keyframes of such clips (PNG) with exactly 5 captions each about
    what the picture shows, for image-text matching, e.g.
    videxperts data synth --out work/images --images 60 --test-images 10
    """
    from videxperts.pipelines.synth import synthesize

    if (videos is None) == (images is None):
        raise UserError("data synth: give either --videos N (video clips) or --images N (image-caption pairs)")
    if images is not None:
        if timed:
            raise UserError("data synth: --timed makes video clips; it does not go with --images")
        from videxperts.pipelines.synth.images import synthesize_images

        summary = synthesize_images(out, images, test_images, seed)
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        else:
            click.echo(f"{summary['images']} images in {summary['out']}, {summary['captions']} captions, "
                       f"splits {summary['splits']}, {summary['elapsed_s']} s")
        return
    if test_images is not None:
        raise UserError("data synth: --test-images goes with --images")

    lo, hi = (10.0, 40.0) if timed else (2.0, 6.0)
    if min_seconds is None:
        min_seconds = lo if max_seconds is None else min(lo, max_seconds)
    if max_seconds is None:
        max_seconds = max(hi, min_seconds)
    summary = synthesize(out, videos, seed=seed, workers=workers, min_seconds=min_seconds, max_seconds=max_seconds,
                         timed=timed)  # fmt: skip
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{summary['videos']} clips in {summary['out']} ({summary['generated']} generated, {summary['reused']} reused), "
            f"{summary['captions']} captions, splits {summary['splits']}, {summary['elapsed_s']} s"
        )


@data.command("import")
@click.argument("folder", type=click.Path())
@click.option("--captions", "captions", required=True, type=click.Path(), help="CSV (video_id,caption[,split]) or MSR-VTT JSON.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Dataset directory to write.")
@click.option("--split-from-captions", is_flag=True, help="Take splits from the captions file (else a 70/15/15 hash of the id).")
@click.option("--link", type=click.Choice(["symlink", "copy", "relative"]), default="symlink", show_default=True,
              help="How videos outside --out are referenced (relative: '../' paths, readers need VIDEXPERTS_ALLOW_OUTSIDE_PATHS=1).")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel probes [default: CPU count].")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Seconds allowed per probe.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def import_cmd(folder: str, captions: str, out: str, split_from_captions: bool, link: str,
               workers: int | None, timeout_s: float, as_json: bool) -> None:  # fmt: skip
    """Import FOLDER of real videos with their captions; unreadable files go to DIR/import_report.parquet."""
    from videxperts.pipelines.data_import import import_dataset

    if not Path(folder).exists():
        raise UserError(f"{folder}: no such folder")

    def show(p: dict[str, str]) -> None:
        from tqdm import tqdm

        tqdm.write(f"videxperts: skipped {p['file'] or p['video_id']}: {p['problem']}: {p['reason']}", file=sys.stderr)

    summary = import_dataset(folder, captions, out, split_from_captions=split_from_captions, link=link,
                             workers=workers, timeout_s=timeout_s, on_problem=show)  # fmt: skip
    from videxperts.training.protocol import split_count_warnings

    summary["warnings"] = split_count_warnings(summary["splits"])  # a 0-video split is never silent
    for w in summary["warnings"]:
        click.echo(f"videxperts: warning: {w}", err=True)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        n_prob = sum(summary["problems"].values())
        click.echo(
            f"{summary['videos']} videos, {summary['captions']} captions in {summary['out']}, splits {summary['splits']}; "
            f"{n_prob} problem(s) listed in {os.path.join(summary['out'], 'import_report.parquet')}"
        )


@data.command("import-anet")
@click.argument("annotations", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Dataset directory to write.")
@click.option("--videos", type=click.Path(), default=None, help="Folder of the downloaded videos (<video_id>.mp4, ...).")
@click.option("--features", type=click.Path(), default=None,
              help="Folder of BMT I3D features (<video_id>_rgb.npy): those videos count as available.")  # fmt: skip
@click.option("--link", type=click.Choice(["symlink", "copy", "relative"]), default="symlink", show_default=True,
              help="How videos outside --out are referenced.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Parallel probes [default: CPU count].")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Seconds allowed per probe.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def import_anet_cmd(annotations: tuple[str, ...], out: str, videos: str | None, features: str | None, link: str,
                    workers: int | None, timeout_s: float, as_json: bool) -> None:  # fmt: skip
    """Import ActivityNet Captions JSON (train.json, val_1.json, val_2.json) as timed captions.

    Captions are cleaned as published; videos with neither a readable file under --videos nor
    BMT features under --features are listed (import_report.parquet, missing_videos.txt) and
    left out; DIR/references/<file>_no_missings.json are the evaluator's reference files.

    \b
      videxperts data import-anet train.json val_1.json val_2.json --videos ~/anet/videos --out work/anet
    """
    from videxperts.pipelines.anet_import import import_activitynet

    summary = import_activitynet(list(annotations), out, videos=videos, features=features, link=link,
                                 workers=workers, timeout_s=timeout_s)  # fmt: skip
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{summary['available_videos']} of {summary['annotated_videos']} videos, {summary['captions']} captions in "
            f"{summary['out']}; {summary['missing_videos']} missing (listed in missing_videos.txt)"
        )


def dataset_info(dir_: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts per split, captions per video, durations and a summary of every extra attribute."""
    from videxperts.storage.manifest import MANIFEST_SCHEMA, read_dataset

    manifest, captions = read_dataset(dir_)
    m = manifest.to_pydict()
    per_video = Counter(captions.column("video_id").to_pylist())
    n_caps = [per_video.get(v, 0) for v in m["video_id"]]
    dur = m["duration"]
    splits = {s: {"videos": 0, "captions": 0} for s in ("train", "val", "test")}
    for s, n in zip(m["split"], n_caps, strict=True):
        splits[s]["videos"] += 1
        splits[s]["captions"] += n
    skip = set(MANIFEST_SCHEMA.names) | {"rel_path", "spec_hash", "seed", "face_box", "word_box", "events"}
    attrs: dict[str, Any] = {}
    for name in manifest.column_names:
        if name in skip:
            continue
        values = m[name]
        flat = [x for v in values for x in (v if isinstance(v, list) else [v]) if x is not None]
        if not flat:
            continue
        if all(isinstance(x, bool) for x in flat):
            attrs[name] = {"true": sum(flat), "false": len(flat) - sum(flat)}
        elif all(isinstance(x, int | float) for x in flat):
            attrs[name] = {"min": min(flat), "mean": round(sum(flat) / len(flat), 3), "max": max(flat)}
        else:
            attrs[name] = dict(Counter(map(str, flat)).most_common(12))
    return {
        "dir": str(dir_),
        "videos": manifest.num_rows,
        "captions": captions.num_rows,
        "splits": splits,
        "captions_per_video": {"min": min(n_caps), "mean": round(sum(n_caps) / len(n_caps), 2), "max": max(n_caps)},
        "videos_without_captions": sum(n == 0 for n in n_caps),
        "duration_s": {"total": round(sum(dur), 2), "min": min(dur), "mean": round(sum(dur) / len(dur), 3), "max": max(dur)},
        "with_audio": sum(m["has_audio"]),
        "resolutions": dict(Counter(f"{w}x{h}" for w, h in zip(m["width"], m["height"], strict=True)).most_common(5)),
        "attributes": attrs,
        **_timed_info(captions),
    }


def _timed_info(captions: Any) -> dict[str, Any]:
    """Event captions (``start``/``end``): how many, and their lengths in seconds."""
    if "start" not in captions.column_names:
        return {}
    spans = [e - s for s, e in zip(captions.column("start").to_pylist(), captions.column("end").to_pylist(), strict=True)
             if s is not None]  # fmt: skip
    if not spans:
        return {"timed_captions": 0}
    return {"timed_captions": len(spans),
            "event_s": {"min": round(min(spans), 3), "mean": round(sum(spans) / len(spans), 3), "max": round(max(spans), 3)}}


@data.command("import-karpathy")
@click.argument("json_file", metavar="KARPATHY_JSON", type=click.Path(dir_okay=False))
@click.option("--images", "images_root", required=True, type=click.Path(file_okay=False),
              help="Folder the JSON's filepath/filename entries are relative to.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset dir to write.")
@click.option("--restval", type=click.Choice(["train", "val", "skip"]), default="train", show_default=True,
              help="Where COCO's restval images go (SCAN trains on them).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images (trials).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def import_karpathy_cmd(json_file: str, images_root: str, out: str, restval: str, limit: int | None,
                        as_json: bool) -> None:
    """Raw Flickr30K/COCO images + Karpathy-split captions (dataset_flickr30k.json / dataset_coco.json)
    as a dataset: one manifest row per image, its first 5 raw sentences as captions 0..4.

    Example: videxperts data import-karpathy ~/coco/dataset_coco.json --images ~/coco --out work/coco
    """
    from videxperts.pipelines.karpathy_import import import_karpathy

    summary = import_karpathy(json_file, images_root, out, restval=restval, limit=limit)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"{summary['images']} images, {summary['captions']} captions in {summary['out']}, "
                   f"splits {summary['splits']}")


@data.command("info")
@click.argument("dir_", metavar="DIR", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def info_cmd(dir_: str, as_json: bool) -> None:
    """Summarise the dataset in DIR: splits, captions per video, durations, attributes."""
    if not Path(dir_).exists():
        raise UserError(f"{dir_}: no such dataset directory")
    info = dataset_info(dir_)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"dataset {info['dir']}: {info['videos']} videos, {info['captions']} captions")
    for s, c in info["splits"].items():
        click.echo(f"  {s:<5} {c['videos']:>6} videos {c['captions']:>8} captions")
    cpv, d = info["captions_per_video"], info["duration_s"]
    click.echo(f"  captions per video: min {cpv['min']}, mean {cpv['mean']}, max {cpv['max']}")
    click.echo(f"  duration: total {d['total']} s, min {d['min']}, mean {d['mean']}, max {d['max']} s")
    click.echo(f"  with audio: {info['with_audio']} / {info['videos']}; resolutions: {info['resolutions']}")
    if info.get("timed_captions"):
        e = info["event_s"]
        click.echo(f"  timed captions: {info['timed_captions']}, event length min {e['min']}, mean {e['mean']}, max {e['max']} s")
    for name, summary in info["attributes"].items():
        click.echo(f"  {name}: {summary}")
