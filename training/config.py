"""Training configs: YAML by name or path, ``base:`` inheritance, and the task that reads them.

Every config names its task (``task: retrieval``, ``captioning``, ``matching``, or a plug-in's
``module:Class``). :func:`load_config` reads the file (a shipped name such as ``demo_ce`` or a
path), merges its ``base:`` chain, and hands the mapping to the task's typed parser. Errors are
one :class:`ConfigError` naming the file and the dotted key.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml

from videxperts.errors import UserError, yaml_problem
from videxperts.resources import config_names, config_path

_REQUIRED = object()
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(UserError):
    """A training config that cannot be used; the message names the file and the key."""


def load_config(path_or_dict: Any, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The task's typed config for a path, a shipped name, a mapping, or an already typed config.

    ``overrides`` are ``--set`` items (``optim.lr=0.005``): dotted keys, YAML-typed values,
    applied in order on the merged mapping and checked like the file itself. An error an
    override causes names that override instead of the file.
    """
    if hasattr(path_or_dict, "to_dict") and hasattr(path_or_dict, "task"):
        if not overrides:
            return path_or_dict
        path_or_dict = path_or_dict.to_dict()
    raw, source = read_raw_config(path_or_dict)
    if not overrides:
        return _parse(raw, source)
    pairs = [parse_override(o) for o in overrides]
    merged = apply_overrides(copy.deepcopy(raw), pairs)
    try:
        return _parse(merged, source)
    except ConfigError as exc:
        _parse(raw, source)  # the file alone fails: its own error is the one to fix first
        raise ConfigError(_blame_override(str(exc), source, overrides, pairs)) from None


def _parse(raw: dict[str, Any], source: str) -> Any:
    from videxperts.training.task import get_task

    task = raw.get("task")
    if task is None:
        raise ConfigError(f"{source}: task: missing required key: add 'task: retrieval' (or captioning, matching) "
                          "at the top of the config")
    if not isinstance(task, str) or not task:
        raise ConfigError(f"{source}: task: expected a task name, got {task!r}")
    return get_task(task, source).parse_config(raw, source)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=1e-3"`` -> (["a", "b"], 0.001): the value is read as YAML (numbers, booleans, lists, null)."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ConfigError(f"--set {text}: expected KEY=VALUE with a dotted key, e.g. --set optim.lr=0.005")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text}: value is not valid YAML ({yaml_problem(exc)})") from None
    if isinstance(parsed, str) and _NUMBER.fullmatch(parsed.strip()):
        parsed = float(parsed)  # YAML 1.1 reads 1e-3 as a string; everyone means the number
    return [p.strip() for p in parts], parsed


def apply_overrides(raw: dict[str, Any], pairs: list[tuple[list[str], Any]]) -> dict[str, Any]:
    """Set each dotted key in ``raw`` (in place; missing mappings are created, the parser judges the keys)."""
    for parts, value in pairs:
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--set {'.'.join(parts)}: {where} is {child!r}, not a mapping")
            node = child
        node[parts[-1]] = value
    return raw


def _blame_override(message: str, source: str, overrides: list[str] | tuple[str, ...],
                    pairs: list[tuple[list[str], Any]]) -> str:
    """Re-label a config error caused by an override: ``--set KEY=VALUE: key: problem``."""
    rest = message[len(source) + 2 :] if message.startswith(f"{source}: ") else message
    bad_key = rest.split(":", 1)[0].strip()
    for text, (parts, _) in zip(overrides, pairs, strict=True):
        key = ".".join(parts)
        if bad_key == key or bad_key.startswith(f"{key}.") or key.startswith(f"{bad_key}."):
            return f"--set {text}: {rest}"
    return f"--set {' '.join(overrides)}: {rest}"


def read_raw_config(path_or_dict: str | Path | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(merged mapping, source name for messages) of a config path, shipped name or mapping."""
    if isinstance(path_or_dict, dict):
        source = "<dict>"
        return _resolve_base(copy.deepcopy(path_or_dict), None, source, ()), source
    path = config_path("train", path_or_dict)
    return _read_yaml(path, ()), str(path)


def _read_yaml(path: Path, chain: tuple[str, ...]) -> dict[str, Any]:
    if str(path.resolve()) in chain:
        raise ConfigError(f"{path}: base: inheritance cycle ({' -> '.join(chain + (str(path),))})")
    if not path.is_file():
        known = ", ".join(config_names("train")) or "none"
        raise ConfigError(f"{path}: training config not found (shipped configs: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return _resolve_base(raw, path, str(path), chain + (str(path.resolve()),))


def _resolve_base(raw: dict[str, Any], path: Path | None, source: str, chain: tuple[str, ...]) -> dict:
    """`base: other.yaml` (relative to this file, or a shipped name) is loaded first and this file merged on top.

    Merging is recursive for mappings; any other value replaces. A `null` value under
    `data.experts` removes that expert (so a derived config can use an expert subset).
    """
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{source}: base: expected a file name, got {base!r}")
    base_path = Path(base) if path is None or Path(base).is_absolute() else path.parent / base
    if not base_path.is_file():
        base_path = config_path("train", base)
    merged = deep_merge(_read_yaml(base_path, chain), raw)
    experts = merged.get("data", {}).get("experts") if isinstance(merged.get("data"), dict) else None
    if isinstance(experts, dict):
        for name in [n for n, v in experts.items() if v is None]:
            del experts[name]
    return merged


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge recursively, anything else replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def flatten(d: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys -> scalars, for MLflow params (lists become comma-joined strings)."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            if not value:
                out[prefix] = None
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)):
            out[prefix] = ",".join(str(v) for v in value)
        else:
            out[prefix] = value

    walk("", d)
    return out


class Parser:
    """Typed reads of a raw mapping; every error names the source and the dotted key.

    Numbers must be finite: NaN and infinity pass every comparison and would surface as a
    failed run minutes later.
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {msg}")

    def section(self, raw: Any, key: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(raw, dict):
            raise self.fail(key, f"expected a mapping, got {type(raw).__name__}")
        for k in raw:
            if k not in allowed:
                raise self.fail(f"{key}.{k}" if key else str(k), f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for k in sorted(required):
            if k not in raw:
                raise self.fail(f"{key}.{k}" if key else str(k), "missing required key")
        return raw

    def int_(self, raw: dict, key: str, name: str, default: Any = _REQUIRED, minimum: int = 1) -> int:
        full = f"{key}.{name}" if key else name
        if name not in raw:
            if default is _REQUIRED:
                raise self.fail(full, "missing required key")
            return default
        v = raw[name]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(full, f"expected an integer, got {v!r}")
        if v < minimum:
            raise self.fail(full, f"must be >= {minimum}, got {v}")
        return v

    def float_(self, raw: dict, key: str, name: str, default: float, minimum: float = 0.0,
               strict: bool = False, maximum: float | None = None) -> float:
        v = raw.get(name, default)
        full = f"{key}.{name}" if key else name
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(full, f"expected a number, got {v!r}")
        if not math.isfinite(v):
            raise self.fail(full, f"must be a finite number, got {v!r}")
        if v < minimum or (strict and v == minimum):
            raise self.fail(full, f"must be {'>' if strict else '>='} {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise self.fail(full, f"must be <= {maximum}, got {v}")
        return float(v)

    def str_(self, raw: dict, key: str, name: str, default: Any = None, choices: tuple = ()) -> Any:
        v = raw.get(name, default)
        full = f"{key}.{name}" if key else name
        if not isinstance(v, str) or not v:
            raise self.fail(full, f"expected a non-empty string, got {v!r}")
        if choices and v not in choices:
            raise self.fail(full, f"unknown value {v!r} (choose from {', '.join(choices)})")
        return v

    def bool_(self, raw: dict, key: str, name: str, default: bool) -> bool:
        v = raw.get(name, default)
        if not isinstance(v, bool):
            raise self.fail(f"{key}.{name}" if key else name, f"expected true or false, got {v!r}")
        return v
