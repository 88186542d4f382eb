"""The expert registry: expert names → classes (imported lazily), and extraction profiles.

A profile (``configs/extract/<name>.yaml``) says which experts run and how each is built:
``experts.<name>`` is passed as keyword arguments to the expert's class. Validation happens
when the profile is loaded, so a typo fails before any video is decoded, with the file and
key named.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import types
import typing
from typing import Any

import yaml

from videxperts.errors import UserError, yaml_problem
from videxperts.extractors.base import Expert
from videxperts.resources import config_names, config_path

EXPERT_CLASSES: dict[str, str] = {
    "scene": "videxperts.extractors.experts.scene:SceneExpert",
    "inst": "videxperts.extractors.experts.inst:InstExpert",
    "i3d": "videxperts.extractors.experts.i3d:I3DExpert",
    "r2p1d": "videxperts.extractors.experts.r2p1d:R2P1DExpert",
    "audio": "videxperts.extractors.experts.audio:VGGishExpert",
    "ocr": "videxperts.extractors.experts.ocr:OCRExpert",
    "face": "videxperts.extractors.experts.face:FaceExpert",
    "speech": "videxperts.extractors.experts.speech:SpeechExpert",
    "regions": "videxperts.extractors.experts.regions:RegionsExpert",
}
TEXT_ENCODERS = ("minilm", "wordvec", "gpt2")
PROFILE_KEYS = {"name", "description", "decoder", "experts", "text_encoders"}
POOL_KEYS = {"replicas"}  # expert settings read by the pipeline (actor pool size), not by the expert
# Settings that change how fast or where features are made, never their values: left out of an
# expert's identity. ``weights``, ``sha256`` and ``seed`` are left out too because the provenance
# carries the weights' identity (content hash, or "random-init:seed=N"); a path may differ
# between machines for the same file. (``device`` matters only through the compute dtype, which
# the provenance of the frame experts records.)
NON_IDENTITY_SETTINGS = frozenset({
    "batch_size", "device", "replicas", "num_threads", "threads", "num_cpus", "num_gpus", "memory_mb",
    "cache_dir", "channels_last", "weights", "sha256", "seed",
})
DECODER_KEYS = {"backend", "window_seconds", "timeout_s", "max_pixels"}
DECODER_BACKENDS = ("decord", "torchcodec", "pyav")


class ProfileError(UserError):
    """A profile file that cannot be read or names unknown experts/keys."""


def available_experts() -> list[str]:
    """Every registered expert name, sorted (the processing order)."""
    return sorted(EXPERT_CLASSES)


def available_profiles() -> list[str]:
    return config_names("extract")


def expert_class(name: str) -> type[Expert]:
    """Import and return the class for ``name`` (only then is its module imported)."""
    if name not in EXPERT_CLASSES:
        raise UserError(f"unknown expert {name!r} (available: {', '.join(available_experts())})")
    module, _, attr = EXPERT_CLASSES[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise UserError(f"expert {name!r} is not available in this installation ({e})") from e


def load_profile(name_or_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a profile; a bare name means ``configs/extract/<name>.yaml``."""
    path = config_path("extract", name_or_path)
    if not path.is_file():
        known = ", ".join(available_profiles()) or "none"
        raise ProfileError(f"{path}: extraction profile not found (known profiles: {known})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML ({yaml_problem(e)})") from None
    validate_profile(data, str(path))
    data.setdefault("name", path.stem)
    data.setdefault("decoder", {})
    data.setdefault("text_encoders", {})
    data["source"] = str(path)
    return data


def validate_profile(data: Any, source: str = "profile") -> None:
    """Check the profile's shape, expert names and every expert's keys against its constructor."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile must be a mapping, got {type(data).__name__}")
    _unknown(source, "", data, PROFILE_KEYS)
    experts = data.get("experts")
    if not isinstance(experts, dict) or not experts:
        raise ProfileError(f"{source}: 'experts' must be a non-empty mapping of expert name → settings")
    _check_decoder(source, data.get("decoder") or {})
    for name, cfg in experts.items():
        if name not in EXPERT_CLASSES:
            raise ProfileError(f"{source}: unknown expert 'experts.{name}' (available: {', '.join(available_experts())})")
        if cfg is not None and not isinstance(cfg, dict):
            raise ProfileError(f"{source}: 'experts.{name}' must be a mapping of settings")
        _check_settings(source, f"experts.{name}.", name, cfg or {})
    text = data.get("text_encoders") or {}
    if not isinstance(text, dict):
        raise ProfileError(f"{source}: 'text_encoders' must be a mapping")
    _unknown(source, "text_encoders.", text, set(TEXT_ENCODERS))


def _unknown(source: str, prefix: str, cfg: Any, allowed: set[str]) -> None:
    if not isinstance(cfg, dict):
        raise ProfileError(f"{source}: '{prefix.rstrip('.') or 'profile'}' must be a mapping")
    bad = sorted(set(cfg) - allowed)
    if bad:
        raise ProfileError(f"{source}: unknown key '{prefix}{bad[0]}' (allowed: {', '.join(sorted(allowed))})")


def _check_decoder(source: str, dec: Any) -> None:
    """The decoder section's keys and values (a bad value would otherwise fail every video)."""
    _unknown(source, "decoder.", dec, DECODER_KEYS)
    backend = dec.get("backend")
    if backend is not None and backend not in DECODER_BACKENDS:
        raise ProfileError(f"{source}: 'decoder.backend' must be one of {', '.join(DECODER_BACKENDS)}, got {backend!r}")
    for key in ("window_seconds", "timeout_s", "max_pixels"):
        v = dec.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int if key == "max_pixels" else (int, float)) or v <= 0:
            kind = "a positive integer" if key == "max_pixels" else "a positive number"
            raise ProfileError(f"{source}: 'decoder.{key}' must be {kind}, got {v!r}")


def _check_settings(source: str, prefix: str, name: str, cfg: dict[str, Any]) -> None:
    """Expert settings: every key is a constructor argument (or a pool key), every value has its type."""
    allowed, hints = _constructor_arguments(name)
    if allowed is not None:
        _unknown(source, prefix, cfg, allowed | POOL_KEYS)
    replicas = cfg.get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1):
        raise ProfileError(f"{source}: '{prefix}replicas' must be an integer >= 1, got {replicas!r}")
    for key, value in cfg.items():
        hint = hints.get(key)
        if hint is not None and _matches(value, hint) is False:
            raise ProfileError(f"{source}: '{prefix}{key}' must be {_type_name(hint)}, got {value!r}")


def _constructor_arguments(name: str) -> tuple[set[str] | None, dict[str, Any]]:
    """(keyword arguments the expert's constructor accepts, their annotated types).

    Walks the class hierarchy so that ``**kw`` forwarded to a base constructor still counts
    (the most derived annotation wins). Accepted keys are None when anything goes (``**kw``
    all the way up) or the class cannot be imported yet (it is validated when built).
    """
    try:
        cls = expert_class(name)
    except UserError:
        return None, {}
    keys: set[str] = set()
    hints: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        keys |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}
        if klass is not object:
            try:
                found = typing.get_type_hints(init)
            except Exception:  # noqa: BLE001 - an annotation we cannot evaluate: no type check for it
                found = {}
            for k, v in found.items():
                hints.setdefault(k, v)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return keys, hints  # no **kw: the base classes' arguments are not reachable from the profile
    return None, hints


def _matches(value: Any, hint: Any) -> bool | None:
    """Does ``value`` fit ``hint``? None when the hint is not a plain scalar type (cannot tell)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        results = [_matches(value, arg) for arg in typing.get_args(hint)]
        return True if True in results else (None if None in results else False)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return None


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def resolved_settings(name: str, profile_cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every constructor setting of expert ``name`` as it will run: the profile's values over the
    constructor's defaults, minus settings that only change speed (``NON_IDENTITY_SETTINGS``).

    Generic over the experts: whatever keyword arguments a class (and the bases it forwards
    ``**kw`` to) accepts are part of its identity, so a new setting is covered the day it is
    added. Omitting a setting and writing its default give the same result.
    """
    cfg = dict(profile_cfg or {})
    if "experts" in cfg and isinstance(cfg["experts"], dict):
        cfg = dict(cfg["experts"].get(name) or {})
    out: dict[str, Any] = {}
    for klass in reversed(expert_class(name).__mro__):  # the most derived default wins
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self" and p.default is not p.empty:
                out[p.name] = p.default
    out.update(cfg)
    return {k: v for k, v in sorted(out.items()) if k not in NON_IDENTITY_SETTINGS}


def build_expert(name: str, profile_cfg: dict[str, Any] | None = None, weights: str | None = None) -> Expert:
    """Construct expert ``name`` from its profile entry (or from a whole profile's ``experts``).

    ``profile_cfg`` may be the expert's own settings or a whole profile dict; ``weights``
    overrides the profile's checkpoint (e.g. from the command line).
    """
    cfg = dict(profile_cfg or {})
    source, prefix = f"expert {name!r}", ""
    if "experts" in cfg and isinstance(cfg["experts"], dict):
        source, prefix = str(cfg.get("source") or "profile"), f"experts.{name}."
        cfg = dict(cfg["experts"].get(name) or {})
    if weights is not None:
        cfg["weights"] = weights
    cls = expert_class(name)
    _check_settings(source, prefix, name, cfg)
    replicas = cfg.pop("replicas", None)  # a pool setting for every expert, not a constructor argument
    where = f"{source}: '{prefix.rstrip('.')}'" if prefix else source
    try:
        expert = cls(**cfg)
        if replicas is not None:
            expert.resources = dataclasses.replace(expert.resources, replicas=replicas)
        return expert
    except (TypeError, ValueError) as e:
        raise ProfileError(f"{where}: bad settings ({e})") from None
    except UserError as e:  # the expert's own range checks: say which profile holds the value
        if not prefix:
            raise
        raise ProfileError(f"{where}: {e}") from None
