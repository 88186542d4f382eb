"""Planning an extraction job before any actor starts: experts, their needs, and Ray resources.

The plan is built in the driver from the profile without loading any model (building an
expert is cheap; ``load`` is what costs), so a job with nothing left to do starts no actor,
and a bad profile or expert name fails before Ray is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from videxperts.errors import UserError


@dataclass
class StagePlan:
    """One actor pool: how many replicas and what each asks Ray for."""

    name: str
    replicas: int
    num_cpus: float
    num_gpus: float = 0.0
    memory_mb: int | None = None


@dataclass
class ExpertPlan:
    """What the driver needs to know about one expert without loading it."""

    name: str
    dim: int
    version: str
    needs: Any  # videxperts.extractors.base.DecodeNeeds
    provenance: dict[str, Any]
    num_cpus: float
    num_gpus: float
    memory_mb: int | None = None
    batch_size: int = 8
    replicas: int = 1  # actors per decode worker (Resources.replicas)


@dataclass
class TextPlan:
    name: str
    cfg: dict[str, Any]
    dim: int
    provenance: dict[str, Any]


@dataclass
class JobPlan:
    profile: dict[str, Any]
    experts: dict[str, ExpertPlan]
    text: dict[str, TextPlan] = field(default_factory=dict)
    stages: dict[str, StagePlan] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def resolve_experts(profile: dict[str, Any], requested: list[str] | None) -> list[str]:
    """The experts to run, sorted by name (the processing order); unknown names are user errors."""
    from videxperts.extractors.registry import available_experts

    known = set(available_experts())
    in_profile = sorted((profile.get("experts") or {}).keys())
    names = sorted(set(requested)) if requested else in_profile
    for n in names:
        if n not in known:
            raise UserError(f"unknown expert {n!r} (available: {', '.join(sorted(known))})")
    if not names:
        raise UserError("no experts selected (the profile lists none and --experts is empty)")
    return names


def plan_experts(profile: dict[str, Any], names: list[str], batch_size: int | None) -> dict[str, ExpertPlan]:
    """Build each expert (no ``load``) to read its dim, needs, resources and provenance."""
    from videxperts.extractors.registry import build_expert, resolved_settings

    plans = {}
    for name in names:
        expert = build_expert(name, profile)
        cfg = (profile.get("experts") or {}).get(name) or {}
        res = expert.resources
        plans[name] = ExpertPlan(
            name=name, dim=int(expert.dim), version=str(getattr(expert, "version", "1")),
            needs=expert.needs, provenance={**expert.provenance(), "settings": resolved_settings(name, profile)},
            num_cpus=float(res.num_cpus), num_gpus=float(res.num_gpus), memory_mb=res.memory_mb,
            replicas=int(res.replicas), batch_size=int(batch_size or cfg.get("batch_size") or 8),
        )
    return plans


def plan_text(profile: dict[str, Any], requested: list[str] | None) -> dict[str, TextPlan]:
    """Text encoders for captions: ``--text-encoders`` or the profile's first (usually minilm)."""
    from videxperts.extractors.text import describe_text_encoder

    available = profile.get("text_encoders") or {}
    names = requested if requested is not None else [n for n in ("minilm",) if n in available][:1]
    out = {}
    for name in names:
        cfg = dict(available.get(name) or {})
        desc = dict(describe_text_encoder(name, **cfg))
        # the store requires an extractor version; text encoders version through their weights
        desc.setdefault("extractor_version", str(desc.get("version", "1")))
        out[name] = TextPlan(name, cfg, int(desc["dim"]), desc)
    return out


def fit_resources(
    stages: list[StagePlan], cluster_cpus: float, cluster_gpus: float
) -> tuple[list[StagePlan], list[str]]:
    """Scale requests so that one job's pools fit the cluster at once (else actors wait forever).

    GPU requests become 0 on a cluster without GPUs (experts then run on CPU); CPU requests
    are scaled by ``cluster_cpus / demand`` when the pools together ask for more, which on a
    small machine means oversubscribing cores rather than deadlocking.
    """
    notes: list[str] = []
    gpu_demand = sum(s.replicas * s.num_gpus for s in stages)
    if gpu_demand > 0 and cluster_gpus <= 0:
        notes.append("no GPUs in the cluster: GPU experts run on CPU")
        for s in stages:
            if s.num_gpus:
                s.num_cpus = max(s.num_cpus, 1.0)
                s.num_gpus = 0.0
    elif gpu_demand > cluster_gpus:
        scale = cluster_gpus / gpu_demand
        notes.append(f"GPU requests scaled by {scale:.2f} to share {cluster_gpus:g} GPU(s)")
        for s in stages:
            s.num_gpus = round(s.num_gpus * scale, 4)
    cpu_demand = sum(s.replicas * s.num_cpus for s in stages)
    if cluster_cpus > 0 and cpu_demand > cluster_cpus:
        scale = cluster_cpus / cpu_demand
        notes.append(f"CPU requests scaled by {scale:.2f} ({cpu_demand:g} asked, {cluster_cpus:g} in the cluster)")
        for s in stages:
            s.num_cpus = max(0.01, int(s.num_cpus * scale * 1000) / 1000)
    return stages, notes
