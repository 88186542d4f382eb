"""TeachText: distillation from several teacher models and caption denoising by teacher rankings.

Teachers are earlier runs (an MLflow run id -> its best-model artifact ``checkpoint/model.pt``,
or a checkpoint path): CE-family models each trained with its own caption encoder. Per batch,
each teacher gives a B×B matrix Σ_e text_e·video_eᵀ (``model.expert_similarities`` summed over
experts, no mixture weighting); the matrices are averaged over teachers and the student adds
``weight · SmoothL1(student_sims, teacher_sims)`` to its ranking loss.

Denoising (never published; our choice): for every training caption, the teachers' averaged
similarities rank its own video among all training videos (0-based, ties averaged); a caption
is kept when that rank is below ``threshold`` (``less100`` = 100). A video whose captions are
all dropped keeps its single best-ranked caption, so every training video still takes part.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from videxperts.errors import UserError
from videxperts.training.retrieval.data import SplitData


@dataclass
class Teacher:
    """A frozen teacher: its model (eval mode), its text encoder and its experts (sorted)."""

    name: str
    model: nn.Module
    encoder: str
    experts: list[str]


def load_teachers(paths: list[str], device: torch.device) -> list[Teacher]:
    """Teachers from local checkpoint paths (resolve run ids first with :func:`resolve_teachers`)."""
    from videxperts.training.checkpoint import load_model_checkpoint

    teachers = []
    for path in paths:
        cfg, model, _ = load_model_checkpoint(path)
        for p in model.parameters():
            p.requires_grad_(False)
        teachers.append(Teacher(cfg.name, model.to(device), cfg.data.text.encoder, sorted(cfg.data.experts)))
    return teachers


def _check_experts(teacher: Teacher, data: SplitData) -> None:
    missing = [e for e in teacher.experts if e not in data.experts]
    if missing:
        raise UserError(f"teacher {teacher.name!r} uses experts {missing} that the student's data does not load")


@torch.no_grad()
def teacher_similarities(teachers: list[Teacher], data: SplitData, vid: np.ndarray, cap: np.ndarray,
                         device: torch.device) -> torch.Tensor:
    """Average over teachers of Σ_e text_e·video_eᵀ for the global batch (gathered across workers)."""
    from videxperts.training.distributed import gather_cat, tree_map
    from videxperts.training.retrieval.evaluation import encode_captions, encode_videos

    total = None
    for t in teachers:
        _check_experts(t, data)
        video = encode_videos(t.model, data, vid, device, experts=t.experts)
        text = encode_captions(t.model, data, vid, cap, device, encoder=t.encoder)
        video = tree_map(lambda x: gather_cat(x, differentiable=False), video)
        text = tree_map(lambda x: gather_cat(x, differentiable=False), text)
        sims = t.model.expert_similarities(text, video).float().sum(0)
        total = sims if total is None else total + sims
    return total / len(teachers)


@torch.no_grad()
def teacher_split_similarities(teachers: list[Teacher], data: SplitData, device: torch.device,
                               chunk: int = 256) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Averaged teacher matrix over a whole split: every valid caption × every video."""
    from videxperts.training.distributed import tree_cat
    from videxperts.training.retrieval.evaluation import encode_captions, encode_videos

    n = len(data)
    cap_video, cap_idx = data.captions()
    total = torch.zeros((len(cap_video), n))
    for t in teachers:
        _check_experts(t, data)
        video = tree_cat([encode_videos(t.model, data, np.arange(s, min(s + chunk, n)), device, experts=t.experts)
                          for s in range(0, n, chunk)])
        for s in range(0, len(cap_video), chunk):
            text = encode_captions(t.model, data, cap_video[s : s + chunk], cap_idx[s : s + chunk], device,
                                   encoder=t.encoder)
            total[s : s + chunk] += t.model.expert_similarities(text, video).float().sum(0).cpu()
    return total / len(teachers), cap_video, cap_idx


def mask_from_ranks(ranks: np.ndarray, cap_video: np.ndarray, cap_idx: np.ndarray, shape: tuple[int, int],
                    threshold: int) -> np.ndarray:
    """Keep captions with rank < threshold; a video left without captions keeps its best-ranked one."""
    keep = np.zeros(shape, dtype=bool)
    ok = ranks < threshold
    keep[cap_video[ok], cap_idx[ok]] = True
    for v in np.unique(cap_video):
        if not keep[v].any():
            rows = np.flatnonzero(cap_video == v)
            best = rows[np.argmin(ranks[rows])]
            keep[v, cap_idx[best]] = True
    return keep


def denoise_mask(teachers: list[Teacher], data: SplitData, threshold: int, device: torch.device) -> np.ndarray:
    """``[N, C]`` mask of the training captions to keep (see the module docstring)."""
    from videxperts.training.retrieval.evaluation import t2v_ranks

    sims, cap_video, cap_idx = teacher_split_similarities(teachers, data, device)
    ranks = t2v_ranks(sims, cap_video)
    return mask_from_ranks(ranks, cap_video, cap_idx, data.caption_mask.shape, int(threshold))


def resolve_teachers(refs: list[str], tracking_uri: str | None, work_dir: str | Path | None = None) -> list[str]:
    """Local checkpoint paths for the config's teacher references (run ids or paths)."""
    from videxperts.training.checkpoint import resolve_checkpoint

    dest = Path(work_dir) / "teachers" if work_dir is not None else Path(tempfile.mkdtemp(prefix="vx-teachers-"))
    return [resolve_checkpoint(ref, tracking_uri, dest / f"{i}") for i, ref in enumerate(refs)]
