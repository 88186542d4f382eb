"""The matching task's typed config (VSRN, DCPG): every dimension, loss weight and ``compat:`` switch.

Sections are frozen dataclasses; :func:`parse_config` reads each one field by field with the
harness's :class:`~videxperts.training.config.Parser`, so an unknown or ill-typed key is one
line naming the file and the dotted key. ``compat:`` switches are off by default (the intended
behaviour); the published configs turn them on (docs/MATCHING.md "Compat switches").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from videxperts.training.config import ConfigError, Parser, flatten

__all__ = ["ConfigError", "MatchingConfig", "parse_config"]

KINDS = ("vsrn", "dcpg")
RESAMPLE = ("first", "chunks")


@dataclass(frozen=True)
class PolicyConfig:
    """DCPG's per-element attention policy (hard-coded in the original)."""

    enabled: bool = True  # false: the DCPG trunk without the policy (ablation)
    heads: int = 2
    bins: int = 500
    tau: float = 0.8
    scale: float = 20.0
    fused: bool = False  # input projections of all steps in one matmul (same numbers, fewer kernels)


@dataclass(frozen=True)
class IdConfig:
    hidden: int = 512
    classes: int = 113288  # >= training images + 1 (target is image index + 1)


@dataclass(frozen=True)
class DecoderConfig:
    """DCPG's convcap text decoder (weight-normed convolutions)."""

    nfeats: int = 512
    layers: int = 3
    kernel: int = 5
    dropout: float = 0.1
    label_len: int = 61


@dataclass(frozen=True)
class CaptionerConfig:
    """VSRN's S2VT attention captioner on the GCN region features."""

    hidden: int = 512
    word_dim: int = 300
    input_dropout: float = 0.2
    steps: int = 59


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "dcpg"
    img_dim: int = 2048
    embed_size: int = 2048
    word_dim: int = 300
    vocab_size: int = 8481  # rows of the word tables; the rebuilt vocabulary must fit (most frequent kept)
    gcn_blocks: int = 4
    fc_l2norm: bool = False  # l2norm after the region fc (the originals: all but f30k)
    image_bn: bool = True  # vsrn: BatchNorm on the image embedding (f30k only); dcpg: always
    bn_momentum: float = 0.01  # dcpg; vsrn uses torch's 0.1
    dead_linears: int = 10  # dcpg's unused 10 x Linear(10,10), kept for the published parameter count
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    id: IdConfig = field(default_factory=IdConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    captioner: CaptionerConfig = field(default_factory=CaptionerConfig)


@dataclass(frozen=True)
class TextConfig:
    max_words: int = 87  # word-vector slots the text policy runs over (padding included)
    threshold: int = 4  # vocabulary: words seen at least this often in train captions
    vectors: str = "seeded"  # "seeded" (N(0, 0.3^2) per word from a hash) or a .npy path (words in .txt beside it)
    vectors_seed: int = 0
    vectors_std: float = 0.3


@dataclass(frozen=True)
class DataConfig:
    expert: str = "regions"
    regions: int = 36  # rows per item given to the model
    resample: str = "first"  # first: the first `regions` rows (images); chunks: means of `regions` chunks (video)
    captions_per_item: int = 5
    # a split whose region rows exceed this (float32 GiB) is cached on local disk under
    # WORK/cache/regions and memory-mapped instead of held in each worker's RAM (0: always)
    in_memory_gb: float = 8.0


@dataclass(frozen=True)
class LossConfig:
    margin: float = 0.2
    max_violation: bool = True
    intra_modal: bool = True  # dcpg: image-image and text-text hinge terms
    hinge: float = 1.0
    id: float = 1.0
    decoder: float = 1.0  # dcpg text decoder / vsrn caption loss
    pg_discrete: float = 1.0
    pg_continuous: float = 1.0


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4
    lr_update: int = 15  # epochs between decays
    lr_decay: float = 0.5  # dcpg 0.5, vsrn 0.1
    grad_clip: float = 2.0


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 128
    epochs: int = 30
    seed: int = 0
    val_every: int = 1


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 128  # test batches; matters only with compat.bn_batch_stats_eval
    val_batch_size: int = 64  # validation batches (the published val loader's 64)
    fold_size: int = 1000  # images per fold of the COCO 1K protocol
    val_items: int = 0  # validation on the first N items only (published: 1,000 = 5,000 dev captions); 0 = all
    protocol: str = "f30k_1k"  # f30k_1k / coco_5k: the whole split; coco_1k: mean over folds of fold_size images


@dataclass(frozen=True)
class CompatConfig:
    """One switch per quirk of the released code that changes its numbers; all false = intended."""

    bn_batch_stats_eval: bool = False  # image BatchNorm uses (and updates) batch statistics at evaluation
    halved_baseline: bool = False  # advantage r - 0.5*mean(r) instead of r - leave-one-out mean
    second_continuous_sample: bool = False  # continuous log-prob of a second, independent draw
    last_head_only_image: bool = False  # image continuous PG term from the last head only
    drop_oov_words: bool = False  # words outside vocabulary/vectors dropped from the vector sequence
    frozen_text_decoder: bool = False  # the convcap decoder is never optimised (random)
    id_classes_113288: bool = False  # 113,288 ID classes whatever the dataset
    l2norm_across_regions: bool = False  # l2norm(dim=1) of (B, R, D): each channel across regions


@dataclass(frozen=True)
class MatchingConfig:
    name: str
    model: ModelConfig
    text: TextConfig
    data: DataConfig
    loss: LossConfig
    optim: OptimConfig
    train: TrainConfig
    eval: EvalConfig
    compat: CompatConfig
    task: str = "matching"
    source: str = "<dict>"

    @property
    def id_classes(self) -> int:
        return 113288 if self.compat.id_classes_113288 else self.model.id.classes

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d

    def flatten(self) -> dict[str, Any]:
        return flatten(self.to_dict())


_CHOICES = {("model", "kind"): KINDS, ("data", "resample"): RESAMPLE, ("eval", "protocol"): ("f30k_1k", "coco_1k", "coco_5k")}
_MIN = {"tau": 0.0, "scale": 0.0, "lr": 0.0, "lr_decay": 0.0}


def _section(p: Parser, raw: Any, key: str, cls: type) -> Any:
    """``cls`` from the mapping ``raw`` at ``key``: each field read by the type of its default."""
    raw = {} if raw is None else raw
    fields = {f.name: f for f in dataclasses.fields(cls)}
    p.section(raw, key, set(fields))
    defaults = cls()
    values: dict[str, Any] = {}
    for name in fields:
        default = getattr(defaults, name)
        full = f"{key}.{name}"
        if dataclasses.is_dataclass(default):
            values[name] = _section(p, raw.get(name), full, type(default))
        elif isinstance(default, bool):
            values[name] = p.bool_(raw, key, name, default)
        elif isinstance(default, int):
            minimum = 0 if name in ("seed", "vectors_seed", "dead_linears", "val_items") else 1
            values[name] = p.int_(raw, key, name, default, minimum=minimum)
        elif isinstance(default, float):
            strict = name in _MIN
            maximum = 1.0 if "dropout" in name else None
            values[name] = p.float_(raw, key, name, default, strict=strict, maximum=maximum)
        else:
            values[name] = p.str_(raw, key, name, default, _CHOICES.get((key, name), ()))
    return cls(**values)


def parse_config(raw: dict[str, Any], source: str) -> MatchingConfig:
    """The merged YAML mapping of a ``task: matching`` config as a :class:`MatchingConfig`."""
    p = Parser(source)
    sections = {"model": ModelConfig, "text": TextConfig, "data": DataConfig, "loss": LossConfig,
                "optim": OptimConfig, "train": TrainConfig, "eval": EvalConfig, "compat": CompatConfig}
    p.section(raw, "", {"task", "name", *sections}, {"name"})
    parsed = {k: _section(p, raw.get(k), k, cls) for k, cls in sections.items()}
    cfg = MatchingConfig(name=p.str_(raw, "", "name"), task=str(raw.get("task", "matching")), source=source,
                         **parsed)
    m, pol = cfg.model, cfg.model.policy
    if pol.enabled and m.kind == "dcpg":
        if m.embed_size % pol.heads or m.word_dim % pol.heads or m.img_dim % pol.heads:
            raise p.fail("model.policy.heads", f"{pol.heads} heads must divide img_dim {m.img_dim}, "
                         f"word_dim {m.word_dim} and embed_size {m.embed_size}")
    if m.kind == "dcpg" and cfg.model.decoder.label_len > cfg.text.max_words:
        raise p.fail("model.decoder.label_len", f"{cfg.model.decoder.label_len} exceeds text.max_words "
                     f"{cfg.text.max_words} (the decoder reads the first label_len word vectors)")
    if m.vocab_size < 5:
        raise p.fail("model.vocab_size", f"must hold the 4 special tokens and a word, got {m.vocab_size}")
    if cfg.data.resample == "first" and cfg.data.regions < 1:
        raise p.fail("data.regions", "must be >= 1")
    return cfg
