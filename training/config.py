"""Typed training configuration: the YAML in docs/DESIGN.md "Training config".

`load_config` accepts a path or a dict, resolves `base:` inheritance, checks every key and
value, and raises one `ConfigError` (a `UserError`) naming the file and the dotted key.
Expert order everywhere is the sorted expert names: it fixes the order of mixture weights
and of the `available` mask columns.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import UserError, yaml_problem

VARIANTS = ("ce", "ce_no_cg", "moee", "moee_uniform", "concat")
TEMPORAL = ("mean", "vlad")
OPTIMIZERS = ("ranger", "radam", "adam")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_REQUIRED = object()


class ConfigError(UserError):
    """A training config that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class ExpertConfig:
    """One video expert as the model sees it."""

    name: str
    dim: int
    temporal: str = "mean"  # mean: reader averages to [B, D]; vlad: [B, L, D] -> NetVLAD
    clusters: int | None = None  # vlad only
    max_tokens: int | None = None  # vlad only: L given to the reader

    @property
    def pooled_dim(self) -> int:
        """Dimension after temporal aggregation (K·D for VLAD, D for mean)."""
        return self.dim * self.clusters if self.temporal == "vlad" else self.dim


@dataclass(frozen=True)
class TextConfig:
    encoder: str
    dim: int
    max_tokens: int
    max_captions: int = 20


@dataclass(frozen=True)
class DataConfig:
    experts: dict[str, ExpertConfig]  # insertion order = sorted names
    text: TextConfig

    @property
    def expert_names(self) -> list[str]:
        return sorted(self.experts)


@dataclass(frozen=True)
class TextVladConfig:
    clusters: int
    ghosts: int = 0


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "ce"
    shared_dim: int = 768
    text_vlad: TextVladConfig = field(default_factory=lambda: TextVladConfig(28, 1))
    num_g_layers: int = 3
    num_h_layers: int = 0


@dataclass(frozen=True)
class LossConfig:
    margin: float = 0.0938


@dataclass(frozen=True)
class OptimConfig:
    name: str = "ranger"
    lr: float = 0.1
    weight_decay: float = 0.001
    step_gamma: float = 0.95


@dataclass(frozen=True)
class TrainLoopConfig:
    batch_size: int = 64
    epochs: int = 100
    seed: int = 0
    val_every: int = 1


@dataclass(frozen=True)
class DenoiseConfig:
    threshold: int = 100


@dataclass(frozen=True)
class TeachTextConfig:
    teachers: list[str]
    weight: float = 1.0
    denoise: DenoiseConfig | None = None


@dataclass(frozen=True)
class TrainConfig:
    name: str
    data: DataConfig
    model: ModelConfig
    loss: LossConfig
    optim: OptimConfig
    train: TrainLoopConfig
    teachtext: TeachTextConfig | None = None
    source: str = "<dict>"  # where it came from, for messages; not part of to_dict()

    @property
    def expert_names(self) -> list[str]:
        """Sorted expert names: the order of mixture weights and `available` columns."""
        return self.data.expert_names

    def to_dict(self) -> dict[str, Any]:
        """Plain dict that `load_config` accepts again (round-trips)."""
        d = dataclasses.asdict(self)
        d.pop("source")
        experts = {}
        for name, e in d["data"]["experts"].items():
            e.pop("name")
            experts[name] = {k: v for k, v in e.items() if v is not None}
        d["data"]["experts"] = experts
        return d

    def flatten(self) -> dict[str, Any]:
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

        walk("", self.to_dict())
        return out


# ----------------------------------------------------------------------------- loading


def load_config(path_or_dict: str | Path | dict[str, Any] | TrainConfig) -> TrainConfig:
    """Read, merge (`base:`), validate and type a training config (a TrainConfig passes through)."""
    if isinstance(path_or_dict, TrainConfig):
        return path_or_dict
    if isinstance(path_or_dict, dict):
        source = "<dict>"
        raw = _resolve_base(copy.deepcopy(path_or_dict), None, source, ())
    else:
        path = Path(path_or_dict)
        source = str(path)
        raw = _read_yaml(path, ())
    return _Parser(source).parse(raw)


def _read_yaml(path: Path, chain: tuple[str, ...]) -> dict[str, Any]:
    if str(path.resolve()) in chain:
        raise ConfigError(f"{path}: base: inheritance cycle ({' -> '.join(chain + (str(path),))})")
    if not path.is_file():
        raise ConfigError(f"{path}: training config not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return _resolve_base(raw, path, str(path), chain + (str(path.resolve()),))


def _resolve_base(raw: dict[str, Any], path: Path | None, source: str, chain: tuple[str, ...]) -> dict:
    """`base: other.yaml` (relative to this file) is loaded first and this file merged on top.

    Merging is recursive for mappings; any other value replaces. A `null` value under
    `data.experts` removes that expert (so a derived config can use an expert subset).
    """
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{source}: base: expected a file name, got {base!r}")
    base_path = Path(base) if path is None or Path(base).is_absolute() else path.parent / base
    merged = _deep_merge(_read_yaml(base_path, chain), raw)
    experts = merged.get("data", {}).get("experts") if isinstance(merged.get("data"), dict) else None
    if isinstance(experts, dict):
        for name in [n for n, v in experts.items() if v is None]:
            del experts[name]
    return merged


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class _Parser:
    """Turns a raw mapping into typed dataclasses; every error names source and dotted key."""

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
        full = f"{key}.{name}"
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
               strict: bool = False) -> float:
        v = raw.get(name, default)
        full = f"{key}.{name}"
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(full, f"expected a number, got {v!r}")
        if v < minimum or (strict and v == minimum):
            raise self.fail(full, f"must be {'>' if strict else '>='} {minimum}, got {v}")
        return float(v)

    def str_(self, raw: dict, key: str, name: str, default: Any = None, choices: tuple = ()) -> Any:
        v = raw.get(name, default)
        full = f"{key}.{name}" if key else name
        if not isinstance(v, str) or not v:
            raise self.fail(full, f"expected a non-empty string, got {v!r}")
        if choices and v not in choices:
            raise self.fail(full, f"unknown value {v!r} (choose from {', '.join(choices)})")
        return v

    # sections --------------------------------------------------------------------------

    def parse(self, raw: dict[str, Any]) -> TrainConfig:
        top = self.section(raw, "", {"name", "data", "model", "loss", "optim", "train", "teachtext"},
                           {"name", "data"})
        return TrainConfig(
            name=self.str_(top, "", "name"),
            data=self.data(top["data"]),
            model=self.model(top.get("model") or {}),
            loss=self.loss(top.get("loss") or {}),
            optim=self.optim(top.get("optim") or {}),
            train=self.train(top.get("train") or {}),
            teachtext=self.teachtext(top.get("teachtext")),
            source=self.source,
        )

    def data(self, raw: Any) -> DataConfig:
        d = self.section(raw, "data", {"experts", "text"}, {"experts", "text"})
        experts_raw = d["experts"]
        if not isinstance(experts_raw, dict) or not experts_raw:
            raise self.fail("data.experts", "expected a non-empty mapping of expert name -> {dim, temporal, ...}")
        experts = {}
        for name in sorted(experts_raw):
            experts[name] = self.expert(str(name), experts_raw[name])
        t = self.section(d["text"], "data.text", {"encoder", "dim", "max_tokens", "max_captions"},
                         {"encoder", "dim", "max_tokens"})
        text = TextConfig(
            encoder=self.str_(t, "data.text", "encoder"),
            dim=self.int_(t, "data.text", "dim"),
            max_tokens=self.int_(t, "data.text", "max_tokens"),
            max_captions=self.int_(t, "data.text", "max_captions", 20),
        )
        return DataConfig(experts=experts, text=text)

    def expert(self, name: str, raw: Any) -> ExpertConfig:
        key = f"data.experts.{name}"
        if not _NAME_RE.match(name):
            raise self.fail(key, "expert names are lower-case identifiers (a-z, 0-9, _)")
        e = self.section(raw, key, {"dim", "temporal", "clusters", "max_tokens"}, {"dim"})
        temporal = self.str_(e, key, "temporal", "mean", TEMPORAL)
        dim = self.int_(e, key, "dim")
        if temporal == "vlad":
            if "clusters" not in e:
                raise self.fail(f"{key}.clusters", "temporal: vlad needs clusters (number of NetVLAD clusters)")
            if "max_tokens" not in e:
                raise self.fail(f"{key}.max_tokens", "temporal: vlad needs max_tokens (sequence length to load)")
            return ExpertConfig(name, dim, temporal, self.int_(e, key, "clusters"), self.int_(e, key, "max_tokens"))
        for k in ("clusters", "max_tokens"):
            if k in e:
                raise self.fail(f"{key}.{k}", "only meaningful with temporal: vlad")
        return ExpertConfig(name, dim, temporal)

    def model(self, raw: Any) -> ModelConfig:
        m = self.section(raw, "model", {"variant", "shared_dim", "text_vlad", "num_g_layers", "num_h_layers"})
        tv = self.section(m.get("text_vlad", {"clusters": 28, "ghosts": 1}), "model.text_vlad",
                          {"clusters", "ghosts"}, {"clusters"})
        return ModelConfig(
            variant=self.str_(m, "model", "variant", "ce", VARIANTS),
            shared_dim=self.int_(m, "model", "shared_dim", 768),
            text_vlad=TextVladConfig(self.int_(tv, "model.text_vlad", "clusters"),
                                     self.int_(tv, "model.text_vlad", "ghosts", 0, minimum=0)),
            num_g_layers=self.int_(m, "model", "num_g_layers", 3),
            num_h_layers=self.int_(m, "model", "num_h_layers", 0, minimum=0),
        )

    def loss(self, raw: Any) -> LossConfig:
        s = self.section(raw, "loss", {"margin"})
        return LossConfig(margin=self.float_(s, "loss", "margin", 0.0938))

    def optim(self, raw: Any) -> OptimConfig:
        s = self.section(raw, "optim", {"name", "lr", "weight_decay", "step_gamma"})
        return OptimConfig(
            name=self.str_(s, "optim", "name", "ranger", OPTIMIZERS),
            lr=self.float_(s, "optim", "lr", 0.1, strict=True),
            weight_decay=self.float_(s, "optim", "weight_decay", 0.001),
            step_gamma=self.float_(s, "optim", "step_gamma", 0.95, strict=True),
        )

    def train(self, raw: Any) -> TrainLoopConfig:
        s = self.section(raw, "train", {"batch_size", "epochs", "seed", "val_every"})
        batch = self.int_(s, "train", "batch_size", 64, minimum=2)  # ranking loss needs negatives
        return TrainLoopConfig(batch, self.int_(s, "train", "epochs", 100), self.int_(s, "train", "seed", 0, minimum=0),
                               self.int_(s, "train", "val_every", 1))

    def teachtext(self, raw: Any) -> TeachTextConfig | None:
        if raw is None:
            return None
        s = self.section(raw, "teachtext", {"teachers", "weight", "denoise"}, {"teachers"})
        teachers = s["teachers"]
        if not isinstance(teachers, list) or not teachers or not all(isinstance(t, str) and t for t in teachers):
            raise self.fail("teachtext.teachers", f"expected a list of run ids / checkpoint paths, got {teachers!r}")
        denoise = None
        if s.get("denoise") is not None:
            dn = self.section(s["denoise"], "teachtext.denoise", {"threshold"}, {"threshold"})
            denoise = DenoiseConfig(self.int_(dn, "teachtext.denoise", "threshold"))
        return TeachTextConfig(list(teachers), self.float_(s, "teachtext", "weight", 1.0), denoise)
