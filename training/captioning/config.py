"""The captioning task's typed config (BMT and BMHRL): the YAML in docs/CAPTIONING.md.

Every dimension of both models is a key; every quirk of the original code that changes its
numbers is one switch under ``model.compat`` (all false = the intended behaviour; the published
configs ``anet_bmt`` and ``anet_bmhrl`` turn them on).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videxperts.training.config import ConfigError, Parser, flatten

ARCHS = ("bmt", "bmhrl", "critic")
COMPAT_KEYS = (
    "pe_per_dim_exponent",  # positional encoding: dimension k uses its own k in the exponent
    "pad_value_mask",  # padding detected by value 1.0 in feature channel 0
    "fusion_unused_ff",  # BMHRL fusion layers construct a feed-forward they never call
    "critic_required",  # the agent cannot be built without the critic checkpoint
    "warmstart_schedule",  # W+1 warm-start epochs, worker/manager flag toggling during warm-start
    "stale_exploration_flag",  # warm-start explores until the first evaluation (harness epochs 1-2)
    "eos_negative_reward",  # the </s> position gets r = -M_{n-2}
    "specials_in_hypothesis",  # </s> and <blank> stay in the hypothesis words scored by METEOR
    "manager_gamma_from_worker",  # the manager's discount is rl.gamma_worker (gamma_manager unused)
    "forced_boundary_inplace",  # seg[:,0]=1 also changes the manager's normaliser and value mask
    "amplitude_grad",  # the amplitude (through p(sampled)) is not detached from the KL target
    "value_loss_mean_all",  # value losses average over all B·L entries, masked ones included
)


@dataclass(frozen=True)
class CompatConfig:
    pe_per_dim_exponent: bool = False
    pad_value_mask: bool = False
    fusion_unused_ff: bool = False
    critic_required: bool = False
    warmstart_schedule: bool = False
    stale_exploration_flag: bool = False
    eos_negative_reward: bool = False
    specials_in_hypothesis: bool = False
    manager_gamma_from_worker: bool = False
    forced_boundary_inplace: bool = False
    amplitude_grad: bool = False
    value_loss_mean_all: bool = False


@dataclass(frozen=True)
class CriticConfig:
    hidden: int = 600
    lstm_layers: int = 4
    gru_layers: int = 2
    threshold: float = 0.25
    checkpoint: str | None = None  # a state_dict saved by `videxperts train` of a critic config


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "bmhrl"
    vocab_size: int = 10172  # replaced by the vocabulary's size when data.dataset is given
    d_vid: int = 1024
    d_aud: int = 128
    d_model: int = 1024
    d_caps: int = 300
    heads: int = 4
    layers: int = 2
    dropout: float = 0.1
    ff_vid: int = 1024
    ff_aud: int = 512
    ff_caps: int = 2048
    goal_dim: int = 64
    goal_heads: int = 2
    critic: CriticConfig = field(default_factory=CriticConfig)
    compat: CompatConfig = field(default_factory=CompatConfig)
    # start from another run's weights (model.pt or its MLflow run id): the published BMHRL run
    # starts from a separately warm-started checkpoint (the original's --rl_pretrained_model_dir)
    init_checkpoint: str | None = None


@dataclass(frozen=True)
class WordVecConfig:
    path: str | None = None  # GloVe / word2vec text file; None: a seeded random table
    seed: int = 0
    scale: bool = True  # multiply the embedding by sqrt(d_caps)


@dataclass(frozen=True)
class DataConfig:
    dataset: str | None = None  # dataset dir (manifest.parquet + captions.parquet with start/end)
    video_expert: str = "i3d"
    audio_expert: str = "audio"
    min_freq: int = 1
    wordvec: WordVecConfig = field(default_factory=WordVecConfig)


@dataclass(frozen=True)
class RLConfig:
    warmstart_epochs: int = 1
    gamma_worker: float = 0.7
    gamma_manager: float = 0.8
    stabilize: bool = False
    train_worker_first: bool = True
    reward_processes: int = 0  # METEOR rewards in a process pool (0: in-process, cached)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"
    lr: float = 1e-4
    warmstart_lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TrainLoopConfig:
    batch_size: int = 16
    eval_batch_size: int = 32
    epochs: int = 100
    seed: int = 0
    val_every: int = 1
    early_stop_after: int = 30
    smoothing: float = 0.7
    val_scorer: str = "anet"  # anet: the ActivityNet protocol (Java METEOR); nltk: quick, for tests


@dataclass(frozen=True)
class DecodeConfig:
    max_len: int = 30
    beam: int = 1


@dataclass(frozen=True)
class CaptioningConfig:
    name: str
    model: ModelConfig
    data: DataConfig
    rl: RLConfig
    optim: OptimConfig
    train: TrainLoopConfig
    decode: DecodeConfig
    source: str = "<dict>"

    task = "captioning"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return {"task": self.task, **d}

    def flatten(self) -> dict[str, Any]:
        return flatten(self.to_dict())


class SegmentCriticConfig(CaptioningConfig):
    """A config of the segment critic's own training (``task: segment_critic``, ``model.arch: critic``)."""

    task = "segment_critic"


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "rl": RLConfig, "optim": OptimConfig,
             "train": TrainLoopConfig, "decode": DecodeConfig}
_NESTED = {"critic": CriticConfig, "compat": CompatConfig, "wordvec": WordVecConfig}
_POSITIVE_INT = {"vocab_size", "d_vid", "d_aud", "d_model", "d_caps", "heads", "layers", "ff_vid", "ff_aud", "ff_caps",
                 "goal_dim", "goal_heads", "hidden", "lstm_layers", "gru_layers", "batch_size", "eval_batch_size",
                 "epochs", "val_every", "early_stop_after", "max_len", "beam", "min_freq"}


def parse_config(raw: dict[str, Any], source: str, cls: type = CaptioningConfig) -> CaptioningConfig:
    """A merged raw mapping (``task: captioning`` or ``segment_critic``) as a typed, checked config."""
    p = Parser(source)
    top = p.section(raw, "", {"task", "name", *_SECTIONS}, {"name"})
    parts = {name: _dataclass(p, name, cls, top.get(name) or {}) for name, cls in _SECTIONS.items()}
    m: ModelConfig = parts["model"]
    if m.arch not in ARCHS:
        raise p.fail("model.arch", f"unknown architecture {m.arch!r} (choose from {', '.join(ARCHS)})")
    if (m.arch == "critic") != (cls.task == "segment_critic"):
        raise p.fail("model.arch", "the segment critic trains with 'task: segment_critic' and 'model.arch: critic'")
    for key, heads, width in (("heads", m.heads, m.d_model), ("goal_heads", m.goal_heads, m.d_model)):
        if width % heads:
            raise p.fail(f"model.{key}", f"d_model {width} is not divisible by {heads} heads")
    if not 0 <= m.dropout < 1:
        raise p.fail("model.dropout", f"must be in [0, 1), got {m.dropout}")
    if not 0 < parts["train"].smoothing < 1:
        raise p.fail("train.smoothing", f"must be in (0, 1), got {parts['train'].smoothing}")
    if parts["train"].val_scorer not in ("anet", "nltk"):
        raise p.fail("train.val_scorer", f"unknown scorer {parts['train'].val_scorer!r} (choose from anet, nltk)")
    data: DataConfig = parts["data"]
    if data.dataset is not None:
        base = Path(source).parent if source != "<dict>" else Path.cwd()
        dataset = Path(data.dataset) if Path(data.dataset).is_absolute() else base / data.dataset
        data = dataclasses.replace(data, dataset=str(dataset.resolve()))
        from videxperts.training.captioning.vocab import vocabulary_for

        vocab = vocabulary_for(data.dataset, data.min_freq, f"{source}: data.dataset")
        m = dataclasses.replace(m, vocab_size=len(vocab))
    parts["data"], parts["model"] = data, m
    return cls(name=p.str_(top, "", "name"), source=source, **parts)


def _dataclass(p: Parser, key: str, cls: type, raw: Any) -> Any:
    """Fill ``cls`` from ``raw`` with type checks per field default (nested configs recurse)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    p.section(raw, key, set(fields))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        full = f"{key}.{name}"
        if name in _NESTED:
            kwargs[name] = _dataclass(p, full, _NESTED[name], raw.get(name) or {})
            continue
        default = f.default
        if name not in raw:
            continue
        v = raw[name]
        if isinstance(default, bool):
            kwargs[name] = p.bool_(raw, key, name, default)
        elif isinstance(default, int):
            kwargs[name] = p.int_(raw, key, name, default, minimum=1 if name in _POSITIVE_INT else 0)
        elif isinstance(default, float):
            kwargs[name] = p.float_(raw, key, name, default)
        elif v is None and default is None:
            kwargs[name] = None
        else:
            kwargs[name] = p.str_(raw, key, name, default)
    return cls(**kwargs)


__all__ = ["COMPAT_KEYS", "CaptioningConfig", "ConfigError", "parse_config"]
