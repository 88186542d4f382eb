"""The retrieval task's typed config (CE, its ablations, TeachText): the YAML in docs/TRAINING.md.

:func:`videxperts.training.config.load_config` reads the file and hands the mapping here.
Expert order everywhere is the sorted expert names: it fixes the order of mixture weights
and of the `available` mask columns.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from videxperts.training.config import ConfigError, Parser, flatten, read_raw_config

__all__ = ["ConfigError", "TrainConfig", "load_config", "parse_config"]

VARIANTS = ("ce", "ce_no_cg", "moee", "moee_uniform", "concat")
TEMPORAL = ("mean", "vlad")
OPTIMIZERS = ("ranger", "radam", "adam")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


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
class CompatConfig:
    """Switches that restore the published code's behaviour where videxperts deliberately
    differs (docs/MODELS.md "Deviations from the original"); all off = the clean model."""

    sequential_gating: bool = False  # ce: gate experts one after another, BatchNorm per pair
    concat_mixture: bool = False  # concat: build the (unused) mixture-weight layer
    concat_order: list[str] | None = None  # concat: order of the experts in the video vector


@dataclass(frozen=True)
class ModelConfig:
    variant: str = "ce"
    shared_dim: int = 768
    text_vlad: TextVladConfig = field(default_factory=lambda: TextVladConfig(28, 1))
    num_g_layers: int = 3
    num_h_layers: int = 0
    compat: CompatConfig = field(default_factory=CompatConfig)


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

    task = "retrieval"  # a class attribute: the task this config belongs to

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
        return {"task": self.task, **d}

    def flatten(self) -> dict[str, Any]:
        """Dotted keys -> scalars, for MLflow params (lists become comma-joined strings)."""
        return flatten(self.to_dict())


# ----------------------------------------------------------------------------- parsing


def load_config(path_or_dict: Any) -> TrainConfig:
    """A retrieval config from a path, shipped name or mapping (``task:`` may be omitted here:
    the caller asked for retrieval). Generic callers use :func:`videxperts.training.config.load_config`."""
    if isinstance(path_or_dict, TrainConfig):
        return path_or_dict
    raw, source = read_raw_config(path_or_dict)
    task = raw.setdefault("task", "retrieval")
    if task != "retrieval":
        raise ConfigError(f"{source}: task: {task!r} is not a retrieval config")
    return parse_config(raw, source)


def parse_config(raw: dict[str, Any], source: str) -> TrainConfig:
    """A merged raw mapping (``task: retrieval``) as a typed, checked TrainConfig."""
    return _Parser(source).parse(raw)


class _Parser(Parser):
    """The retrieval sections on top of the generic typed reads."""

    # sections --------------------------------------------------------------------------

    def parse(self, raw: dict[str, Any]) -> TrainConfig:
        top = self.section(raw, "", {"task", "name", "data", "model", "loss", "optim", "train", "teachtext"},
                           {"name", "data"})
        return TrainConfig(
            name=self.str_(top, "", "name"),
            data=self.data(top["data"]),
            model=self.model(top.get("model") or {}, top["data"]),
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

    def model(self, raw: Any, data_raw: Any) -> ModelConfig:
        m = self.section(raw, "model", {"variant", "shared_dim", "text_vlad", "num_g_layers", "num_h_layers",
                                        "compat"})
        tv = self.section(m.get("text_vlad", {"clusters": 28, "ghosts": 1}), "model.text_vlad",
                          {"clusters", "ghosts"}, {"clusters"})
        return ModelConfig(
            variant=self.str_(m, "model", "variant", "ce", VARIANTS),
            shared_dim=self.int_(m, "model", "shared_dim", 768),
            text_vlad=TextVladConfig(self.int_(tv, "model.text_vlad", "clusters"),
                                     self.int_(tv, "model.text_vlad", "ghosts", 0, minimum=0)),
            num_g_layers=self.int_(m, "model", "num_g_layers", 3),
            num_h_layers=self.int_(m, "model", "num_h_layers", 0, minimum=0),
            compat=self.compat(m.get("compat") or {}, sorted(data_raw["experts"])),
        )

    def compat(self, raw: Any, experts: list[str]) -> CompatConfig:
        key = "model.compat"
        c = self.section(raw, key, {"sequential_gating", "concat_mixture", "concat_order"})
        order = c.get("concat_order")
        if order is not None:
            if not isinstance(order, list) or sorted(map(str, order)) != experts or \
                    not all(isinstance(n, str) for n in order):
                raise self.fail(f"{key}.concat_order", f"expected every expert exactly once ({', '.join(experts)}), "
                                                       f"got {order!r}")
            order = list(order)
        return CompatConfig(self.bool_(c, key, "sequential_gating", False), self.bool_(c, key, "concat_mixture", False),
                            order)

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
