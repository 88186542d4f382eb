"""BatchNorm over the valid rows only, so padding and missing experts never move the statistics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """`BatchNorm1d` on `[N, C]` whose statistics (batch and running) come from `x[mask]` only.

    Rows outside the mask come back as zeros. The published CE code normalised padded tokens
    and missing experts together with real ones; gathering the valid rows first makes the
    output independent of how much padding (or how many missing experts) a batch holds.
    In training mode with fewer than two valid rows the batch statistic is undefined, so the
    running statistics are used for those rows (and not updated).
    """

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if x.dim() != 2:
            raise ValueError(f"MaskedBatchNorm1d expects [N, C], got {tuple(x.shape)}")
        if mask is None:
            return self._normalise(x)
        mask = mask.reshape(-1).to(torch.bool)
        if mask.numel() != x.shape[0]:
            raise ValueError(f"mask has {mask.numel()} rows, input has {x.shape[0]}")
        if bool(mask.all()):
            return self._normalise(x)
        out = x.new_zeros(x.shape)
        out[mask] = self._normalise(x[mask]).to(out.dtype)  # autocast may change the dtype
        return out

    def _normalise(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        if self.training and n >= 2:
            return super().forward(x)
        if n == 0:
            # Keep weight/bias in the autograd graph (zero gradient) so DDP sees them used.
            return x + 0.0 * (self.weight.sum() + self.bias.sum()) if self.affine else x
        if self.training:  # a single valid row: no batch statistic exists
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        return super().forward(x)
