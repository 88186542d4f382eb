"""Shipped configs by name: extraction profiles and training configs are package data.

``videxperts.configs`` holds ``extract/<name>.yaml`` and ``train/<name>.yaml`` (subfolders give
names such as ``importance/ce_no_audio``). Every option that takes a config accepts a name or a
path; ``$VIDEXPERTS_CONFIGS`` points at another folder with the same layout.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

CONFIGS_ENV = "VIDEXPERTS_CONFIGS"


def configs_root() -> Path:
    """The folder with ``extract/`` and ``train/``: ``$VIDEXPERTS_CONFIGS`` or the installed package data."""
    env = os.environ.get(CONFIGS_ENV)
    return Path(env) if env else Path(str(files("videxperts.configs")))


def config_names(kind: str) -> list[str]:
    """Names of the shipped configs of ``kind`` ("extract" or "train"), sorted."""
    root = configs_root() / kind
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def config_path(kind: str, name_or_path: str | os.PathLike[str]) -> Path:
    """An existing file is taken as it is; otherwise ``name`` is looked up among the shipped configs.

    The returned path may not exist: callers say "not found" with the known names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    candidate = configs_root() / kind / f"{name}.yaml"
    if candidate.is_file() or not str(name_or_path).endswith((".yaml", ".yml")):
        return candidate  # a bare name: where a shipped config of that name would be
    return path


def config_kinds() -> dict[str, str]:
    """The kinds of shipped configs and what each is for (the folders under :func:`configs_root`)."""
    return {"extract": "extraction profile", "train": "training config"}


def config_description(kind: str, name: str) -> str:
    """One line saying what a shipped config is: its ``description:`` key, else its first comment line."""
    import yaml

    path = config_path(kind, name)
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raw = None
    if isinstance(raw, dict) and isinstance(raw.get("description"), str) and raw["description"].strip():
        return raw["description"].strip().splitlines()[0]
    block: list[str] = []  # the leading comment paragraph; its first sentence is the description
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#") or not stripped.lstrip("#").strip():
            break
        block.append(stripped.lstrip("#").strip())
    joined = " ".join(block)
    end = joined.find(". ")
    return joined if end < 0 else joined[: end + 1]
