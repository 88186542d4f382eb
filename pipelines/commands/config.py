"""`videxperts config`: list, show and copy the shipped configs (extraction profiles, training configs).

The configs ship inside the package, so a researcher never needs the git checkout: ``config
list`` names them with one line each, ``config cp NAME DEST`` copies one to edit, ``config
show NAME`` prints the merged result (``base:`` chain and ``--set`` overrides applied).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from videxperts.errors import UserError

_KINDS = ("extract", "train")
_BASE_LINE = re.compile(r"^(base:\s*)(['\"]?)([^'\"#\s]+)\2(\s*(#.*)?)$", re.MULTILINE)


def _find(name: str, kind: str | None) -> tuple[str, Path]:
    """(kind, path) of the shipped config ``name``; one line naming the known ones when it is not shipped."""
    from videxperts.resources import config_names, config_path

    stem = name[:-5] if name.endswith(".yaml") else name
    kinds = (kind,) if kind else _KINDS
    hits = [(k, config_path(k, stem)) for k in kinds if stem in config_names(k)]
    if not hits:
        known = "; ".join(f"{k}: {', '.join(config_names(k)) or 'none'}" for k in kinds)
        raise UserError(f"{name}: no shipped config of that name ({known})")
    if len(hits) > 1:
        raise UserError(f"{name}: both an extraction profile and a training config; pass --kind extract or --kind train")
    return hits[0]


def _portable_text(kind: str, src: Path) -> str:
    """The config's text with a relative ``base:`` rewritten to the shipped name, so the copy loads anywhere."""
    from videxperts.resources import configs_root

    root = (configs_root() / kind).resolve()

    def rewrite(m: re.Match[str]) -> str:
        target = (src.parent / m.group(3)).resolve()
        if not target.is_file() or root not in target.parents:
            return m.group(0)
        name = target.relative_to(root).with_suffix("").as_posix()
        return f"{m.group(1)}{name}{m.group(4) or ''}"

    return _BASE_LINE.sub(rewrite, src.read_text())


@click.group("config")
def config() -> None:
    """List, show and copy the shipped configs (extraction profiles and training configs).

    \b
    Example:
      videxperts config list
      videxperts config cp demo_ce my_ce.yaml
      videxperts train --config my_ce.yaml --store work/store.zarr --set optim.lr=0.005
    """


@config.command("list")
@click.option("--kind", type=click.Choice(_KINDS), default=None, help="Only extraction profiles or training configs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: {kind: [{name, description, path}]}.")
def list_(kind: str | None, as_json: bool) -> None:
    """Every shipped config by kind, with a one-line description.

    \b
    Example:
      videxperts config list --kind train
    """
    from videxperts.resources import config_description, config_kinds, config_names, config_path

    out = {k: [{"name": n, "description": config_description(k, n), "path": str(config_path(k, n))}
               for n in config_names(k)] for k in ((kind,) if kind else _KINDS)}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    for k, rows in out.items():
        click.echo(f"{config_kinds()[k]}s ({k}):")
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            click.echo(f"  {r['name']:<{width}}  {r['description']}")


@config.command("cp")
@click.argument("name")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(_KINDS), default=None, help="Needed only when NAME is both kinds.")
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
def cp(name: str, dest: Path, kind: str | None, force: bool) -> None:
    """Copy the shipped config NAME to DEST (a file, or a folder to copy into) to edit it.

    A relative `base:` becomes the shipped name, so the copy still inherits from the shipped base.

    \b
    Example:
      videxperts config cp demo_ce my_ce.yaml
    """
    kind, src = _find(name, kind)
    target = dest / src.name if dest.is_dir() else dest
    if target.exists() and not force:
        raise UserError(f"{target}: already exists (pass --force to overwrite)")
    if not target.parent.is_dir():
        raise UserError(f"{target.parent}: no such folder")
    target.write_text(_portable_text(kind, src))
    click.echo(f"copied {kind} config {name} to {target}")


@config.command("show")
@click.argument("name")
@click.option("--kind", type=click.Choice(_KINDS), default=None, help="Needed only when NAME is both kinds.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Dotted override, YAML-typed (training configs; repeatable), as on `train`.")
def show(name: str, kind: str | None, overrides: tuple[str, ...]) -> None:
    """Print a config as it will be used: a training config merged over its `base:` chain, checked,
    with the --set overrides applied; a profile as shipped. NAME may also be a path.

    \b
    Example:
      videxperts config show msrvtt_moee --set train.epochs=3
    """
    import yaml

    if Path(name).is_file():
        kind, src = kind or "train", Path(name)
    else:
        kind, src = _find(name, kind)
    if kind == "extract":
        if overrides:
            raise UserError("--set applies to training configs only")
        click.echo(src.read_text(), nl=False)
        return
    from videxperts.training.config import load_config

    cfg = load_config(str(src), overrides=list(overrides))
    click.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False), nl=False)
