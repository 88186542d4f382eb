"""Training losses (SPEC-CE.md "Loss and training", "TeachText")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def max_margin_ranking_loss(sims: Tensor, margin: float) -> Tensor:
    """Bidirectional max-margin ranking loss over a batch similarity matrix.

    `sims[i, j]` = similarity of caption i and video j; the diagonal holds the positives.
    Mean over all off-diagonal pairs, both directions (2·B·(B−1) hinge terms), of
    relu(m − s_ii + s_ij) (text->video) and relu(m − s_ii + s_ji) (video->text), as in the
    published code (no hard-negative mining).
    """
    if sims.dim() != 2 or sims.shape[0] != sims.shape[1]:
        raise ValueError(f"ranking loss needs a square [B, B] matrix, got {tuple(sims.shape)}")
    b = sims.shape[0]
    if b < 2:
        raise ValueError("ranking loss needs at least 2 pairs in a batch")
    pos = sims.diagonal()
    off = ~torch.eye(b, dtype=torch.bool, device=sims.device)
    t2v = F.relu(margin - pos[:, None] + sims)[off]  # row i: caption i vs videos j
    v2t = F.relu(margin - pos[None, :] + sims)[off]  # column j: video j vs captions i
    return torch.cat([t2v, v2t]).mean()


def distillation_loss(student_sims: Tensor, teacher_sims: Tensor, weight: float = 1.0) -> Tensor:
    """TeachText: weight · SmoothL1(student, teacher) over the batch matrix (teacher detached)."""
    if student_sims.shape != teacher_sims.shape:
        raise ValueError(f"student {tuple(student_sims.shape)} and teacher {tuple(teacher_sims.shape)} differ")
    return weight * F.smooth_l1_loss(student_sims, teacher_sims.detach())
