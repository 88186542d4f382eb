"""NetVLAD with ghost clusters and correct masking (SPEC-CE.md "NetVLAD")."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videxperts.training.retrieval.models.norm import MaskedBatchNorm1d


class NetVLAD(nn.Module):
    """Aggregate a padded token sequence `[B, L, D]` into one `[B, K·D]` vector.

    Soft assignment x·W over K+G clusters -> BatchNorm over the K+G assignment scores ->
    softmax -> drop the G ghost columns -> residuals against K learned centres ->
    intra-normalise each cluster (L2 over D) -> flatten -> L2-normalise.

    Masking (the published code ignored it): padded tokens are replaced by zeros, excluded
    from the BatchNorm statistics and given zero assignment, so they contribute nothing;
    adding padding never changes the output, in train or eval mode. A video with no valid
    token gets the zero vector. Flatten order is D-major (`[B, D, K]` -> `[B, D·K]`) as in
    the published code. The assignment has no bias (BatchNorm follows it), as published.
    """

    def __init__(self, dim: int, clusters: int, ghosts: int = 0) -> None:
        super().__init__()
        if dim < 1 or clusters < 1 or ghosts < 0:
            raise ValueError(f"NetVLAD needs dim>=1, clusters>=1, ghosts>=0, got {dim}, {clusters}, {ghosts}")
        self.dim, self.clusters, self.ghosts = dim, clusters, ghosts
        scale = 1.0 / math.sqrt(dim)
        self.assign = nn.Parameter(scale * torch.randn(dim, clusters + ghosts))
        self.assign_bn = MaskedBatchNorm1d(clusters + ghosts)
        self.centres = nn.Parameter(scale * torch.randn(dim, clusters))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, clusters={self.clusters}, ghosts={self.ghosts}, out_dim={self.out_dim}"

    @property
    def out_dim(self) -> int:
        return self.dim * self.clusters

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"NetVLAD({self.dim}) expects [B, L, {self.dim}], got {tuple(x.shape)}")
        b, length, d = x.shape
        if mask is None:
            mask = torch.ones(b, length, dtype=torch.bool, device=x.device)
        mask = mask.to(torch.bool)
        if mask.shape != (b, length):
            raise ValueError(f"NetVLAD mask must be [{b}, {length}], got {tuple(mask.shape)}")
        # where(), not multiply: padding may hold anything, even NaN.
        x = torch.where(mask[..., None], x, x.new_zeros(()))
        flat_mask = mask.reshape(-1)
        scores = self.assign_bn(x.reshape(b * length, d) @ self.assign, flat_mask)
        assign = F.softmax(scores, dim=-1)[:, : self.clusters]
        assign = (assign * flat_mask[:, None].to(assign.dtype)).view(b, length, self.clusters)
        residual = torch.einsum("blk,bld->bdk", assign, x) - assign.sum(1)[:, None, :] * self.centres[None]
        vlad = F.normalize(residual, dim=1)  # intra-normalisation per cluster
        return F.normalize(vlad.reshape(b, d * self.clusters), dim=1)
